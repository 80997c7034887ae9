// node-net-echo.mjs — baseline TCP echo server on plain node:net.
//
// The "what Node gives you for free" reference for bench/run.mjs: every
// accepted socket is piped into itself, so back-pressure is handled by
// stream.pipe. TCP_NODELAY is on (as in every server in the suite) so that
// pipelined small echoes are not held back by Nagle's algorithm.
//
// Run:   node bench/servers/node-net-echo.mjs --port 9000 [--host 127.0.0.1]
// Ready: prints "listening on <host>:<port>" on stdout.
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const port = Number(values.port);
const host = values.host;

const server = net.createServer({ noDelay: true }, (socket) => {
  // Clients reset connections when a run ends; that is not a server error.
  socket.on("error", () => {});
  socket.pipe(socket);
});

server.on("error", (err) => {
  console.error(`node-net-echo: ${err.message}`);
  process.exit(1);
});

server.listen({ port, host, backlog: 4096 }, () => {
  console.log(`listening on ${host}:${port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));

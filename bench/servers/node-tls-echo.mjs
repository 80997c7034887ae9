// node-tls-echo.mjs — baseline TLS echo server on node:tls (same handler shape as the ringline
// demo: every byte back, in order).
//
// Run:   node bench/servers/node-tls-echo.mjs --port 9000 --tls-cert c.pem --tls-key k.pem
// Ready: prints "listening on <host>:<port> (tls)" on stdout.
import fs from "node:fs";
import tls from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
  },
});
const server = tls.createServer(
  { cert: fs.readFileSync(values["tls-cert"]), key: fs.readFileSync(values["tls-key"]), noDelay: true },
  (socket) => {
    socket.on("error", () => {});
    socket.pipe(socket);
  },
);
server.on("tlsClientError", () => {});
server.listen(Number(values.port), values.host, () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port} (tls)`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));

// node-cluster-echo.mjs — the node:net echo server (node-net-echo.mjs) on N processes with
// node:cluster, the baseline of bench/run.mjs's workers case.
//
// The primary forks N workers, each a net.Server piping every socket into itself (TCP_NODELAY
// on). Node's default cluster scheduling on Linux is round-robin: the primary accepts and sends
// each connection to the next worker over IPC (the analogue of ringline's acceptor mode).
//
// Run:   node bench/servers/node-cluster-echo.mjs --port 9000 [--host 127.0.0.1] [--workers 2]
// Ready: prints "listening on <host>:<port>" on stdout once every worker listens.
import cluster from "node:cluster";
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
    workers: { type: "string", default: "2" },
  },
});
const port = Number(values.port);
const host = values.host;
const n = Number(values.workers);

if (cluster.isPrimary) {
  let listening = 0;
  let stopping = false;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on("listening", () => {
    if (++listening === n) console.log(`listening on ${host}:${port}`);
  });
  cluster.on("exit", (w, code, sig) => {
    if (!stopping) {
      console.error(`node-cluster-echo: worker ${w.id} exited (${sig ?? code})`);
      process.exit(1);
    }
  });
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
      stopping = true;
      for (const w of Object.values(cluster.workers)) w.kill();
      process.exit(0);
    });
  }
} else {
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  server.listen({ port, host, backlog: 4096 });
}

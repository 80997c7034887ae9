// platform-node-echo.mjs — TCP echo server on @effect/platform-node.
//
// The "idiomatic Effect on Node today" reference for bench/run.mjs:
// NodeSocketServer.make opens a node:net server, and each connection's
// Socket is echoed through its writer. This is what ringline's public API
// competes with, so it is written the way an Effect user would write it —
// no reaching into the underlying node:net socket. TCP_NODELAY is on (as in
// every server in the suite) so pipelined small echoes are not delayed.
//
// Needs effect, @effect/platform and @effect/platform-node resolvable from
// this directory (root devDependencies of the workspace).
//
// Run:   node bench/servers/platform-node-echo.mjs --port 9000 [--host 127.0.0.1]
// Ready: prints "listening on <host>:<port>" on stdout.
import { NodeRuntime, NodeSocketServer } from "@effect/platform-node";
import { Console, Effect } from "effect";
import { parseArgs } from "node:util";
import { echo } from "./platform-echo-handler.mjs";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const port = Number(values.port);
const host = values.host;

const main = Effect.gen(function* () {
  const server = yield* NodeSocketServer.make({ port, host, backlog: 4096, noDelay: true });
  yield* Console.log(`listening on ${host}:${port}`);
  return yield* server.run(echo);
});

// runMain interrupts the program on SIGINT/SIGTERM, closing the server.
NodeRuntime.runMain(Effect.scoped(main));

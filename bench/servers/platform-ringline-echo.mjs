// platform-ringline-echo.mjs — TCP echo server: @effect/platform Socket on RinglineSocketServer.
//
// The same Effect echo handler as platform-node-echo.mjs, served by ringline's
// `RinglineSocketServer` instead of `NodeSocketServer`: what an Effect user gets by swapping
// the platform layer. bench/run.mjs compares it with `platform-node`. TCP_NODELAY is the
// ringline default on accepted sockets.
//
// Needs packages/core built (dist) and effect resolvable from this directory.
//
// Run:   node bench/servers/platform-ringline-echo.mjs --port 9000 [--host 127.0.0.1]
// Ready: prints "listening on <host>:<port>" on stdout.
import { Console, Effect } from "effect";
import { parseArgs } from "node:util";
import { echo } from "./platform-echo-handler.mjs";
import { Ringline, RinglineSocketServer } from "../../packages/core/dist/index.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const port = Number(values.port);
const host = values.host;

const main = Effect.gen(function* () {
  const server = yield* RinglineSocketServer.make({ port, host, backlog: 4096 });
  yield* Console.log(`listening on ${host}:${port}`);
  return yield* server.run(echo);
});

// runMain interrupts the program on SIGINT/SIGTERM, closing the server.
Ringline.runMain(main.pipe(Effect.scoped, Effect.provide(Ringline.layerConfig())));

// workers-echo.mjs — the demo's stream echo (packages/core/dist/bin/echoWorker.js) on the main
// thread (--workers 0, what `pnpm run echo` runs) or on N RinglineWorkers worker threads
// (--workers N; N = 1 too, which the demo runs on the main thread), for bench/workers-cost.mjs:
// the same handler on the same ring code, so a difference in cost per request is the thread it
// runs on or the number of workers, nothing else.
//
// `--mode chunks` serves with Listener.serveChunks / RinglineWorkers.serveChunks instead (the
// demo's `--mode chunks`: no fiber per connection); `--mode parse` (main thread only) the demo's
// read(parse) + unsafeWrite handler.
//
// Run:   node bench/servers/workers-echo.mjs --port 9000 [--workers 0|N] [--no-pin] [--acceptor] [--mode stream|parse|chunks]
// Ready: "listening on <host>:<port>" on stdout, then "threads <tid,...>" (the JS threads).
// A line "stats" on stdin prints "stats <json>": the ring counters summed over the JS threads.
import { Effect, Runtime } from "effect";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Address, Listener, Ringline, RinglineWorkers, Tcp } from "../../packages/core/dist/index.js";
import { echoChunk, echoHandlers } from "../../packages/core/dist/bin/echoHandlers.js";
import { echo } from "../../packages/core/dist/internal/echo.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
    workers: { type: "string", default: "0" },
    "no-pin": { type: "boolean", default: false },
    acceptor: { type: "boolean", default: false },
    mode: { type: "string", default: "stream" },
  },
});
const workers = Number(values.workers);
if (values.mode !== "stream" && values.mode !== "parse" && values.mode !== "chunks") throw new Error(`--mode must be stream, parse or chunks, got ${values.mode}`);
if (values.mode === "parse" && workers !== 0) throw new Error("--mode parse runs on the main thread only (--workers 0)");
const COUNTERS = ["cqes", "submitted", "wakeups", "emptyWakeups", "bytesIn", "accepted"];
const pick = (s) => ({ ...Object.fromEntries(COUNTERS.map((k) => [k, s[k] ?? 0])), perWorker: s.perWorker ?? [s.bytesIn] });

/** Answers "stats" lines on stdin with `stats()`'s counters. */
const serveStats = (stats) =>
  createInterface({ input: process.stdin }).on("line", (l) => {
    if (l.trim() === "stats") stats().then((s) => console.log(`stats ${JSON.stringify(pick(s))}`));
  });

const single = Effect.gen(function* () {
  const listener = yield* Tcp.listen({ host: values.host, port: Number(values.port) });
  const run = Runtime.runPromise(yield* Effect.runtime());
  serveStats(() => run(Ringline.stats));
  console.log(`listening on ${Address.format(listener.address)}`);
  console.log(`threads ${process.pid}`);
  if (values.mode === "chunks") return yield* Listener.serveChunks(listener, echoChunk, { onFailure: () => Effect.void });
  const handler = values.mode === "parse" ? echoHandlers.parse : echo;
  return yield* listener.serve((conn) => Effect.ignore(handler(conn)));
}).pipe(Effect.scoped, Effect.provide(Ringline.layerConfig()));

const multi = Effect.gen(function* () {
  const set = yield* RinglineWorkers.launch({
    module: new URL("../../packages/core/dist/bin/echoWorker.js", import.meta.url),
    workers,
    pin: !values["no-pin"],
    mode: values.acceptor ? "acceptor" : "reusePort",
    host: values.host,
    port: Number(values.port),
    data: { mode: values.mode },
  });
  // Summed counters, and each worker's bytes in (its share of the requests).
  serveStats(() => Effect.runPromise(Effect.map(set.stats, (s) => ({ ...s.total, perWorker: s.workers.map((w) => w.stats.bytesIn) }))));
  console.log(`listening on ${Address.format(yield* set.address)}`);
  console.log(`threads ${(yield* set.workers).map((w) => w.tid).join(",")}`);
  return yield* set.join;
}).pipe(Effect.scoped);

Ringline.runMain(workers === 0 ? single : multi);

#!/usr/bin/env node
// effect-ops.mjs — how many Effect run-loop steps (ops) one echoed chunk costs a stream-mode or
// parse-mode connection handler, by kind: a count the machine's load does not change.
//
// Each op is one turn of Effect's fiber run loop (a megamorphic dispatch on the op's tag, the
// tracer's context call, the scheduler's yield check: ~1-1.5k instructions under callgrind,
// bench/README "Stream mode per chunk"), so this count is the lever on the per-chunk cost that
// `workers-cost.mjs` measures in instructions.
//
// Run: node bench/effect-ops.mjs [stream|parse] [--rounds 2000]
// One in-process ringline echo server (the demo's handler, packages/core/dist/bin/echoHandlers.js)
// and one node:net client doing 64 B request/response rounds; after 200 warm-up rounds, every op
// the fibers run is counted (FiberRuntime's op methods wrapped) for --rounds rounds.
import { Effect } from "effect";
import net from "node:net";
import { parseArgs } from "node:util";
import { Ringline, Tcp } from "../packages/core/dist/index.js";
import { echoHandlers } from "../packages/core/dist/bin/echoHandlers.js";

// Not an export of the package: found beside its entry point (the same module instance the
// server's fibers run on, as long as core resolves the same effect, which pnpm's lockfile makes so).
const { FiberRuntime } = await import(new URL("internal/fiberRuntime.js", import.meta.resolve("effect")).href);

const { values: opts, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: "string", default: "2000" } } });
const mode = positionals[0] ?? "stream";
if (echoHandlers[mode] === undefined) throw new Error(`mode must be one of ${Object.keys(echoHandlers).join(", ")}`);
const ROUNDS = Number(opts.rounds);
const WARMUP = 200;

// Every op handler is a method of FiberRuntime named by the op's tag ("Commit", "Success", ...).
const counts = new Map();
let counting = false;
const P = FiberRuntime.prototype;
for (const k of Object.getOwnPropertyNames(P)) {
  if (!/^[A-Z]/.test(k) || typeof P[k] !== "function") continue;
  const op = P[k];
  P[k] = function (primitive) {
    if (counting) counts.set(k, (counts.get(k) ?? 0) + 1);
    return op.call(this, primitive);
  };
}

const program = Effect.gen(function* () {
  const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 });
  yield* Effect.forkScoped(listener.serve((conn) => Effect.ignore(echoHandlers[mode](conn))));
  yield* Effect.promise(() => new Promise((resolve) => {
    const s = net.connect(listener.address.port, "127.0.0.1");
    const msg = Buffer.alloc(64, 7);
    let rounds = 0;
    let got = 0;
    s.on("data", (d) => {
      got += d.length;
      if (got < msg.length) return;
      got = 0;
      rounds++;
      if (rounds === WARMUP) counting = true;
      if (rounds === WARMUP + ROUNDS) {
        counting = false;
        s.end();
        resolve();
        return;
      }
      s.write(msg);
    });
    s.write(msg);
  }));
}).pipe(Effect.scoped, Effect.provide(Ringline.layerConfig()));

await Effect.runPromise(program);
const total = [...counts.values()].reduce((a, b) => a + b, 0);
if (total === 0) throw new Error("no op counted: the effect module patched here is not the one core's fibers run on");
console.log(`${mode}: ${(total / ROUNDS).toFixed(2)} Effect ops per echoed chunk`);
for (const [k, v] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(20)} ${(v / ROUNDS).toFixed(2)}`);
process.exit(0);

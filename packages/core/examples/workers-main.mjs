// The README's RinglineWorkers example (main thread): build (`pnpm exec tsc -b` at the repo root),
// then `node examples/workers-main.mjs [--acceptor] [--chunks]` in packages/core; stop it with
// Ctrl-C. `--chunks` runs workers-chunks.mjs (RinglineWorkers.serveChunks) instead.
import { Effect } from "effect"
import { Address, Ringline, RinglineWorkers } from "@ringline/core"

Ringline.runMain(Effect.scoped(Effect.gen(function*() {
  const set = yield* RinglineWorkers.launch({
    // Every worker imports this.
    module: new URL(process.argv.includes("--chunks") ? "./workers-chunks.mjs" : "./workers-echo.mjs", import.meta.url),
    workers: 2, // default: every CPU
    mode: process.argv.includes("--acceptor") ? "acceptor" : "reusePort",
    port: 0
  })
  console.log(`listening on ${Address.format(yield* set.address)}`)
  // Per-worker counters when the set stops (taken before the workers drain).
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(set.stats, (s) =>
      Effect.sync(() => s.workers.forEach((w) => console.log(`worker ${w.id}: accepted=${w.stats.accepted} closed=${w.stats.closed}`)))
    )
  )
  return yield* set.join // fails only if a worker dies past maxRestarts
})))

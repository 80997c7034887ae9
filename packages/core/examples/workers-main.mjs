// The README's RinglineWorkers example (main thread): build (`pnpm exec tsc -b` at the repo root),
// then `node examples/workers-main.mjs [--acceptor] [--chunks] [--young-generation-mb 12]` in
// packages/core; stop it with Ctrl-C. `--chunks` runs workers-chunks.mjs
// (RinglineWorkers.serveChunks) instead; `--young-generation-mb` caps each worker's young generation.
import { Effect } from "effect"
import { Address, Ringline, RinglineWorkers } from "@ringline/core"

const yg = process.argv.indexOf("--young-generation-mb")

Ringline.runMain(Effect.scoped(Effect.gen(function*() {
  const set = yield* RinglineWorkers.launch({
    // Every worker imports this.
    module: new URL(process.argv.includes("--chunks") ? "./workers-chunks.mjs" : "./workers-echo.mjs", import.meta.url),
    workers: 2, // default: every CPU
    mode: process.argv.includes("--acceptor") ? "acceptor" : "reusePort",
    port: 0,
    // Each worker's V8 young generation, in MiB (12: two 4 MiB semi-spaces); unset: V8's default.
    ...(yg > 0 ? { youngGenerationMb: Number(process.argv[yg + 1]) } : {})
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

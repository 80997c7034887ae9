// The TIMERS.md example: build (`npx tsc -b` at the repo root), then `node examples/timers.mjs` in packages/core.
import { Effect, Layer, Option } from "effect"
import { Ringline, RinglineClock } from "@ringline/core"

const program = Effect.gen(function*() {
  const t0 = process.hrtime.bigint()
  yield* Effect.sleep("50 millis") // one IORING_OP_TIMEOUT on the ring
  console.log(`slept ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`)

  const r = yield* Effect.sleep("10 seconds").pipe(Effect.timeout("20 millis"), Effect.option)
  console.log(`10 s sleep under a 20 ms timeout: ${Option.isNone(r) ? "timed out" : "finished"}`)

  // 10k concurrent sleeps: still one armed timeout in the kernel at a time.
  yield* Effect.forEach(Array.from({ length: 10_000 }, (_, i) => 1 + (i % 200)), (ms) => Effect.sleep(ms), {
    concurrency: "unbounded",
    discard: true
  })
  const stats = Option.getOrThrow(yield* RinglineClock.stats)
  console.log(`woken ${stats.woken}, ring timeouts armed ${stats.armedTotal}, at most ${stats.maxRingOps} in flight`)
})

// RinglineClock.layer needs the ring; provideMerge gives both to the program.
const RingWithClock = RinglineClock.layer.pipe(Layer.provideMerge(Ringline.layer()))

Ringline.runMain(program.pipe(Effect.provide(RingWithClock)))

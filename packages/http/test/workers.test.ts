/**
 * RinglineHttpServer on N workers: the README's runnable example (examples/workers-http-main.mjs
 * launching examples/workers-http.mjs on 2 RinglineWorkers workers) in both modes, answering
 * node:http clients from both workers, then draining on SIGTERM with exit 0 and per-worker counts
 * that add up to the requests made.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { nodeRequest, startDemo } from "./helpers.js"

const main = new URL("../examples/workers-http-main.mjs", import.meta.url).pathname
const REQUESTS = 40

describe("RinglineHttpServer on RinglineWorkers (README example)", () => {
  for (const mode of ["reusePort", "acceptor"] as const) {
    it.live(`${mode}: every request answered, both workers serve, SIGTERM drains with exit 0`, () =>
      Effect.scoped(Effect.gen(function*() {
        const demo = yield* startDemo(mode === "acceptor" ? ["--acceptor"] : [], main)
        // A connection per request (node:http without an agent), 8 at a time.
        const results = yield* Effect.forEach(
          Array.from({ length: REQUESTS }, (_, i) => i),
          () => nodeRequest(demo.port, { path: "/" }),
          { concurrency: 8 }
        )
        const byWorker = [0, 0]
        for (const r of results) {
          expect(r.status).toBe(200)
          const m = /^hello from worker ([01])\n$/.exec(r.body)
          expect(m, r.body).not.toBeNull()
          byWorker[Number(m![1])]++
        }
        expect(byWorker[0]! + byWorker[1]!).toBe(REQUESTS)
        expect(byWorker[0]).toBeGreaterThan(0)
        expect(byWorker[1]).toBeGreaterThan(0)
        expect(yield* demo.stop).toBe(0)
        // The main thread's summary, taken before the workers drained: each worker's ring
        // accepted exactly the connections whose responses named it.
        const accepted = [0, 1].map((id) => Number(new RegExp(`worker ${id}: accepted=(\\d+)`).exec(demo.output())?.[1]))
        expect(accepted).toEqual(byWorker)
      })), { timeout: 60_000 })
  }
})

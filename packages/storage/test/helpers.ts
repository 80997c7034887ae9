/** Storage test helpers: a fresh ring per test with op-table and fd accounting (as core's helpers). */
import { Ringline } from "@ringline/core"
import type { RinglineConfigInput } from "@ringline/core/RinglineConfig"
import { Effect, Layer, type Scope } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** Open file descriptors of this process. */
export const fdCount = (): number => readdirSync("/proc/self/fd").length

/** A fresh temporary directory, removed (with its contents) when the scope closes. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "ringline-storage-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/**
 * Runs `body` with a fresh ring, then checks that releasing the ring left no op in flight and no
 * fd behind.
 */
export const withRing = <A, E>(
  body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>,
  config?: RinglineConfigInput
) =>
  Effect.gen(function*() {
    const before = fdCount()
    const result = yield* Effect.scoped(
      Effect.gen(function*() {
        const a = yield* Effect.scoped(body)
        const stats = yield* Ringline.stats
        if (stats.inFlight !== 0) return yield* Effect.die(new Error(`${stats.inFlight} ops still in flight after the test body`))
        return a
      }).pipe(Effect.provide(Layer.fresh(Ringline.layer(config))))
    )
    const after = fdCount()
    if (after > before) return yield* Effect.die(new Error(`fd leak: ${before} open before, ${after} after`))
    return result
  })

/**
 * Leak-checked test runs: an effect on its own fresh ring, failing if anything it opened
 * outlives it. This is how ringline tests itself (every test of this repository runs through
 * {@link withFreshRing}), offered to users so that their own tests can prove the same: closing a
 * scope closes its sockets and files and finishes its io_uring operations.
 *
 * File descriptors are counted for the whole process, so run leak-checked tests one at a time
 * (vitest `--no-file-parallelism`, no `concurrent` tests).
 *
 * @since 0.1.0
 */
import { Data, Effect, Layer, type Scope } from "effect"
import { readdirSync } from "node:fs"
import * as Ringline from "./Ringline.js"
import type { RinglineConfigInput } from "./RinglineConfig.js"
import type { RinglineConfigError, RinglineUnavailable } from "./RinglineError.js"

/**
 * What a leak-checked run left behind: io_uring operations still in flight when its scope had
 * closed, or more open file descriptors after the run than before it.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResourceLeak extends Data.TaggedError("ResourceLeak")<{
  readonly inFlight: number
  readonly fdsBefore: number
  readonly fdsAfter: number
}> {
  override get message(): string {
    return this.inFlight > 0
      ? `${this.inFlight} io_uring operations still in flight after the scope closed`
      : `file descriptor leak: ${this.fdsBefore} open before, ${this.fdsAfter} after`
  }
}

/**
 * Open file descriptors of this process (entries of /proc/self/fd).
 *
 * @since 0.1.0
 * @category utils
 */
export const openFds = (): number => readdirSync("/proc/self/fd").length

/**
 * Runs `body` in its own scope on a fresh ring (`Ringline.layer(config)`, not shared with any
 * other layer), then fails with {@link ResourceLeak} if, once the body's scope closed, the ring
 * still had operations in flight, or if, once the ring itself was released, the process has more
 * open file descriptors than before.
 *
 * @example
 * ```ts
 * import { it } from "@effect/vitest"
 * import { RinglineTesting, Tcp } from "@ringline/core"
 * import { Effect } from "effect"
 *
 * it.live("a listener closes with its scope", () =>
 *   RinglineTesting.withFreshRing(Effect.gen(function*() {
 *     const listener = yield* Tcp.listen({ port: 0 })
 *     // ... use it; the scope closes it
 *   })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const withFreshRing = <A, E>(
  body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>,
  config?: RinglineConfigInput
): Effect.Effect<A, E | ResourceLeak | RinglineUnavailable | RinglineConfigError> =>
  Effect.gen(function*() {
    const fdsBefore = openFds()
    const result = yield* Effect.scoped(
      Effect.gen(function*() {
        const a = yield* Effect.scoped(body)
        // Everything the body opened was closed with its scope: the op table is empty again.
        const { inFlight } = yield* Ringline.stats
        if (inFlight !== 0) return yield* Effect.fail(new ResourceLeak({ inFlight, fdsBefore, fdsAfter: openFds() }))
        return a
      }).pipe(Effect.provide(Layer.fresh(Ringline.layer(config))))
    )
    // The ring's closes are done; a peer in this process (a node:net client of the test) sees
    // them only when its poll phase comes round, and only then closes its own fd: let the loop
    // go round once past a poll phase before counting (a leaked fd stays leaked).
    yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))
    const fdsAfter = openFds()
    if (fdsAfter > fdsBefore) return yield* Effect.fail(new ResourceLeak({ inFlight: 0, fdsBefore, fdsAfter }))
    return result
  })

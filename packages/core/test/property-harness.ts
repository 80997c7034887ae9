/**
 * Property-test harness: one ring per test file (building a ring per case would dominate the run),
 * one scope per case, and after every case the invariants of the whole argument space:
 * it ended (bounded time), it did not die unless the arguments were of the wrong JavaScript type,
 * no op is in flight and no fd is left open.
 *
 * Cases per property: `RINGLINE_PROPERTY_RUNS` (default 20, so the suite stays fast in CI);
 * `PROPERTY_CASES` counts the cases run, reported after each file.
 */
import { expect } from "@effect/vitest"
import { Cause, type Context, Effect, Exit, Layer, Option, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { Ringline, RinglineTesting } from "../src/index.js"
import type { RinglineConfigInput } from "../src/RinglineConfig.js"

export const RUNS = Math.max(1, Number(process.env.RINGLINE_PROPERTY_RUNS ?? "20"))

/** Cases run in this file, by property name (printed in afterAll). */
export const PROPERTY_CASES = new Map<string, number>()

export type Outcome = "success" | "failure" | "defect"

/** A ring shared by the cases of one file, released (and checked for leaks) after them. */
export const sharedRing = (config?: RinglineConfigInput) => {
  let scope: Scope.CloseableScope | undefined
  let context: Context.Context<Ringline.Ringline> | undefined
  let fdsBefore = 0
  beforeAll(async () => {
    fdsBefore = RinglineTesting.openFds()
    scope = await Effect.runPromise(Scope.make())
    context = await Effect.runPromise(Layer.buildWithScope(Ringline.layer(config), scope))
  })
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope!, Exit.void))
    const total = [...PROPERTY_CASES.values()].reduce((a, b) => a + b, 0)
    console.log(`PROPERTY CASES ${total}: ${[...PROPERTY_CASES].map(([k, v]) => `${k}=${v}`).join(" ")}`)
    expect(RinglineTesting.openFds()).toBeLessThanOrEqual(fdsBefore)
  })
  return {
    provide: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => Effect.provide(effect, context!)) as Effect.Effect<A, E, Exclude<R, Ringline.Ringline>>
  }
}

/** How an exit ended, with the typed failure or the defect. */
export const classify = <A, E>(exit: Exit.Exit<A, E>): { outcome: Outcome; error?: any } => {
  if (Exit.isSuccess(exit)) return { outcome: "success" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return { outcome: "failure", error: failure.value }
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect)) return { outcome: "defect", error: defect.value }
  return { outcome: "defect", error: new Error(`interrupted or other: ${Cause.pretty(exit.cause)}`) }
}

/**
 * One case: `body` in its own scope, ended within `limitMs` (a hang fails the property), then
 * no op in flight and no more fds than before. Returns the body's outcome.
 */
export const oneCase = <A, E>(
  name: string,
  body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>,
  limitMs = 10_000
) =>
  Effect.gen(function*() {
    PROPERTY_CASES.set(name, (PROPERTY_CASES.get(name) ?? 0) + 1)
    const fds = RinglineTesting.openFds()
    const exit = yield* Effect.exit(Effect.scoped(body).pipe(
      Effect.timeoutFail({ duration: limitMs, onTimeout: () => new Error(`${name}: the case did not end within ${limitMs} ms`) })
    ))
    const result = classify(exit)
    if (result.outcome === "failure" && result.error instanceof Error && String(result.error.message).includes("did not end")) {
      throw result.error
    }
    const { inFlight } = yield* Ringline.stats
    expect(inFlight).toBe(0)
    expect(RinglineTesting.openFds()).toBeLessThanOrEqual(fds)
    return result
  })

/**
 * The request's lazily made Scope behaves as `Scope.make()`'s: each scenario runs through the
 * public `Scope`/`Effect` functions on both and must log the same (finalizer order and exits,
 * forks before and after close, late finalizers, a second close, a parallel fork strategy).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, ExecutionStrategy, Exit, Scope } from "effect"
import { RequestScope } from "../src/internal/requestScope.js"

type Scenario = (scope: Scope.CloseableScope, log: Array<string>) => Effect.Effect<void>

const note = (log: Array<string>, what: string) => (exit: Exit.Exit<unknown, unknown>) =>
  Effect.sync(() => {
    log.push(`${what} ${exit._tag}`)
  })

const scenarios: Record<string, Scenario> = {
  "unused, closed": (scope, log) =>
    Effect.zipRight(Scope.close(scope, Exit.void), Effect.sync(() => log.push("closed"))),
  "finalizers run in reverse order with the exit": (scope, log) =>
    Effect.gen(function*() {
      yield* Scope.addFinalizerExit(scope, note(log, "first"))
      yield* Scope.addFinalizerExit(scope, note(log, "second"))
      yield* Scope.close(scope, Exit.fail("boom"))
    }),
  "a finalizer added after close runs at once with the close's exit": (scope, log) =>
    Effect.gen(function*() {
      yield* Scope.close(scope, Exit.fail("early"))
      yield* Scope.addFinalizerExit(scope, note(log, "late"))
      log.push("after late")
    }),
  "a second close does nothing": (scope, log) =>
    Effect.gen(function*() {
      yield* Scope.addFinalizerExit(scope, note(log, "once"))
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(scope, Exit.fail("again"))
    }),
  "a fork is closed with its parent": (scope, log) =>
    Effect.gen(function*() {
      const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      yield* Scope.addFinalizerExit(child, note(log, "child"))
      yield* Scope.addFinalizerExit(scope, note(log, "parent"))
      yield* Scope.close(scope, Exit.void)
    }),
  "a fork closed first is forgotten by its parent": (scope, log) =>
    Effect.gen(function*() {
      const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      yield* Scope.addFinalizerExit(child, note(log, "child"))
      yield* Scope.close(child, Exit.fail("child"))
      yield* Scope.close(scope, Exit.void)
    }),
  "a fork of a closed scope is closed": (scope, log) =>
    Effect.gen(function*() {
      yield* Scope.close(scope, Exit.fail("closed"))
      const child = yield* Scope.fork(scope, ExecutionStrategy.parallel)
      yield* Scope.addFinalizerExit(child, note(log, "child of closed"))
    }),
  "acquireRelease extended into it": (scope, log) =>
    Effect.gen(function*() {
      yield* Scope.extend(
        Effect.acquireRelease(Effect.sync(() => log.push("acquired")), (_, exit) => note(log, "released")(exit)),
        scope
      )
      yield* Scope.close(scope, Exit.void)
    }),
  "a parallel fork runs its finalizers": (scope, log) =>
    Effect.gen(function*() {
      const child = yield* Scope.fork(scope, ExecutionStrategy.parallel)
      yield* Scope.addFinalizerExit(child, note(log, "p1"))
      yield* Scope.addFinalizerExit(child, note(log, "p2"))
      yield* Scope.close(scope, Exit.void)
    })
}

const run = (make: Effect.Effect<Scope.CloseableScope>, scenario: Scenario) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const scope = yield* make
    yield* scenario(scope, log)
    return log
  })

describe("RequestScope", () => {
  for (const [name, scenario] of Object.entries(scenarios)) {
    it.effect(`as Scope.make: ${name}`, () =>
      Effect.gen(function*() {
        const expected = yield* run(Scope.make(), scenario)
        const actual = yield* run(Effect.sync(() => new RequestScope()), scenario)
        expect(actual).toEqual(expected)
      }))
  }

  it.effect("closeNow: nothing to run while unused; the real scope's close once used", () =>
    Effect.gen(function*() {
      const unused = new RequestScope()
      expect(unused.closeNow(Exit.void)).toBeUndefined()
      const log: Array<string> = []
      const used = new RequestScope()
      yield* Scope.addFinalizerExit(used, note(log, "used"))
      const close = used.closeNow(Exit.void)
      expect(close).toBeDefined()
      expect(log).toEqual([])
      yield* close!
      expect(log).toEqual(["used Success"])
    }))
})

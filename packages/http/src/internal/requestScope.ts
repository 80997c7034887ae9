/**
 * The request's `Scope`, made on first use: most requests never add a finalizer to it nor fork it,
 * and then it costs neither a Scope nor the Effect steps of making and closing one (6 of a plain
 * `GET`'s ~60). Once used it is an ordinary `Scope.make()` scope that every call is handed to, so
 * finalizer order, forks, parallel strategies and late finalizers (added after the request ended:
 * run at once with the request's exit) behave exactly as Effect's own.
 *
 * Effect calls a scope through three methods, `addFinalizer`, `fork` and `close` (the `Scope`
 * module's functions are those calls), plus `strategy`; they are not in the public type (marked
 * internal there), so the tests exercise each of them through the public functions
 * (test/requestScope.test.ts).
 */
import { Effect, Exit, ExecutionStrategy, Scope } from "effect"
import { pipeArguments } from "effect/Pipeable"

/** @internal */
export class RequestScope implements Scope.CloseableScope {
  readonly [Scope.ScopeTypeId]: Scope.ScopeTypeId = Scope.ScopeTypeId
  readonly [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId = Scope.CloseableScopeTypeId
  readonly strategy: ExecutionStrategy.ExecutionStrategy = ExecutionStrategy.sequential
  private real: Scope.CloseableScope | undefined = undefined
  /** Closed before it was ever used: the exit a scope made later is closed with first. */
  private closedWith: Exit.Exit<unknown, unknown> | undefined = undefined

  /** The real scope, made now if it is not there yet (and closed at once if this one was). */
  private readonly materialized: Effect.Effect<Scope.CloseableScope> = Effect.suspend(() => {
    if (this.real !== undefined) return Effect.succeed(this.real)
    return Effect.flatMap(Scope.make(this.strategy), (made) => {
      // Another fiber may have made one between the two steps (a yield after the scheduler's op
      // budget): that one is kept, and this empty one closed so nothing made here stays open.
      if (this.real !== undefined) return Effect.as(Scope.close(made, Exit.void), this.real)
      this.real = made
      return this.closedWith === undefined ? Effect.succeed(made) : Effect.as(Scope.close(made, this.closedWith), made)
    })
  })

  addFinalizer(finalizer: Scope.Scope.Finalizer): Effect.Effect<void> {
    return Effect.flatMap(this.materialized, (scope) => Scope.addFinalizerExit(scope, finalizer))
  }

  fork(strategy: ExecutionStrategy.ExecutionStrategy): Effect.Effect<Scope.CloseableScope> {
    return Effect.flatMap(this.materialized, (scope) => Scope.fork(scope, strategy))
  }

  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => this.closeNow(exit) ?? Effect.void)
  }

  /**
   * Closes it from plain code: an unused scope is marked closed at once (`undefined`: nothing to
   * run); a used one returns its real scope's close to run.
   */
  closeNow(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> | undefined {
    if (this.real !== undefined) return Scope.close(this.real, exit)
    if (this.closedWith === undefined) this.closedWith = exit
    return undefined
  }

  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

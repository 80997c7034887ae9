/**
 * A listening socket with accept on the ring (multishot while the fixed-file table has room).
 *
 * @since 0.1.0
 */
import type { Cause, Effect, Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { ConnectionClosed } from "./RinglineError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** The bound address; with port 0 it carries the port the kernel picked. */
  readonly address: Address
  /**
   * The next accepted connection, closed when the caller's scope closes. Accepts are served in
   * call order. The connection is taken from the listener's queue by the accepting fiber itself
   * when it runs, so an accept interrupted before that (`Effect.timeout`, `Effect.race`,
   * `Fiber.interrupt`) takes nothing: the connection goes to the next accept, or, if the listener
   * closes first, is closed and counted in `Ringline.stats.acceptsAbandoned`.
   */
  readonly accept: Effect.Effect<Connection, ConnectionClosed, Scope.Scope>
  /**
   * Accepts until the listener closes, running `handler` for each connection in its own fiber,
   * then completes. The connection is closed (queued sends drained) when its handler ends, fails
   * or is interrupted. A failing handler does not stop the server: its cause (typed with the
   * handler's own error type `E`) goes to `options.onFailure`, by default logged as a warning.
   * Handler fibers belong to the listener's scope: closing that scope stops accepting (and `serve`
   * completes), interrupts them and closes their connections. Interrupting `serve` itself only
   * stops accepting. A handler that throws or returns something other than an Effect fails its
   * own connection with a defect, like a failing handler.
   */
  readonly serve: <E, R, R2 = never>(
    handler: (connection: Connection) => Effect.Effect<unknown, E, R>,
    options?: ServeOptions<E, R2>
  ) => Effect.Effect<void, never, R | R2>
  /** Connections accepted so far. */
  readonly accepted: number
}

/**
 * Options of {@link Listener.serve}.
 *
 * @example
 * ```ts
 * import { Cause, Effect } from "effect"
 * import { Tcp } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const listener = yield* Tcp.listen({ port: 7000 })
 *   // Completes when the listener closes (its scope closes, or the ring shuts down).
 *   yield* listener.serve(
 *     (conn) => conn.write(new TextEncoder().encode("hello\n")),
 *     { onFailure: (cause, conn) => Effect.logError(`connection ${conn.id} failed`, Cause.squash(cause)) }
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ServeOptions<E, R = never> {
  /**
   * Called with the cause of each handler that failed (not for one that was only interrupted);
   * default: `Effect.logWarning("ringline: connection handler failed", cause)`. The connection is
   * still open while it runs and closed afterwards. Its own failures and defects are logged.
   */
  readonly onFailure?: (cause: Cause.Cause<E>, connection: Connection) => Effect.Effect<void, never, R>
}

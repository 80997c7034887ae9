/**
 * A listening socket with accept on the ring (multishot while the fixed-file table has room).
 *
 * @since 0.1.0
 */
import type { Effect, Scope } from "effect"
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
   * Accepts forever, running `handler` for each connection in its own fiber. The connection is
   * closed (queued sends drained) when its handler ends, fails or is interrupted; a failing
   * handler is logged and the server keeps serving. Handler fibers belong to the listener's
   * scope: closing that scope stops accepting, interrupts them and closes their connections.
   * Interrupting `serve` itself only stops accepting. A handler that throws or returns something
   * other than an Effect fails its own connection (logged), like a failing handler.
   */
  readonly serve: <E, R>(handler: (connection: Connection) => Effect.Effect<unknown, E, R>) => Effect.Effect<never, never, R>
  /** Connections accepted so far. */
  readonly accepted: number
}

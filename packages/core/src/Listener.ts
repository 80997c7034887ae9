/**
 * A listening socket with multishot accept on the ring.
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
  /** The next accepted connection, closed when the caller's scope closes. */
  readonly accept: Effect.Effect<Connection, ConnectionClosed, Scope.Scope>
  /**
   * Accepts forever, running `handler` for each connection in its own fiber. The connection is
   * closed (queued sends drained) when its handler ends, fails or is interrupted; a failing
   * handler is logged and the server keeps serving. Handler fibers belong to the listener's
   * scope: closing that scope stops accepting, interrupts them and closes their connections.
   * Interrupting `serve` itself only stops accepting.
   */
  readonly serve: <E, R>(handler: (connection: Connection) => Effect.Effect<unknown, E, R>) => Effect.Effect<never, never, R>
  /** Connections accepted so far. */
  readonly accepted: number
}

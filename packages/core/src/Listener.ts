/**
 * A listening socket with accept on the ring (multishot while the fixed-file table has room), and
 * `serveChunks`: serving without a fiber per connection.
 *
 * @since 0.1.0
 */
import { type Cause, Effect, Option, type Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { ConnectionClosed, SocketError, TlsError } from "./RinglineError.js"
import type { ChunkHandler as InternalChunkHandler } from "./internal/net/chunkServe.js"
import { EMPTY } from "./internal/net/readers.js"
import { show } from "./internal/validate.js"
import { chunkServer } from "./internal/net/serve.js"

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

/**
 * A {@link serveChunks} handler: called with each chunk a connection receives (memory it may
 * keep), and once with an empty chunk at end of stream. It answers `undefined` when it is done
 * with the chunk (writes queued with `connection.unsafeWrite`), or an Effect that the next chunk
 * waits for.
 *
 * @since 0.3.0
 * @category models
 */
export type ChunkHandler<E, R> = InternalChunkHandler<E, R>

/**
 * Accepts until the listener closes, calling `handler` with every chunk each connection
 * receives: a connection costs no fiber while its handler answers synchronously, so an idle
 * connection is its connection state only (about 2.2 KiB of heap), not that plus a suspended
 * fiber (about 8 KiB with `serve`).
 *
 * - Each chunk is everything received at that moment (the bytes of one completion batch), in
 *   order; at end of stream the handler is called once more with an empty chunk, then the
 *   connection is closed (queued sends drained first: an echo's last bytes go out before the FIN).
 * - A handler that answers an Effect runs it in a fiber; the connection's next chunk waits until
 *   it succeeded (bytes keep arriving into the buffer, and receiving pauses above the high-water
 *   mark). Its failure, a throw, or an answer that is neither `undefined` nor an Effect ends that
 *   connection: the cause goes to `options.onFailure` (default: logged as a warning), then the
 *   connection closes. So does a receive error (`SocketError`, e.g. a reset peer).
 * - Writes: `connection.unsafeWrite(bytes)` queues without a fiber. When more than
 *   `sendQueueHighWater` bytes are queued the connection stops receiving until the queue drained
 *   to `sendQueueLowWater`, so a peer that does not read holds no more than that in memory.
 * - Closing the listener's scope is graceful as with `serve`: idle connections are closed at
 *   once, busy ones get up to `shutdownTimeout`; interrupting `serveChunks` only stops accepting.
 *
 * The ring's listeners (`Tcp.listen`, `Unix.listen`, connections handed over by another ring),
 * RinglineTest's, and listeners built over them with `Transport.serveChunksAfter` (`Tls.listen`:
 * a fiber per connection only during its handshake) deliver chunks from the completion; any other
 * `Listener` runs the same contract over `serve`, with one fiber per connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener, Tcp } from "@ringline/core"
 *
 * // An echo server: every chunk back as it arrives, then a close after the peer's FIN.
 * const program = Effect.gen(function*() {
 *   const listener = yield* Tcp.listen({ port: 7000 })
 *   yield* Listener.serveChunks(listener, (chunk, conn) => {
 *     if (chunk.length > 0) conn.unsafeWrite(chunk)
 *   })
 * })
 * ```
 *
 * @since 0.3.0
 * @category serving
 */
export const serveChunks = <E = never, R = never, R2 = never>(
  listener: Listener,
  handler: ChunkHandler<E, R>,
  options?: ServeOptions<E | SocketError | TlsError, R2>
): Effect.Effect<void, never, R | R2> => {
  if (typeof listener !== "object" || listener === null) return Effect.dieMessage(`serveChunks: listener must be a Listener, got ${show(listener)}`)
  if (typeof handler !== "function") return Effect.dieMessage(`serveChunks: handler must be a function, got ${show(handler)}`)
  const direct = chunkServer(listener)
  return direct !== undefined ? direct(handler, options) : listener.serve((c) => chunksOver(c, handler), options)
}

/** serveChunks' contract over a fiber per connection (listeners without completion delivery). */
const chunksOver = <E, R>(c: Connection, handler: ChunkHandler<E, R>): Effect.Effect<void, E | SocketError | TlsError, R> => {
  const step = (chunk: Uint8Array): Effect.Effect<unknown, E, R> =>
    Effect.suspend(() => {
      const answer: unknown = handler(chunk, c)
      if (answer === undefined) return Effect.void
      return Effect.isEffect(answer)
        ? answer as Effect.Effect<unknown, E, R>
        : Effect.die(new TypeError(`serveChunks handler returned ${show(answer)}, not undefined or an Effect`))
    })
  const loop: Effect.Effect<void, E | SocketError | TlsError, R> = Effect.flatMap(
    // The connection closed by the handler itself ends the loop quietly, as on the direct path.
    Effect.catchTag(c.recv, "ConnectionClosed", () => Effect.succeed(undefined)),
    (chunk) => {
      if (chunk === undefined) return Effect.void
      if (Option.isNone(chunk)) return Effect.asVoid(step(EMPTY))
      return Effect.zipRight(step(chunk.value), loop)
    }
  )
  return loop
}

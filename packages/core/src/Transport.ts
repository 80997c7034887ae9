/**
 * The seam between a connection's socket and its byte stream, for packages that transform the
 * bytes of a `Connection` (TLS): a Transport sees every received byte before reassembly and
 * every queued byte before the send queue. Without one a connection moves bytes unchanged.
 *
 * This is the low-level layer `@ringline/tls` is built on; applications do not need it.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { Connection } from "./Connection.js"
import { unsafeInternal } from "./Connection.js"
import { show } from "./internal/validate.js"
import { deriveChunkServer } from "./internal/net/serve.js"
import * as internal from "./internal/transport.js"
import type { Listener } from "./Listener.js"

/**
 * Where a transport delivers: plaintext for the readers, ciphertext for the ordered send queue
 * (from transport memory that stays put until `release(token)`), a clean end, or a fatal error.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportSink extends internal.TransportSink {}

/**
 * A connection's byte transform (see the module documentation).
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport extends internal.Transport {}

/**
 * Memory a transport lends to parsers (its plaintext views): reused as soon as the parser
 * returns, so a write of such a view is copied. Add the ArrayBuffer behind such views here.
 *
 * @since 0.1.0
 * @category lent memory
 */
export const lentBuffers: WeakSet<ArrayBufferLike> = internal.lentBuffers

const connOf = (connection: Connection) => {
  const conn = unsafeInternal(connection)
  if (conn === undefined) throw new TypeError("not a ringline connection (Transport.attach needs one from Tcp, Unix or a Listener)")
  return conn
}

/**
 * Puts the transport `make` builds (given the connection's sink) between `connection`'s socket
 * and its byte stream, and returns it. Bytes that arrived before go through it too. Throws a
 * TypeError for a connection that is not ringline's.
 *
 * @since 0.1.0
 * @category attaching
 */
export const attach = <T extends Transport>(connection: Connection, make: (sink: TransportSink) => T): T =>
  connOf(connection).attachTransport(make)

/**
 * Sends what the transport queued outside its hooks (a client's first flight, a KeyUpdate).
 *
 * @since 0.1.0
 * @category attaching
 */
export const flush = (connection: Connection): void => connOf(connection).flushTransport()

/**
 * For a listener built over another (`Tls.listen` over `Tcp.listen`): makes
 * `Listener.serveChunks(outer, ...)` serve `inner`'s connections straight from their
 * completions (no fiber per connection once served), each first going through `open` (e.g. a
 * handshake attaching a transport). `open` runs in its own fiber, which the listener's graceful
 * shutdown interrupts at once (the connection was never served); when it fails (or is
 * interrupted) the connection is closed unserved, and reporting that is `open`'s business (a throw
 * or an answer that is not an Effect is such a failure, a defect). Returns false, changing
 * nothing, when `inner` has no such serving (then `serveChunks(outer, ...)` runs over
 * `outer.serve`). Throws a TypeError naming the argument when `outer` or `inner` is not an
 * object or `open` not a function.
 *
 * @example
 * ```ts
 * const inner = yield* Tcp.listen({ port: 0 })
 * const outer: Listener = { ...inner, serve: (h, o) => inner.serve((c) => Effect.zipRight(greet(c), h(c)), o) }
 * Transport.serveChunksAfter(outer, inner, greet)
 * ```
 *
 * @since 0.3.0
 * @category attaching
 */
export const serveChunksAfter = (
  outer: Listener,
  inner: Listener,
  open: (connection: Connection) => Effect.Effect<void, unknown>
): boolean => {
  // Checked here, not when a connection arrives: a bad `open` would otherwise fail every
  // connection (and `outer` not being an object is a WeakMap's unnamed TypeError).
  if (typeof outer !== "object" || outer === null) throw new TypeError(`serveChunksAfter: outer must be a Listener, got ${show(outer)}`)
  if (typeof inner !== "object" || inner === null) throw new TypeError(`serveChunksAfter: inner must be a Listener, got ${show(inner)}`)
  if (typeof open !== "function") throw new TypeError(`serveChunksAfter: open must be a function, got ${show(open)}`)
  return deriveChunkServer(outer, inner, open)
}

/**
 * A stream connection (TCP or Unix) whose every read, write and close is an io_uring operation
 * (or, under the in-memory test Layer, an operation on its byte pipe: the semantics below are
 * written once, over either).
 *
 * @since 0.1.0
 */
import { Effect, Option, Sink, Stream } from "effect"
import type { Duration } from "effect"
import type { Address } from "./Address.js"
import { type ConnectionClosed, type EndOfStream, invalidArgument, type SocketError, type TlsError } from "./RinglineError.js"
import type { Channel } from "./internal/net/channel.js"
import type { ReadResult as InternalReadResult } from "./internal/net/readers.js"
import type { Callbacks } from "./internal/net/wire.js"
import { codecs, isOption } from "./internal/sockopt.js"
import { takeInFiber } from "./internal/waiters.js"
import { bytesOf, show } from "./internal/validate.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@ringline/core/Connection")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * What a `read` parser answers: `done(consumed, value)` or `needMore(atLeast?)`.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadResult<A> = InternalReadResult<A>

/**
 * A parser for {@link Connection.read}. It sees the buffered bytes as one `Uint8Array` and must
 * be pure: it may be called again on the same bytes once more arrive. When the bytes came in
 * several receive buffers it may first see only the first buffer's (a prefix of what is
 * buffered: taking it whole lets a write of the view be sent without a copy); if it answers
 * `needMore` there, or consumes nothing, it is called again at once with every buffered byte.
 *
 * **The bytes may be a view into a kernel-provided receive buffer that goes back to the kernel as
 * soon as the parser returns.** Anything kept past the call (including in the returned value)
 * must be copied, e.g. with `bytes.slice(start, end)`.
 *
 * @since 0.1.0
 * @category models
 */
export type Parser<A> = (bytes: Uint8Array) => ReadResult<A>

/**
 * The parser consumed `consumed` bytes and produced `value`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const done = <A>(consumed: number, value: A): ReadResult<A> => ({ _tag: "Done", consumed, value })

const needMoreAny: ReadResult<never> = { _tag: "NeedMore", atLeast: 0 }

/**
 * The buffered bytes are not a whole message yet. With `atLeast`, the parser is not called again
 * until that many bytes are buffered.
 *
 * @since 0.1.0
 * @category constructors
 */
export const needMore = (atLeast?: number): ReadResult<never> =>
  atLeast === undefined ? needMoreAny : { _tag: "NeedMore", atLeast }

/**
 * Errors of the receive side.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReadError = EndOfStream | SocketError | ConnectionClosed | TlsError

/**
 * Errors of the send side.
 *
 * @since 0.1.0
 * @category errors
 */
export type WriteError = SocketError | ConnectionClosed | TlsError

/**
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  readonly [TypeId]: TypeId
  /** Unique within the process. */
  readonly id: number
  /**
   * Runs `parse` over the buffered bytes until it produces a value; see {@link Parser}.
   * At end of stream with nothing buffered the parser is called once with an empty view (so it
   * can return a final value); otherwise the read fails with `EndOfStream` carrying the leftover.
   *
   * Interruption consumes nothing. The parser runs, and its bytes are consumed, only in the fiber
   * that returns the value, as the first thing that fiber runs after the bytes arrived; the value
   * is returned in the same synchronous run. A read interrupted before that (`Fiber.interrupt`,
   * or `Effect.timeout` / `Effect.race` against a sleep, on any clock) leaves every byte for the
   * next read. (`Effect.race` of two reads can still drop the loser's value when both complete in
   * the same turn: Effect keeps only the first; read each connection in its own fiber.)
   *
   * A parser that throws, or answers anything but `done`/`needMore` (`undefined`, `done(NaN)`,
   * `done(n)` with `n` beyond the view, a throwing getter...), fails this read with a defect
   * naming its answer; nothing is consumed and the connection stays usable. Reads are served in
   * call order.
   */
  readonly read: <A>(parse: Parser<A>) => Effect.Effect<A, ReadError>
  /**
   * The next chunk of bytes (yours to keep: nothing received later changes it), or `None` at end
   * of stream. A `read` like any other: an interrupted `recv` consumes nothing. A small chunk's
   * `buffer` may also hold this connection's earlier chunks (they share a slab): `slice()` it
   * before transferring that buffer.
   */
  readonly recv: Effect.Effect<Option.Option<Uint8Array>, SocketError | ConnectionClosed | TlsError>
  /**
   * Every received chunk until end of stream (`recv` repeated). A chunk the stream has pulled
   * belongs to the stream: interrupting its consumer may drop the chunk it was handling.
   */
  readonly stream: Stream.Stream<Uint8Array, SocketError | ConnectionClosed | TlsError>
  /**
   * Writes every chunk it receives, with `write`'s backpressure.
   *
   * Bytes arguments (`sink`, `send`, `write`, `unsafeWrite`, `sendv`, `chain`): a `Uint8Array`
   * (a `Buffer` is one) is sent as is; any other `ArrayBufferView` (`DataView`, `Int32Array`, ...)
   * sends exactly its bytes (`byteOffset`..`byteOffset + byteLength` of its buffer); anything else
   * (a string, a number) dies with a `TypeError` naming the argument before anything is queued
   * (`unsafeWrite` throws it).
   */
  readonly sink: Sink.Sink<void, Uint8Array, never, WriteError>
  /**
   * Queues `bytes` and completes when the kernel has taken all of them (short sends are
   * continued; zero-copy sends complete when the kernel released the memory).
   * Do not modify `bytes` until it completes. Interrupting it stops the wait, not the bytes:
   * they still go out in order, since dropping them would corrupt the stream.
   */
  readonly send: (bytes: Uint8Array) => Effect.Effect<void, WriteError>
  /**
   * Queues `bytes` behind earlier writes and returns at once, unless more than
   * `sendQueueHighWater` bytes are queued: then it waits until the queue drains to
   * `sendQueueLowWater` (backpressure). Errors surface on a later operation or on close.
   * Small writes are copied into the send pool; large ones (at least `sendZeroCopyThreshold`)
   * are sent from `bytes` itself, so do not modify them until the queue has drained.
   */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, WriteError>
  /**
   * `write` without Effect, for use inside a `read` parser (e.g. echoing the parsed view: views of
   * receive buffers are copied). Returns false when the connection cannot take writes any more.
   * Does not apply backpressure itself: check {@link Connection.queuedBytes}.
   */
  readonly unsafeWrite: (bytes: Uint8Array) => boolean
  /**
   * Completes at once unless more than `sendQueueHighWater` bytes are queued; then waits until the
   * queue drained to `sendQueueLowWater`. For code that writes with `unsafeWrite`.
   */
  readonly writable: Effect.Effect<void, WriteError>
  /**
   * Calls `f` once when the receive side has ended (the peer's FIN, a receive error, or this
   * connection closed), at once if it already has. Unlike a read it waits for nothing and consumes
   * nothing, so code that is busy elsewhere while no read is pending still learns that the peer
   * went away (an HTTP server interrupts the handler it is running). `f` runs inside the
   * completion dispatch: it must return quickly and not throw. Bytes received before the end stay
   * buffered for later reads.
   */
  readonly unsafeOnReceiveEnd: (f: () => void) => void
  /** Scatter-gather send: all parts in order, completing when the kernel has taken them all. */
  readonly sendv: (parts: ReadonlyArray<Uint8Array>) => Effect.Effect<void, WriteError>
  /**
   * Sends `parts` as one chain of linked SQEs (IOSQE_IO_LINK): submitted together, executed in
   * order by the kernel, completing once with the total number of bytes sent. At most
   * `maxChainLength` parts per chain (longer lists are split); each part is copied into the send
   * pool when it fits a slot. Where sends cannot be linked (over a TLS transport, or a
   * connection of the in-memory test Layer) the parts go out as ordinary ordered sends, with the
   * same result.
   */
  readonly chain: (parts: ReadonlyArray<Uint8Array>) => Effect.Effect<number, WriteError>
  /** Half-close: sends FIN after everything queued has been sent. Reads continue to work. */
  readonly shutdownWrite: Effect.Effect<void, WriteError>
  /**
   * Drains queued sends (at most `shutdownTimeout`), cancels the receive, and closes the socket;
   * completes after the kernel confirmed every operation of this connection. Idempotent.
   */
  readonly close: Effect.Effect<void>
  readonly localAddress: Effect.Effect<Address, SocketError | ConnectionClosed>
  /**
   * A socket option's current value (see {@link SocketOptions}). The socket lives only in the
   * ring's fixed-file table, so this installs a temporary fd (IORING_OP_FIXED_FD_INSTALL): fine
   * per connection, not per message. Fails with the kernel's errno as a `SocketError` (e.g.
   * `EOPNOTSUPP` for `noDelay` on a Unix socket).
   */
  readonly getOption: <K extends keyof SocketOptions>(name: K) => Effect.Effect<SocketOptions[K], SocketError | ConnectionClosed>
  /**
   * Sets a socket option. A value outside its rule fails with `SocketError` `EINVAL` naming the
   * option (`argument`) before anything reaches the kernel; the kernel's refusal fails with its errno.
   */
  readonly setOption: <K extends keyof SocketOptions>(
    name: K,
    value: SocketOptionInput[K]
  ) => Effect.Effect<void, SocketError | ConnectionClosed>
  /** `setOption("noDelay", enabled)`: TCP_NODELAY (on by default, see `RinglineConfig.tcpNoDelay`). */
  readonly setNoDelay: (enabled: boolean) => Effect.Effect<void, SocketError | ConnectionClosed>
  /**
   * `setOption("keepAlive", enabled)`, and with `idle` also `setOption("keepAliveIdle", idle)`: the
   * quiet time before the first probe.
   */
  readonly setKeepAlive: (enabled: boolean, idle?: Duration.DurationInput) => Effect.Effect<void, SocketError | ConnectionClosed>
  readonly peerAddress: Effect.Effect<Address, SocketError | ConnectionClosed>
  /** Bytes queued for sending and not yet taken by the kernel. */
  readonly queuedBytes: number
  /**
   * Bytes received and not yet consumed by a read. Above `sendQueueHighWater` the connection
   * stops receiving (the peer's sends block in the kernel) until reads bring it to the low mark;
   * bytes the kernel had already placed in provided buffers still arrive, so the bound is the
   * high-water mark plus at most the receive ring.
   */
  readonly bufferedBytes: number
  readonly bytesReceived: number
  readonly bytesSent: number
}

/**
 * The socket options a connection reads with `getOption` and sets with `setOption`, by name, with
 * their types (Linux semantics):
 * - `noDelay`: TCP_NODELAY, send small segments at once (TCP only);
 * - `keepAlive`: SO_KEEPALIVE, probe an idle peer; `keepAliveIdle`: TCP_KEEPIDLE, the quiet time
 *   before the first probe (whole seconds, 1 to 32767);
 * - `sendBufferSize` / `receiveBufferSize`: SO_SNDBUF / SO_RCVBUF in bytes (the kernel doubles
 *   what is set, for its own bookkeeping, and reports the doubled value).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tcp } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const conn = yield* Tcp.connect({ host: "127.0.0.1", port: 7000 })
 *   yield* conn.setKeepAlive(true, "30 seconds")
 *   yield* conn.setOption("receiveBufferSize", 1 << 20)
 *   const noDelay = yield* conn.getOption("noDelay") // true: ringline's default
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface SocketOptions {
  readonly noDelay: boolean
  readonly keepAlive: boolean
  readonly keepAliveIdle: Duration.Duration
  readonly sendBufferSize: number
  readonly receiveBufferSize: number
}

/**
 * What `setOption` accepts for each option: the option's type, and any `Duration.DurationInput`
 * for a duration.
 *
 * @since 0.2.0
 * @category models
 */
export type SocketOptionInput = {
  readonly [K in keyof SocketOptions]: SocketOptions[K] extends Duration.Duration ? Duration.DurationInput : SocketOptions[K]
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isConnection = (u: unknown): u is Connection => typeof u === "object" && u !== null && TypeId in u

const fromCallbacks = <A, E>(register: (cb: Callbacks<A>) => (() => void) | void): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    const withdraw = register({
      ok: (a) => resume(Effect.succeed(a)),
      fail: (e, defect) => resume(defect ? Effect.die(e) : Effect.fail(e as E))
    })
    return withdraw === undefined ? undefined : Effect.sync(withdraw)
  })

/**
 * `parts` with every element as a Uint8Array (other ArrayBufferViews viewed as bytes), checked
 * before any part is queued; throws a TypeError naming the bad element. No copy when all are
 * Uint8Arrays already.
 */
const partsOf = (parts: ReadonlyArray<Uint8Array>, where: string): ReadonlyArray<Uint8Array> => {
  if (!Array.isArray(parts)) throw new TypeError(`${where} must be an array of Uint8Arrays, got ${show(parts)}`)
  let out: Array<Uint8Array> | undefined
  for (let i = 0; i < parts.length; i++) {
    const part: unknown = parts[i]
    if (!(part instanceof Uint8Array)) {
      out ??= parts.slice()
      out[i] = bytesOf(part, `${where}[${i}]`)
    }
  }
  return out ?? parts
}

/**
 * A connection's Effect-facing object. Every member is built on first use and kept: an idle
 * connection (most of them, on a busy server) pays for none of the Effects, Streams and
 * closures it never touches (they were ~5.5 KiB per connection when built up front).
 * Functions (`read`, `write`, ...) are bound, so they can be passed around like the rest.
 */
type Counters = TypeId | "id" | "queuedBytes" | "bufferedBytes" | "bytesReceived" | "bytesSent"

class ConnectionImpl implements Connection {
  readonly [TypeId]: TypeId = TypeId
  readonly id: number
  #lazy: { -readonly [K in Exclude<keyof Connection, Counters>]?: Connection[K] } & {
    waitClosed?: Effect.Effect<void>
    addresses?: Effect.Effect<{ local: Address; peer: Address }, SocketError | ConnectionClosed>
  } = {}

  readonly #conn: Channel
  readonly #shutdownTimeoutMs: number
  readonly #onClose: (conn: Channel) => void

  constructor(conn: Channel, shutdownTimeoutMs: number, onClose: (conn: Channel) => void) {
    this.id = conn.id
    this.#conn = conn
    this.#shutdownTimeoutMs = shutdownTimeoutMs
    this.#onClose = onClose
  }

  // Parsed and consumed in the fiber that returns the value (internal/waiters.ts). Piecewise: the
  // parser may see the first of several held receive buffers alone (readers.ts "Pieces").
  get read(): Connection["read"] {
    const conn = this.#conn
    return this.#lazy.read ??= <A>(parse: Parser<A>): Effect.Effect<A, ReadError> =>
      // Checked at the call: a parser is only called once bytes are there, so a read with no
      // function waited (forever, on a quiet peer) before it failed.
      typeof parse !== "function"
        ? Effect.die(new TypeError(`read: parse must be a function, got ${show(parse)}`))
        : takeInFiber(conn.readers, (w) => conn.tryRead(parse, w, true))
  }

  get recv(): Connection["recv"] {
    const conn = this.#conn
    // Everything buffered, as memory the caller keeps (the reassembly buffer itself when it can
    // be): whole, not piecewise, since every chunk is copied anyway and more chunks cost more.
    const take = <A>(parse: Parser<A>): Effect.Effect<A, ReadError> =>
      takeInFiber(conn.readers, (w) => conn.tryRead(parse, w))
    return this.#lazy.recv ??= take((bytes) =>
      bytes.length === 0 ? done(0, Option.none()) : done(bytes.length, Option.some(conn.keep(bytes)))
    ) as Connection["recv"]
  }

  get stream(): Connection["stream"] {
    return this.#lazy.stream ??= Stream.repeatEffectOption(
      this.recv.pipe(
        Effect.mapError(Option.some),
        Effect.flatMap(Option.match({ onNone: () => Effect.fail(Option.none()), onSome: Effect.succeed }))
      )
    )
  }

  get sink(): Connection["sink"] {
    return this.#lazy.sink ??= Sink.forEach((bytes: Uint8Array) => this.#queueThenWritable(bytes, "sink: chunk"))
  }

  get send(): Connection["send"] {
    return this.#lazy.send ??= (bytes) => Effect.flatMap(this.#enqueue(bytes, "send: bytes"), (target) => this.#waitSent(target))
  }

  get write(): Connection["write"] {
    return this.#lazy.write ??= (bytes) => this.#queueThenWritable(bytes, "write: bytes")
  }

  /**
   * `write`'s one step: queue, then wait only when over the high-water mark (one Effect per
   * write instead of an enqueue, a zipRight and a writable check).
   */
  #queueThenWritable(bytes: Uint8Array, where: string): Effect.Effect<void, WriteError> {
    const conn = this.#conn
    return Effect.suspend(() => {
      const r = conn.enqueue(bytes instanceof Uint8Array ? bytes : bytesOf(bytes, where))
      if (typeof r !== "number") return Effect.fail(r)
      return conn.overHighWater ? this.writable : Effect.void
    })
  }

  get writable(): Connection["writable"] {
    const conn = this.#conn
    return this.#lazy.writable ??= Effect.suspend(() =>
      conn.overHighWater
        ? fromCallbacks<void, WriteError>((cb) => conn.whenDrained(conn.lowWaterMark, cb.ok, cb.fail))
        : Effect.void
    )
  }

  get unsafeOnReceiveEnd(): Connection["unsafeOnReceiveEnd"] {
    const conn = this.#conn
    return this.#lazy.unsafeOnReceiveEnd ??= (f) => {
      if (typeof f !== "function") throw new TypeError(`unsafeOnReceiveEnd: f must be a function, got ${typeof f}`)
      conn.onReceiveEnd(f)
    }
  }

  get unsafeWrite(): Connection["unsafeWrite"] {
    const conn = this.#conn
    return this.#lazy.unsafeWrite ??= (bytes) =>
      typeof conn.enqueue(bytes instanceof Uint8Array ? bytes : bytesOf(bytes, "unsafeWrite: bytes")) === "number"
  }

  get sendv(): Connection["sendv"] {
    const conn = this.#conn
    return this.#lazy.sendv ??= (parts) =>
      Effect.suspend(() => {
        parts = partsOf(parts, "sendv: parts")
        let target = 0
        for (const part of parts) {
          const r = conn.enqueue(part)
          if (typeof r !== "number") return Effect.fail(r)
          target = r
        }
        return this.#waitSent(target)
      })
  }

  get chain(): Connection["chain"] {
    const conn = this.#conn
    return this.#lazy.chain ??= (parts) =>
      Effect.suspend(() => {
        const start = conn.queuedTotal
        const r = conn.enqueueChain(partsOf(parts, "chain: parts"))
        return typeof r === "number" ? Effect.as(this.#waitSent(r), r - start) : Effect.fail(r)
      })
  }

  get shutdownWrite(): Connection["shutdownWrite"] {
    const conn = this.#conn
    return this.#lazy.shutdownWrite ??= fromCallbacks<void, WriteError>((cb) => conn.shutdownWrite(cb))
  }

  get close(): Connection["close"] {
    return this.#lazy.close ??= Effect.uninterruptible(Effect.suspend(() => this.#closeNow()))
  }

  /**
   * One close: the drain of queued sends is what may take long (a peer that does not read), so
   * only a close that has to drain races the shutdown timeout. Otherwise what is left (cancelling
   * the receive, the kernel's CLOSE) is bounded by the kernel, and the close waits for it with
   * no timeout fiber and no timer: most closes are of idle connections, and a timeout fiber
   * per close was a large part of a connection's setup/teardown cost.
   */
  #closeNow(): Effect.Effect<void> {
    const conn = this.#conn
    conn.beginClose()
    const waitClosed = this.#lazy.waitClosed ??= fromCallbacks<void, never>((cb) => conn.onClosed(() => cb.ok()))
    const onClose = this.#onClose
    if (conn.isClosed || !conn.isDraining) {
      return Effect.ensuring(waitClosed, Effect.sync(() => onClose(conn)))
    }
    // Runs inside finalizers (uninterruptible): the wait itself must stay interruptible, or the
    // timeout could never stop it.
    return Effect.interruptible(waitClosed).pipe(
      Effect.timeoutOption(this.#shutdownTimeoutMs),
      Effect.flatMap((o) => {
        if (Option.isSome(o)) return Effect.void
        conn.force()
        return waitClosed
      }),
      Effect.ensuring(Effect.sync(() => onClose(conn)))
    )
  }

  get localAddress(): Connection["localAddress"] {
    return this.#lazy.localAddress ??= Effect.map(this.#addresses, (a) => a.local)
  }

  get peerAddress(): Connection["peerAddress"] {
    return this.#lazy.peerAddress ??= Effect.map(this.#addresses, (a) => a.peer)
  }

  get getOption(): Connection["getOption"] {
    const conn = this.#conn
    return this.#lazy.getOption ??= <K extends keyof SocketOptions>(name: K): Effect.Effect<SocketOptions[K], SocketError | ConnectionClosed> =>
      Effect.suspend(() => {
        if (!isOption(name)) return Effect.fail(invalidArgument("getsockopt", "name", `${show(name)} is not a socket option (${Object.keys(codecs).join(", ")})`))
        const codec = codecs[name]
        return Effect.map(
          fromCallbacks<number, SocketError | ConnectionClosed>((cb) => conn.intOption(codec.level, codec.name, cb)),
          (raw) => codec.decode(raw) as SocketOptions[K]
        )
      })
  }

  get setOption(): Connection["setOption"] {
    const conn = this.#conn
    return this.#lazy.setOption ??= <K extends keyof SocketOptions>(name: K, value: SocketOptionInput[K]): Effect.Effect<void, SocketError | ConnectionClosed> =>
      Effect.suspend(() => {
        if (!isOption(name)) return Effect.fail(invalidArgument("setsockopt", "name", `${show(name)} is not a socket option (${Object.keys(codecs).join(", ")})`))
        const codec = codecs[name] as { level: number; name: number; encode: (v: unknown) => number | string }
        const raw = codec.encode(value)
        if (typeof raw === "string") return Effect.fail(invalidArgument("setsockopt", name, `${raw}, got ${show(value)}`))
        return fromCallbacks<void, SocketError | ConnectionClosed>((cb) => conn.setIntOption(codec.level, codec.name, raw, cb))
      })
  }

  get setNoDelay(): Connection["setNoDelay"] {
    const setOption = this.setOption
    return this.#lazy.setNoDelay ??= (enabled) => setOption("noDelay", enabled)
  }

  get setKeepAlive(): Connection["setKeepAlive"] {
    const setOption = this.setOption
    return this.#lazy.setKeepAlive ??= (enabled, idle) =>
      idle === undefined || !enabled
        ? setOption("keepAlive", enabled)
        : Effect.zipRight(setOption("keepAliveIdle", idle), setOption("keepAlive", enabled))
  }

  get queuedBytes(): number {
    return this.#conn.queuedBytes
  }

  get bufferedBytes(): number {
    return this.#conn.bufferedBytes
  }

  get bytesReceived(): number {
    return this.#conn.bytesIn
  }

  get bytesSent(): number {
    return this.#conn.bytesOut
  }

  get #addresses() {
    const conn = this.#conn
    return this.#lazy.addresses ??= fromCallbacks<{ local: Address; peer: Address }, SocketError | ConnectionClosed>((cb) =>
      conn.addressesOf(cb)
    )
  }

  // Not bytes: a TypeError thrown in `suspend` is a defect, raised before anything is queued.
  #enqueue(bytes: Uint8Array, where: string): Effect.Effect<number, WriteError> {
    const conn = this.#conn
    return Effect.suspend(() => {
      const r = conn.enqueue(bytes instanceof Uint8Array ? bytes : bytesOf(bytes, where))
      return typeof r === "number" ? Effect.succeed(r) : Effect.fail(r)
    })
  }

  #waitSent(target: number): Effect.Effect<void, WriteError> {
    const conn = this.#conn
    return fromCallbacks<void, WriteError>((cb) => conn.whenSent(target, cb.ok, cb.fail))
  }
}

/** @internal */
export const make = (conn: Channel, shutdownTimeoutMs: number, onClose: (conn: Channel) => void): Connection => {
  const connection = new ConnectionImpl(conn, shutdownTimeoutMs, onClose)
  internals.set(connection, conn)
  return connection
}

const internals = new WeakMap<Connection, Channel>()

/**
 * The driver-level connection behind `connection` (for @ringline/tls, which attaches its
 * transport there).
 *
 * @internal
 */
export const unsafeInternal = (connection: Connection): Channel | undefined => internals.get(connection)

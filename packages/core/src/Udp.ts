/**
 * UDP on the ring: one multishot `RECVMSG` per socket into kernel-provided buffers, and
 * `SENDMSG`s with the destination in `msg_name`, any number of them in flight.
 *
 * @since 0.1.0
 */
import { Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import { lookup } from "node:dns/promises"
import type { TcpAddress } from "./Address.js"
import * as Addr from "./Address.js"
import { Errno } from "./internal/errno.js"
import { load } from "./internal/native.js"
import { decode, encodeToBytes, literal, SOCK_DGRAM } from "./internal/sockaddr.js"
import { Op } from "./internal/sqe.js"
import { RECV_OVERHEAD, UdpSock } from "./internal/udp.js"
import { takeInFiber } from "./internal/waiters.js"
import { Ringline } from "./Ringline.js"
import {
  type ConnectionClosed,
  type DatagramTruncated,
  RinglineUnavailable,
  socketError,
  type SocketError
} from "./RinglineError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@ringline/core/Udp")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Where to bind.
 *
 * @since 0.1.0
 * @category models
 */
export interface BindOptions {
  /** Numeric address (`"127.0.0.1"`, `"::1"`, `"0.0.0.0"`, `"::"`) or host name; default `127.0.0.1`. */
  readonly host?: string
  /** 0 (the default) lets the kernel pick a free port; read it from `socket.address`. */
  readonly port?: number
  /** SO_REUSEPORT, for several sockets (e.g. one per worker) on one port. */
  readonly reusePort?: boolean
  /**
   * Datagrams held for readers before the socket stops receiving (default 1024). Then the
   * kernel's socket buffer (SO_RCVBUF) takes over, and what does not fit there is dropped by the
   * kernel, as for any UDP socket that is read too slowly; receiving resumes once reads bring the
   * queue down to half. Datagrams that had already completed are kept, so the queue may exceed
   * this by up to `recvBuffer.ringSize`. ringline itself never drops a received datagram.
   */
  readonly queueCapacity?: number
}

/**
 * A received datagram. `data` is an owned copy: keep it as long as you like.
 *
 * @since 0.1.0
 * @category models
 */
export interface Datagram {
  readonly data: Uint8Array
  /** The sender (a v4-mapped `::ffff:a.b.c.d` for IPv4 peers of a dual-stack `::` socket). */
  readonly address: TcpAddress
}

/**
 * Errors of {@link UdpSocket.recvFrom}: a datagram too large for a receive buffer
 * (`DatagramTruncated`, the socket keeps working), a kernel error, or a closed socket.
 *
 * @since 0.1.0
 * @category errors
 */
export type RecvError = DatagramTruncated | SocketError | ConnectionClosed

/**
 * Errors of {@link UdpSocket.sendTo}.
 *
 * @since 0.1.0
 * @category errors
 */
export type SendError = SocketError | ConnectionClosed

/**
 * A destination: an `Address.TcpAddress` or any `{ host, port }` (a numeric host, or a name
 * resolved with the socket's address family).
 *
 * @since 0.1.0
 * @category models
 */
export type Destination = TcpAddress | { readonly host: string; readonly port: number }

/**
 * A bound UDP socket. It is closed when the scope it was bound in closes: the receive is
 * cancelled, sends still in flight are cancelled, and the fd is closed through the ring once the
 * kernel confirmed every op.
 *
 * @since 0.1.0
 * @category models
 */
export interface UdpSocket {
  readonly [TypeId]: TypeId
  /** The bound address; with port 0 it carries the port the kernel picked. */
  readonly address: TcpAddress
  /**
   * The next datagram, boundaries kept. Readers are served in call order. A datagram larger than
   * `recvBuffer.bufferSize - 44` bytes fails this read with `DatagramTruncated` (carrying the
   * real length and the bytes that fitted); the next read returns the next datagram.
   * A datagram is taken from the socket's queue by the reading fiber itself when it runs, so an
   * interrupted read (`Effect.timeout`, `Effect.race`, `Fiber.interrupt`) takes nothing: the
   * datagram goes to the next read. The socket starts taking
   * datagrams from the kernel at the first read; until then they wait in its socket buffer.
   */
  readonly recvFrom: Effect.Effect<Datagram, RecvError>
  /**
   * Every datagram, as {@link UdpSocket.recvFrom} returns them. Ends when the socket closes;
   * fails on the first error (to skip truncated datagrams instead, build your own stream:
   * `Stream.repeatEffect(recvFrom.pipe(Effect.catchTag("DatagramTruncated", ...)))`).
   */
  readonly stream: Stream.Stream<Datagram, DatagramTruncated | SocketError>
  /**
   * Sends `data` as one datagram to `to`; completes when the kernel took it. Any number of sends
   * may be in flight. Data that fits a send-pool slot is copied at once; larger data is sent from
   * `data` itself, so do not modify it until the send completes. Interrupting a pending send
   * cancels it (completing after the kernel confirmed).
   */
  readonly sendTo: (data: Uint8Array, to: Destination) => Effect.Effect<void, SendError>
  /** Datagrams received and waiting for a reader. */
  readonly queued: number
  /** Datagrams received so far (truncated ones included). */
  readonly datagramsReceived: number
  /** Datagrams the kernel took from `sendTo` so far. */
  readonly datagramsSent: number
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isUdpSocket = (u: unknown): u is UdpSocket => typeof u === "object" && u !== null && TypeId in u

/**
 * Largest datagram a receive buffer of `bufferSize` bytes takes whole (the buffer also holds a
 * 16-byte `io_uring_recvmsg_out` header and 28 bytes of sender address).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDatagramSize = (bufferSize: number): number => bufferSize - RECV_OVERHEAD

/**
 * Binds a UDP socket (IPv4 or IPv6, by the host's family). It is closed when the scope closes.
 * Fails with `RinglineUnavailable` on a Ringline implementation without io_uring or a kernel
 * without `IORING_OP_RECVMSG`, and with `SocketError` when the address cannot be bound.
 *
 * @example
 * ```ts
 * const socket = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
 * const { data, address } = yield* socket.recvFrom
 * yield* socket.sendTo(data, address)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const bind = (
  options: BindOptions = {}
): Effect.Effect<UdpSocket, SocketError | RinglineUnavailable, Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const service = yield* Ringline
    const d = service.driver
    if (d === undefined || d.closed) {
      return yield* new RinglineUnavailable({
        reason: "Other",
        detail: `Udp.bind needs the io_uring driver; this Ringline service (${service.mode}) has none`
      })
    }
    if (d.opcodes[Op.RECVMSG] !== 1 || d.opcodes[Op.SENDMSG] !== 1) {
      return yield* new RinglineUnavailable({
        reason: "MissingOpcode",
        detail: "the kernel lacks IORING_OP_RECVMSG or IORING_OP_SENDMSG; ringline needs Linux 6.8+"
      })
    }
    const capacity = options.queueCapacity ?? 1024
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 0
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      return yield* socketError("bind", Errno.EINVAL, `queueCapacity ${capacity}`)
    }
    const wanted = (literal(host, port) as TcpAddress | undefined) ?? (yield* resolve(host, port, undefined, "bind"))
    const sock = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const native = load()
          const fd = native.listen(encodeToBytes(wanted), 0, options.reusePort === true, SOCK_DGRAM, false)
          let address: TcpAddress
          try {
            const a = decode(native.sockName(fd, false))
            address = a._tag === "TcpAddress" ? a : wanted
          } catch (e) {
            native.closeFd(fd)
            throw e
          }
          return new UdpSock(d, fd, address, capacity)
        },
        catch: (e: any) => socketError(e?.syscall ?? "bind", e?.errno ?? Errno.EINVAL, Addr.format(wanted))
      }),
      (s) => Effect.async<void>((resume) => s.close(() => resume(Effect.void)))
    )
    return make(sock)
  }).pipe(Effect.withSpan("ringline.udp.bind"))

const resolve = (
  host: string,
  port: number,
  family: 4 | 6 | undefined,
  operation: string
): Effect.Effect<TcpAddress, SocketError> =>
  Effect.tryPromise({
    try: () => (family === undefined ? lookup(host) : lookup(host, { family })),
    catch: () => socketError(operation, Errno.ENOENT, `${host}:${port}`)
  }).pipe(Effect.map((r) => Addr.tcp(r.address, port, r.family === 6 ? 6 : 4)))

const make = (sock: UdpSock): UdpSocket => {
  // Taken from the socket's queue by the fiber that returns it (internal/waiters.ts): an
  // interrupted recvFrom takes nothing, the datagram goes to the next one.
  const recvFrom = Effect.suspend(() => {
    sock.start()
    return takeInFiber(sock.readers, (w) => sock.take(w))
  })
  const destination = (to: Destination): Effect.Effect<TcpAddress, SocketError> => {
    if ("_tag" in to && to._tag === "TcpAddress") return Effect.succeed(to)
    return Effect.suspend(() => {
      const lit = literal(to.host, to.port)
      return lit !== undefined ? Effect.succeed(lit as TcpAddress) : resolve(to.host, to.port, sock.address.family, "sendTo")
    })
  }
  const send = (data: Uint8Array, to: TcpAddress) =>
    Effect.async<void, SendError>((resume) => {
      const cancel = sock.sendTo(data, to, {
        ok: () => resume(Effect.void),
        fail: (e) => resume(Effect.fail(e as SendError))
      })
      if (cancel === undefined) return
      return Effect.async<void>((done) => cancel(() => done(Effect.void)))
    })
  return {
    [TypeId]: TypeId,
    address: sock.address,
    recvFrom,
    stream: Stream.repeatEffectOption(
      Effect.catchAll(recvFrom, (e) => e._tag === "ConnectionClosed" ? Effect.fail(Option.none()) : Effect.fail(Option.some(e)))
    ),
    sendTo: (data, to) => Effect.flatMap(destination(to), (t) => send(data, t)),
    get queued() {
      return sock.queued
    },
    get datagramsReceived() {
      return sock.received
    },
    get datagramsSent() {
      return sock.sent
    }
  }
}

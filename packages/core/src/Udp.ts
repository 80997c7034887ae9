/**
 * UDP on the ring: one multishot `RECVMSG` per socket into kernel-provided buffers, and
 * `SENDMSG`s with the destination in `msg_name`, any number of them in flight.
 *
 * @since 0.1.0
 */
import { Effect, Option, Stream } from "effect"
import type { Scope } from "effect"
import type { TcpAddress, UdpAddress } from "./Address.js"
import * as Addr from "./Address.js"
import { Errno } from "./internal/errno.js"
import { load } from "./internal/native.js"
import { decode, encodeToBytes, SOCK_DGRAM } from "./internal/sockaddr.js"
import { Op } from "./internal/ring/abi.js"
import { RECV_OVERHEAD, UdpSock } from "./internal/udp.js"
import { takeInFiber } from "./internal/waiters.js"
import { badCount, badCString, badPort, bytesOf, notBytes, show } from "./internal/validate.js"
import { numeric, resolveCurrent } from "./Resolver.js"
import { Ringline } from "./Ringline.js"
import {
  type DatagramTruncated,
  invalidArgument,
  notAvailable,
  RELEASED,
  RinglineUnavailable,
  type SocketClosed,
  socketError,
  SocketError
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
  readonly address: UdpAddress
  /**
   * Present (only from {@link UdpSocket.stream}) when the datagram was larger than a receive
   * buffer: `data` holds the bytes that fitted, `length` the datagram's real size.
   */
  readonly truncated?: { readonly length: number }
}

/**
 * Errors of {@link UdpSocket.recvFrom}: a datagram too large for a receive buffer
 * (`DatagramTruncated`, the socket keeps working), a kernel error, or a closed socket.
 *
 * @since 0.1.0
 * @category errors
 */
export type RecvError = DatagramTruncated | SocketError | SocketClosed

/**
 * Errors of {@link UdpSocket.sendTo}.
 *
 * @since 0.1.0
 * @category errors
 */
export type SendError = SocketError | SocketClosed

/**
 * A destination: an `Address.UdpAddress` (e.g. a datagram's sender) or any `{ host, port }`: a
 * numeric host, or a host name resolved through the `Resolver` service (the system resolver
 * when none is provided), as `Tcp.connect` does, taking the first address the socket's family
 * can reach. A port outside 0..65535 or a host with a NUL byte fails with `SocketError`
 * (`EINVAL`, naming the argument) before anything is sent.
 *
 * @since 0.1.0
 * @category models
 */
export type Destination = UdpAddress | TcpAddress | { readonly host: string; readonly port: number }

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
  readonly address: UdpAddress
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
   * Every datagram, as {@link UdpSocket.recvFrom} returns them, except that a datagram too large
   * for a receive buffer does not end the stream: it is emitted with `truncated` set (its first
   * bytes in `data`) and the stream goes on. Ends when the socket closes; fails on a kernel error.
   */
  readonly stream: Stream.Stream<Datagram, SocketError>
  /**
   * Sends `data` as one datagram to `to`; completes when the kernel took it. Any number of sends
   * may be in flight. Data that fits a send-pool slot is copied at once; larger data is sent from
   * `data` itself, so do not modify it until the send completes. Interrupting a pending send
   * cancels it (completing after the kernel confirmed). Any `ArrayBufferView` sends its exact
   * bytes; anything else dies with a `TypeError` before anything is sent.
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
    if (d === undefined) return yield* notAvailable("Udp", service.mode)
    if (d.closed || d.released) return yield* new RinglineUnavailable({ reason: "Other", detail: RELEASED })
    if (d.opcodes[Op.RECVMSG] !== 1 || d.opcodes[Op.SENDMSG] !== 1) {
      return yield* new RinglineUnavailable({
        reason: "MissingOpcode",
        detail: "the kernel lacks IORING_OP_RECVMSG or IORING_OP_SENDMSG; ringline needs Linux 6.8+"
      })
    }
    // Only `undefined` means "the default": a null is a bad value like any other.
    if (typeof options !== "object" || options === null) {
      return yield* invalidArgument("bind", "options", `must be an object, got ${show(options)}`)
    }
    const capacity = options.queueCapacity === undefined ? 1024 : options.queueCapacity
    const host = options.host === undefined ? "127.0.0.1" : options.host
    const port = options.port === undefined ? 0 : options.port
    const invalid = argumentError("bind", [
      ["host", badCString(host)],
      ["port", badPort(port)],
      ["queueCapacity", badCount(capacity, 1)]
    ])
    if (invalid !== undefined) return yield* invalid
    const wanted = yield* resolve(host, port, undefined, "bind")
    const sock = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const native = load()
          const fd = native.listen(encodeToBytes(wanted), 0, options.reusePort === true, SOCK_DGRAM, false)
          let address: UdpAddress
          try {
            const a = decode(native.sockName(fd, false))
            address = a._tag === "TcpAddress" ? Addr.udp(a.host, a.port, a.family) : wanted
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

/** The first failing check as a typed error naming its argument. */
const argumentError = (operation: string, checks: ReadonlyArray<readonly [string, string | undefined]>) => {
  for (const [argument, problem] of checks) if (problem !== undefined) return invalidArgument(operation, argument, problem)
  return undefined
}

/**
 * A numeric host as is; a name through the `Resolver` service (the system resolver without
 * one), keeping the first address of `family` (an IPv6 socket reaches IPv4 peers too).
 */
const resolve = (
  host: string,
  port: number,
  family: 4 | 6 | undefined,
  operation: string
): Effect.Effect<UdpAddress, SocketError> => {
  const n = numeric(host)
  if (n !== undefined) return Effect.succeed(Addr.udp(n.address, port, n.family))
  return resolveCurrent(host).pipe(
    Effect.mapError((e) =>
      new SocketError({
        operation,
        errno: Errno.ENOENT,
        code: e.code,
        address: `${host}:${port}`,
        argument: "host",
        detail: `${show(host)} is not an IP address, and as a host name: ${e.message}`
      })
    ),
    Effect.flatMap((all) => {
      const a = family === 4 ? all.find((r) => r.family === 4) : family === 6 ? all.find((r) => r.family === 6) ?? all[0] : all[0]
      return a === undefined
        ? Effect.fail(
          new SocketError({
            operation,
            errno: Errno.ENOENT,
            code: "ENODATA",
            address: `${host}:${port}`,
            argument: "host",
            detail: `${show(host)} has no IPv${family} address for this IPv${family} socket`
          })
        )
        : Effect.succeed(Addr.udp(a.address, port, a.family))
    })
  )
}

const bytesOfError = (data: unknown) => notBytes(data, "sendTo: data")

const make = (sock: UdpSock): UdpSocket => {
  // Taken from the socket's queue by the fiber that returns it (internal/waiters.ts): an
  // interrupted recvFrom takes nothing, the datagram goes to the next one.
  const recvFrom = Effect.suspend(() => {
    sock.start()
    return takeInFiber(sock.readers, (w) => sock.take(w))
  })
  // The last destination checked: an echo loop answers the same sender object again and again
  // (recvFrom reuses one address object per peer), which then costs one comparison.
  let lastTo: Destination | undefined
  let lastAddress: UdpAddress | undefined
  const destination = (to: Destination): Effect.Effect<UdpAddress, SocketError> => {
    if (to === lastTo && to.host === lastAddress!.host && to.port === lastAddress!.port) return Effect.succeed(lastAddress!)
    return Effect.suspend(() => {
      if (to === null || typeof to !== "object") {
        return Effect.fail(invalidArgument("sendTo", "to", `must be { host, port }, got ${show(to)}`))
      }
      const invalid = argumentError("sendTo", [["host", badCString(to.host)], ["port", badPort(to.port)]])
      if (invalid !== undefined) return Effect.fail(invalid)
      const n = numeric(to.host)
      if (n === undefined) return resolve(to.host, to.port, sock.address.family, "sendTo")
      const address = Addr.udp(n.address, to.port, n.family)
      if ("_tag" in to && to._tag === "UdpAddress" && to.host === n.address) {
        lastTo = to
        lastAddress = address
      }
      return Effect.succeed(address)
    })
  }
  const send = (data: Uint8Array, to: UdpAddress) =>
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
      Effect.catchAll(recvFrom, (e): Effect.Effect<Datagram, Option.Option<SocketError>> =>
        e._tag === "SocketClosed"
          ? Effect.fail(Option.none())
          : e._tag === "DatagramTruncated"
          ? Effect.succeed({ data: e.data, address: e.address, truncated: { length: e.length } })
          : Effect.fail(Option.some(e)))
    ),
    sendTo: (data, to) => {
      if (!(data instanceof Uint8Array)) {
        if (!ArrayBuffer.isView(data)) return Effect.die(bytesOfError(data))
        data = bytesOf(data, "sendTo: data")
      }
      return Effect.flatMap(destination(to), (t) => send(data, t))
    },
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

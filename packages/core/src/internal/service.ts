/**
 * The io_uring implementation of the Ringline service: builds the driver, hands out listeners
 * and connections, and at release stops accepting, drains and closes everything, waits for every
 * in-flight op's terminal CQE and only then exits the ring.
 */
import { Duration, Effect, FiberRef, Scope } from "effect"
import { existsSync, lstatSync, unlinkSync } from "node:fs"
import type { Address } from "../Address.js"
import * as Addr from "../Address.js"
import * as Connection from "../Connection.js"
import type { Listener } from "../Listener.js"
import { type ResolveError, resolveCurrent, toTcpAddress } from "../Resolver.js"
import type { ConnectOptions, ConnectTarget, ListenOptions, RinglineService, RinglineStats } from "../Ringline.js"
import type { RinglineConfig } from "../RinglineConfig.js"
import {
  ConnectError,
  invalidArgument,
  invalidConnect,
  RELEASED,
  released,
  RinglineUnavailable,
  socketError,
  SocketError
} from "../RinglineError.js"
import { ConnectOp } from "./connect.js"
import type { Channel } from "./net/channel.js"
import { acceptLoop, type AcceptSource } from "./net/serve.js"
import { Driver } from "./driver.js"
import { Errno } from "./errno.js"
import { Lst } from "./listener.js"
import { unavailable } from "./unavailable.js"
import { load } from "./native.js"
import { decode, encodeToBytes, literal, SOCK_STREAM } from "./sockaddr.js"
import { Op, OpName } from "./ring/abi.js"
import { DispatchScheduler } from "./ring/dispatchScheduler.js"
import { badCount, badCString, badPort, badUnixPath, show } from "./validate.js"


const REQUIRED_OPS: Array<number> = [
  Op.ACCEPT, Op.RECV, Op.SEND, Op.SENDMSG, Op.ASYNC_CANCEL, Op.LINK_TIMEOUT, Op.CONNECT, Op.CLOSE, Op.SHUTDOWN,
  Op.SOCKET, Op.FIXED_FD_INSTALL
]

const resolve = (host: string, port: number): Effect.Effect<Array<Address>, ResolveError> => {
  const lit = literal(host, port)
  if (lit !== undefined) return Effect.succeed([lit])
  // The caller's Resolver service if it provides one, the system resolver (getaddrinfo on
  // libuv's thread pool) otherwise, in the order the resolver prefers.
  return resolveCurrent(host).pipe(Effect.map((all) => all.map((a) => toTcpAddress(a, port))))
}

/** Why a host that is not a numeric address could not be used, in words. */
const unresolved = (host: string, e: ResolveError): string =>
  `${show(host)} is not an IP address, and as a host name: ${e.message}`

/** A listen argument the kernel would misread, as a typed error; undefined when all are fine. */
export const checkListen = (options: ListenOptions): SocketError | undefined => {
  let problem: [string, string | undefined]
  if (options._tag === "Unix") {
    problem = ["path", badUnixPath(options.path)]
  } else {
    problem = ["host", options.host === undefined ? undefined : badCString(options.host)]
    if (problem[1] === undefined) problem = ["port", options.port === undefined ? undefined : badPort(options.port)]
  }
  if (problem[1] === undefined) problem = ["backlog", options.backlog === undefined ? undefined : badCount(options.backlog, 0)]
  return problem[1] === undefined ? undefined : invalidArgument("listen", problem[0], problem[1])
}

/** The same for a connect target. */
export const checkConnect = (target: ConnectTarget): ConnectError | undefined => {
  if (target === null || typeof target !== "object") return invalidConnect(show(target), "target", `must be { host, port } or a Unix address, got ${show(target)}`)
  if ("path" in target) {
    const p = badUnixPath(target.path)
    return p === undefined ? undefined : invalidConnect(`unix:${show(target.path)}`, "path", p)
  }
  const where = `${show(target.host)}:${show(target.port)}`
  const h = badCString(target.host)
  if (h !== undefined) return invalidConnect(where, "host", h)
  const p = badPort(target.port)
  return p === undefined ? undefined : invalidConnect(where, "port", p)
}

export const make = (config: RinglineConfig): Effect.Effect<RinglineService, RinglineUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* Effect.try({
      try: () => new Driver(load(), config),
      catch: (e) => unavailable(e, config)
    })
    const missing = REQUIRED_OPS.concat(config.sendZeroCopyThreshold > 0 ? [Op.SEND_ZC, Op.SENDMSG_ZC] : []).filter((op) =>
      driver.opcodes[op] !== 1
    )
    if (missing.length > 0) {
      driver.close()
      return yield* new RinglineUnavailable({
        reason: "MissingOpcode",
        detail: `the kernel lacks ${missing.map((op) => `IORING_OP_${OpName[op]}`).join(", ")}; ringline needs Linux 6.8+` +
          (missing.every((op) => op === Op.SEND_ZC || op === Op.SENDMSG_ZC) ? " (or set sendZeroCopyThreshold: 0)" : "")
      })
    }

    // Fibers of this scope (and those they fork) run at the end of the completion batch that
    // woke them, instead of a microtask each later; everything else keeps the current scheduler.
    driver.scheduler = new DispatchScheduler(yield* FiberRef.get(FiberRef.currentScheduler))
    yield* Effect.locallyScoped(FiberRef.currentScheduler, driver.scheduler)

    const conns = new Set<Channel>()
    const listeners = new Set<AcceptSource>()
    // One forget for all connections (not a closure per connection: an idle one keeps it).
    const forget = (c: Channel) => conns.delete(c)
    const wrap = (conn: Channel) => Connection.make(conn, config.shutdownTimeoutMs, forget)
    const closeConn = (conn: Channel) => wrap(conn).close

    const waitIdle = Effect.async<void>((resume) => driver.whenIdle(() => resume(Effect.void)))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // From here on every entry point fails at once (typed, nothing submitted) instead of
        // submitting to a ring that is about to go away.
        driver.released = true
        // Stop accepting first, so that a shutdown never takes in new work.
        yield* Effect.forEach([...listeners], (l) => Effect.async<void>((resume) => l.close(() => resume(Effect.void))), {
          concurrency: "unbounded",
          discard: true
        })
        yield* Effect.forEach([...conns], closeConn, { concurrency: "unbounded", discard: true })
        // Every op must have reached its terminal CQE before the ring goes away.
        // (Finalizers are uninterruptible; the waits are made interruptible so timeouts can end them.)
        yield* Effect.interruptible(waitIdle).pipe(Effect.timeoutOption(config.shutdownTimeoutMs + 1000))
        driver.close()
      }).pipe(Effect.withSpan("ringline.shutdown"))
    )

    // A Listener over any source of accepted connections: a listening socket (Lst), or the inbox
    // of connections another ring handed to this one (RinglineWorkers' acceptor mode).
    const adopt = (make: (track: (conn: Channel) => void) => AcceptSource, address: Address): Effect.Effect<Listener, never, Scope.Scope> =>
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        const lst = make((c) => conns.add(c))
        listeners.add(lst)
        yield* Scope.addFinalizer(
          scope,
          Effect.async<void>((resume) => lst.close(() => resume(Effect.void))).pipe(
            Effect.ensuring(Effect.sync(() => listeners.delete(lst)))
          )
        )
        return yield* acceptLoop(lst, address, wrap, config.shutdownTimeoutMs)
      })

    const listen = (options: ListenOptions): Effect.Effect<Listener, SocketError, Scope.Scope> =>
      Effect.gen(function*() {
        if (driver.released) return yield* released("listen")
        const invalid = checkListen(options)
        if (invalid !== undefined) return yield* invalid
        const kind = options._tag === "Unix" ? "unix" as const : "tcp" as const
        const wanted: Address = options._tag === "Unix"
          ? Addr.unix(options.path)
          : literal(options.host ?? "127.0.0.1", options.port ?? 0) ??
            (yield* Effect.mapError(resolve(options.host!, options.port ?? 0), (e) =>
              new SocketError({
                operation: "listen",
                errno: Errno.ENOENT,
                code: e.code,
                address: `${options.host}:${options.port ?? 0}`,
                argument: "host",
                detail: unresolved(options.host!, e)
              })))[0]!
        if (driver.released) return yield* released("listen")
        const backlog = options.backlog ?? config.backlog
        const native = load()
        const fd = yield* Effect.try({
          try: () => {
            if (wanted._tag === "UnixAddress") removeStaleSocket(wanted.path)
            return native.listen(encodeToBytes(wanted), backlog, options._tag === "Tcp" && options.reusePort === true, SOCK_STREAM, config.tcpNoDelay)
          },
          catch: (e: any) => socketError(e?.syscall ?? "listen", e?.errno ?? Errno.EINVAL, Addr.format(wanted))
        })
        const address = wanted._tag === "UnixAddress" ? wanted : decode(native.sockName(fd, false))
        return yield* adopt((track) => new Lst(driver, fd, address, kind, backlog, track), address)
      }).pipe(Effect.withSpan("ringline.listen"))

    const connect = (target: ConnectTarget, options?: ConnectOptions) =>
      Effect.gen(function*() {
        const invalid = checkConnect(target)
        if (invalid !== undefined) return yield* invalid
        if (driver.released) return yield* releasedConnect(target)
        const addresses: Array<Address> = "path" in target
          ? [Addr.unix(target.path)]
          : yield* Effect.mapError(resolve(target.host, target.port), (e) =>
            new ConnectError({
              reason: e.reason === "NotFound" ? "NotFound" : "Other",
              address: `${target.host}:${target.port}`,
              errno: 0,
              code: e.code,
              argument: "host",
              detail: unresolved(target.host, e)
            }))
        if (driver.released) return yield* releasedConnect(target)
        const timeoutMs = options?.timeout === undefined ? undefined : toMillis(options.timeout)
        if (timeoutMs !== undefined && !(timeoutMs >= 0)) {
          return yield* invalidConnect(Addr.format(addresses[0]!), "timeout", `must be a duration of at least 0, got ${show(options!.timeout)}`)
        }
        // Every address of a host name is tried in order (e.g. ::1 refused, then 127.0.0.1); the
        // timeout applies to each attempt; the last failure is reported.
        let failure: ConnectError | undefined
        for (const address of addresses) {
          const attempt = yield* Effect.either(connectTo(address, timeoutMs))
          if (attempt._tag === "Right") return attempt.right
          failure = attempt.left
        }
        return yield* Effect.fail(failure!)
      }).pipe(Effect.withSpan("ringline.connect"))

    const connectTo = (address: Address, timeoutMs: number | undefined) =>
      Effect.gen(function*() {
        const raw = Effect.async<Channel, ConnectError>((resume) => {
          let made: Channel | undefined
          let taken = false
          const op = new ConnectOp(driver, address, timeoutMs, {
            ok: (c) => {
              conns.add(c)
              made = c
              // Taken by the fiber when it runs; an interruption that reaches it first leaves
              // `taken` false and the canceler below closes the connection.
              resume(Effect.sync(() => {
                taken = true
                return c
              }))
            },
            fail: (e) => resume(Effect.fail(e as ConnectError))
          })
          return Effect.async<void>((done) => op.interrupt(() => done(Effect.void))).pipe(
            Effect.zipRight(Effect.suspend(() => (made !== undefined && !taken ? closeConn(made) : Effect.void)))
          )
        })
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(raw), (conn) => {
            const c = wrap(conn)
            return Effect.as(Effect.addFinalizer(() => c.close), c)
          })
        )
      })

    const stats: Effect.Effect<RinglineStats> = Effect.sync(() => ({
      ...driver.stats(),
      connections: conns.size,
      listeners: listeners.size,
      buffers: driver.closed ? undefined : driver.bufferStatus()
    }))

    return { config, listen, connect, stats, mode: driver.mode, driver, adopt } satisfies RinglineService
  })

/** Milliseconds, or undefined for an infinite duration (no timeout); NaN for what is no duration. */
const toMillis = (d: Duration.DurationInput): number | undefined => {
  let ms: number
  try {
    ms = Duration.toMillis(Duration.decode(d))
  } catch {
    return NaN
  }
  return ms === Infinity ? undefined : ms
}

export const releasedConnect = (target: ConnectTarget) =>
  new ConnectError({
    reason: "Other",
    address: "path" in target ? Addr.format(Addr.unix(target.path)) : `${target.host}:${target.port}`,
    errno: 108,
    code: "ESHUTDOWN",
    detail: RELEASED
  })

const removeStaleSocket = (path: string): void => {
  if (path === "" || path[0] === "\0" || !existsSync(path)) return
  // Only a socket file is fair game: never delete a regular file someone mistyped.
  if (lstatSync(path).isSocket()) unlinkSync(path)
}


/**
 * A ringline listener as an `@effect/platform` `SocketServer`: code written against
 * `@effect/platform/SocketServer` (for example the RPC or cluster socket transports) accepts its
 * connections on the ring.
 *
 * The semantics follow `@effect/platform-node`'s `NodeSocketServer`.
 *
 * @since 0.1.0
 */
import type * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import { Cause, Context, Effect, Exit, FiberRef, FiberSet, Layer, LogLevel, Runtime, Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import { show } from "./internal/validate.js"
import type { Ringline, TcpListenOptions, UnixListenOptions } from "./Ringline.js"
import { unscopedAccept } from "./internal/net/serve.js"
import * as RinglineSocket from "./RinglineSocket.js"
import * as Tcp from "./Tcp.js"
import * as Unix from "./Unix.js"

/**
 * Listen on TCP: `Ringline.TcpListenOptions` (`host` defaults to `127.0.0.1`; `port` 0, the
 * default, lets the kernel pick one, read it from the server's `address`).
 *
 * @since 0.1.0
 * @category models
 */
export type TcpOptions = TcpListenOptions

/**
 * Listen on a Unix socket path: `Ringline.UnixListenOptions`.
 *
 * @since 0.1.0
 * @category models
 */
export type UnixOptions = UnixListenOptions

/**
 * @since 0.1.0
 * @category models
 */
export type Options = TcpListenOptions | UnixListenOptions

/**
 * The platform's view of a ringline address (`host` becomes `hostname`).
 *
 * @since 0.1.0
 * @category conversions
 */
export const toPlatformAddress = (address: Address): SocketServer.Address =>
  address._tag === "UnixAddress"
    ? { _tag: "UnixAddress", path: address.path }
    : { _tag: "TcpAddress", hostname: address.host, port: address.port }

/**
 * A failed handler is logged at `FiberRef.unhandledErrorLogLevel`, but never below Warning: that
 * FiberRef defaults to Debug, which hid every failing handler at the default (Info) minimum log
 * level. Setting it to `Option.none()` still silences the report.
 */
const reportUnhandledError = <E>(cause: Cause.Cause<E>) =>
  Effect.withFiberRuntime<void>((fiber) => {
    const level = fiber.getFiberRef(FiberRef.unhandledErrorLogLevel)
    if (level._tag === "None" || Cause.isInterruptedOnly(cause)) return Effect.void
    const at = LogLevel.greaterThan(level.value, LogLevel.Warning) ? level.value : LogLevel.Warning
    return Effect.logWithLevel(at, cause, "Unhandled error in SocketServer")
  })

/**
 * Listens (in the current scope) and returns a platform `SocketServer`:
 *
 * - `address` is the bound address (`TcpAddress` with the real port when you asked for 0, or
 *   `UnixAddress`). A listen failure fails with `SocketServerError` (reason `Open`) whose `cause`
 *   is ringline's `SocketError`.
 * - `run(handler)` accepts forever and runs `handler` for each connection in its own fiber, with
 *   the connection as a platform `Socket` (see `RinglineSocket.fromConnection`) and as the
 *   `RinglineSocket.RinglineConnection` service. A failing handler is logged at
 *   `FiberRef.unhandledErrorLogLevel` but at least Warning, so it shows at the default log level
 *   (message "Unhandled error in SocketServer"; `Option.none()` there silences it) and the server
 *   keeps serving. The connection is closed (queued writes drained first) when the socket's
 *   `run` ends or the handler ends, whichever comes first. Interrupting `run` stops accepting,
 *   interrupts the handlers and waits until their connections are closed. If the listener is
 *   closed under a running `run` (its scope closed) `run` fails with `SocketServerError`
 *   (reason `Unknown`).
 *
 * @example
 * ```ts
 * import { SocketServer } from "@effect/platform"
 * import { Effect } from "effect"
 * import { Ringline, RinglineSocketServer } from "@ringline/core"
 *
 * const echo = Effect.gen(function*() {
 *   const server = yield* SocketServer.SocketServer
 *   yield* server.run((socket) =>
 *     Effect.scoped(Effect.gen(function*() {
 *       const write = yield* socket.writer
 *       yield* socket.run(write)
 *     }))
 *   )
 * })
 * Ringline.runMain(echo.pipe(
 *   Effect.provide(RinglineSocketServer.layer({ port: 7878 })),
 *   Effect.provide(Ringline.layer())
 * ))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<SocketServer.SocketServer["Type"], SocketServer.SocketServerError, Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    // (From JavaScript anything: `in` on a non-object threw inside this Effect, a defect.)
    if (typeof options !== "object" || options === null) {
      return yield* new SocketServer.SocketServerError({
        reason: "Open",
        cause: new TypeError(`RinglineSocketServer.make: options must be an object, got ${show(options)}`)
      })
    }
    const listener = yield* Effect.mapError(
      "path" in options ? Unix.listen(options) : Tcp.listen(options),
      (cause) => new SocketServer.SocketServerError({ reason: "Open", cause })
    )
    return fromListener(listener)
  })

/**
 * A `SocketServer` over any ringline `Listener` (e.g. one from `Tls.listen`): `run` accepts from
 * it and hands each connection to the handler as a platform `Socket`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = (listener: Listener): SocketServer.SocketServer["Type"] => {
    /**
     * A connection's handler, closing the connection when it ends: one mask and one match (not
     * catchAllCause + ensuring), since each connection's fiber keeps this frame for its whole life.
     */
    const serveOne = <R, E, _>(
      conn: Connection,
      handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>,
      close: Effect.Effect<void>
    ): Effect.Effect<void, never, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.matchCauseEffect(restore(Effect.suspend(() => handler(RinglineSocket.fromConnection(conn)))), {
          onFailure: (cause) => Effect.ensuring(restore(reportUnhandledError(cause)), close),
          onSuccess: () => close
        })
      )

    const run = <R, E, _>(
      handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>
    ): Effect.Effect<never, SocketServer.SocketServerError, R> =>
      Effect.scopedWith((scope) =>
        Effect.gen(function*() {
          // Handler fibers live in run's scope: interrupting run interrupts them (and waits for
          // their connections to close).
          const fiberSet = yield* FiberSet.make().pipe(Scope.extend(scope))
          const runtime = yield* Effect.runtime<R>()
          // Each handler's fiber starts with its connection as the RinglineConnection service
          // (a context of its own rather than a provideService frame on its stack).
          const fork = (conn: Connection, effect: Effect.Effect<void, never, R>): void => {
            const rt = Runtime.make({
              context: Context.add(runtime.context, RinglineSocket.RinglineConnection, conn),
              runtimeFlags: runtime.runtimeFlags,
              fiberRefs: runtime.fiberRefs
            })
            FiberSet.unsafeAdd(fiberSet, Runtime.runFork(rt)(effect))
          }
          const unscoped = unscopedAccept(listener)
          if (unscoped !== undefined) {
            // The listener's own connections: each handler's fiber closes its connection when it
            // ends, without a Scope per connection (an idle connection keeps its fiber's frames
            // and nothing else).
            const take = Effect.mapError(
              unscoped.take,
              (cause) => new SocketServer.SocketServerError({ reason: "Unknown", cause })
            )
            while (true) {
              yield* Effect.uninterruptibleMask((restore) =>
                Effect.flatMap(restore(take), (channel) =>
                  Effect.sync(() => {
                    const conn = unscoped.wrap(channel)
                    fork(conn, serveOne(conn, handler, conn.close))
                  }))
              )
            }
          }
          while (true) {
            yield* Effect.uninterruptibleMask((restore) =>
              Effect.gen(function*() {
                // Each connection gets its own scope (closing it closes the connection), so a
                // long-running server does not accumulate finalizers.
                const connScope = yield* Scope.make()
                const conn = yield* restore(Scope.extend(listener.accept, connScope)).pipe(
                  Effect.onError(() => Scope.close(connScope, Exit.void)),
                  Effect.mapError((cause) => new SocketServer.SocketServerError({ reason: "Unknown", cause }))
                )
                fork(conn, serveOne(conn, handler, Scope.close(connScope, Exit.void)))
              })
            )
          }
        })
      )

    return SocketServer.SocketServer.of({ address: toPlatformAddress(listener.address), run })
}

/**
 * {@link make} as a Layer of the platform's `SocketServer` service; the listener closes with the
 * Layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError, Ringline> =>
  Layer.scoped(SocketServer.SocketServer, make(options))

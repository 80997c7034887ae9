/**
 * ringline connections as `@effect/platform` sockets: code written against
 * `@effect/platform/Socket` (`run`, `writer`, `Socket.toChannel`, …) runs on the ring unchanged.
 *
 * The semantics follow `@effect/platform-node`'s `NodeSocket` (the TCP implementation of the same
 * interface): `run` serves one connection until the peer's end of stream, `writer` waits until
 * `run` has opened the socket, releasing the writer half-closes the connection, and writing a
 * `CloseEvent` closes it.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import { Channel, Context, Effect, Exit, Layer, Option, Runtime, Scope } from "effect"
import type { Chunk, Duration } from "effect"
import { type Connection, isConnection, unsafeInternal } from "./Connection.js"
import { DirectWrites, pushReads, RunState } from "./internal/socketRun.js"
import { show } from "./internal/validate.js"
import type { ConnectTarget, Ringline } from "./Ringline.js"
import * as Tcp from "./Tcp.js"
import * as Unix from "./Unix.js"

/**
 * The ringline connection behind the platform socket, provided to the effects that
 * `Socket.run` forks for each chunk and to `RinglineSocketServer` handlers (like
 * `NodeSocket.NetSocket` for `@effect/platform-node`). Gives access to ringline-only operations
 * such as `peerAddress` or `queuedBytes`. The platform's `run` signatures cannot remove it from
 * the requirements, so read it with `Effect.serviceOption(RinglineConnection)`.
 *
 * @since 0.1.0
 * @category tags
 */
export class RinglineConnection extends Context.Tag("@ringline/core/RinglineSocket/RinglineConnection")<
  RinglineConnection,
  Connection
>() {}

/**
 * Options of {@link fromConnection}.
 *
 * @since 0.1.0
 * @category models
 */
export interface FromConnectionOptions {
  /**
   * Close the connection (queued writes drained first) when `run` ends, as `NodeSocket` does
   * with its `net.Socket`. Default `true`; with `false` the connection stays open (its scope
   * still closes it) and `run` may be called again.
   */
  readonly closeWhenDone?: boolean | undefined
}

/**
 * Where {@link makeNet} connects: `Ringline.ConnectTarget` (a TCP host, numeric or a name, and
 * port, or a Unix socket path) under its old name.
 *
 * @since 0.1.0
 * @category models
 */
export type NetTarget = ConnectTarget

/**
 * Options of {@link makeNet}.
 *
 * @since 0.1.0
 * @category models
 */
export interface NetOptions {
  /** Fail the open with `SocketGenericError` (reason `Open`) if not connected within this time. */
  readonly timeout?: Duration.DurationInput | undefined
}

interface Current {
  readonly conn: Connection
  readonly state: RunState<any>
  writeShut: boolean
}

const readError = (cause: { readonly _tag: "SocketError" | "ConnectionClosed" | "TlsError" }): Socket.SocketError =>
  cause._tag === "ConnectionClosed"
    // The connection was closed on this side (like a destroyed net.Socket's "close" event).
    ? new Socket.SocketCloseError({ reason: "Close", code: 1000 })
    : new Socket.SocketGenericError({ reason: "Read", cause })

const writeError = (cause: unknown): Socket.SocketError => new Socket.SocketGenericError({ reason: "Write", cause })

/**
 * What `run` reports after a `CloseEvent` was written: the same as `NodeSocket`, whose
 * `net.Socket.destroy()` ends `run` with a clean `SocketCloseError` (code 1000) and whose
 * `destroy(error)` (codes above 1000) ends it with a `Read` error.
 */
/** Stateless, so one for every socket. */
const encoder = new TextEncoder()

/** `onOpen`, then the run's outcome. */
const opened = <E>(onOpen: Effect.Effect<void> | undefined, state: RunState<E>): Effect.Effect<void, E> =>
  onOpen === undefined ? state.await() : Effect.zipRight(onOpen, state.await())

const closeEventError = (event: Socket.CloseEvent): Socket.SocketError =>
  event.code > 1000
    ? new Socket.SocketGenericError({ reason: "Read", cause: new Error(`closed with code ${event.code}`) })
    : new Socket.SocketCloseError({ reason: "Close", code: 1000 })

/**
 * The read side of `run` for a connection of any kind: one chunk at a time through `recv`, in a
 * fiber. (Connections made by ringline take the push path of internal/socketRun.ts instead.)
 */
const readLoop = (conn: Connection, deliver: (chunk: Uint8Array) => void): Effect.Effect<void, Socket.SocketError> =>
  Effect.gen(function*() {
    while (true) {
      const chunk = yield* Effect.mapError(conn.recv, readError)
      if (Option.isNone(chunk)) return
      deliver(chunk.value)
    }
  })

/**
 * Builds a platform socket whose `run` opens a connection with `open` (in `run`'s scope) and
 * serves it until end of stream. `openContext` supplies what `open` needs (undefined: nothing).
 */
const fromOpen = <RO>(
  open: Effect.Effect<Connection, Socket.SocketError, RO>,
  openContext: Context.Context<Exclude<RO, Scope.Scope>> | undefined
): Socket.Socket => {
  let current: Current | undefined
  // Writes made while no `run` is running wait on this latch; made on the first such write
  // (most sockets never need it, and a latch is a dozen closures and effects).
  let runLatch: Effect.Latch | undefined
  /**
   * The last Effect `write` returned for bytes, and those bytes: when a `run` handler returns
   * exactly that Effect (`socket.run(write)`), `run` queues the bytes itself instead of forking
   * a fiber to do it. Forking would run the write at once, up to its wait for the kernel, so
   * the bytes go out in the same order either way; the wait becomes one watcher per connection.
   */
  let lastWrite: Effect.Effect<void, Socket.SocketError> | undefined
  let lastBytes: Uint8Array | undefined

  /**
   * Serves `conn` (opened in `scope`) until `run` ends. Built without a fiber of its own and
   * without a generator function per call: an idle connection's `run` is its caller's fiber
   * suspended in `state.await()`, the RunState and the reader's registration.
   */
  const serveOpen = <_, E, R>(
    conn: Connection,
    scope: Scope.Scope,
    handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
    onOpen: Effect.Effect<void> | undefined
  ): Effect.Effect<void, Socket.SocketError | E, R> =>
    Effect.flatMap(Effect.provideService(Effect.runtime<R>(), RinglineConnection, conn), (runtime) => {
      const state = new RunState<E | Socket.SocketError>(Runtime.runFork(runtime as Runtime.Runtime<unknown>))
      // Registered after the connection's: runs before it (stops reading, interrupts the
      // forked effects), so the connection's close then drains what they queued.
      return Effect.zipRight(Scope.addFinalizer(scope, Effect.suspend(() => state.stop())), Effect.suspend(() => {
        const internal = unsafeInternal(conn)
        if (internal !== undefined) {
          state.writes = new DirectWrites(internal, (e) => state.decide(Exit.fail(writeError(e))))
        }
        current = { conn, state, writeShut: false }
        runLatch?.unsafeOpen()
        // Every received chunk is owned memory, so the handler may keep it. The effects the
        // handler returns are forked (started at once, in order, as NodeSocket does on "data").
        // A forked fiber may reach its write only after a scheduler turn, so while one is alive
        // the handler's writes are forked too, behind it: queued at once, they could overtake it.
        const deliver = (chunk: Uint8Array): void => {
          const result = handler(chunk)
          // Forgotten at once: an idle connection must not keep its last chunk alive.
          const bytes = lastBytes
          const matched = (result as unknown) === lastWrite
          lastWrite = lastBytes = undefined
          if (!Effect.isEffect(result)) return
          if (state.writes !== undefined && !state.forking && matched) return state.writes.write(bytes!)
          state.fork(result as Effect.Effect<unknown, unknown>)
        }
        if (internal !== undefined) {
          state.stopReads = pushReads(internal, deliver, readError, state.readsEnded)
        } else {
          // Another kind of connection (e.g. TLS): its reads in a fiber of the run's scope.
          const reading = Effect.forkIn(Effect.onExit(readLoop(conn, deliver), (exit) =>
            Effect.sync(() => {
              if (!Exit.isInterrupted(exit)) state.readsEnded(exit)
            })), scope)
          return Effect.zipRight(reading, opened(onOpen, state))
        }
        return opened(onOpen, state)
      }))
    })

  // Each context change stays on the fiber's stack while `run` waits (an idle connection's
  // memory), so none is made when `open` needs nothing.
  const withOpenContext = <A, E, R>(effect: Effect.Effect<A, E, R | Exclude<RO, Scope.Scope>>): Effect.Effect<A, E, R> =>
    openContext === undefined
      ? effect as Effect.Effect<A, E, R>
      : Effect.mapInputContext(effect, (input: Context.Context<R>) => Context.merge(openContext, input))

  const run = <_, E = never, R = never>(
    handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
    opts?: { readonly onOpen?: Effect.Effect<void> | undefined }
  ): Effect.Effect<void, Socket.SocketError | E, R> =>
    withOpenContext(
      Effect.scopedWith((scope) =>
        // The scope's first finalizer, so its last: `run` is over once the connection is closed.
        Effect.zipRight(
          Scope.addFinalizer(scope, runEnded),
          Effect.flatMap(Scope.extend(open, scope), (conn) => serveOpen(conn, scope, handler, opts?.onOpen))
        )
      )
    ).pipe(Effect.interruptible)
  const runEnded = Effect.sync(() => {
    runLatch?.unsafeClose()
    current = undefined
  })

  const writeNow = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> =>
    Effect.suspend(() => {
      const cur = current
      // No run yet, or woken by a run that has ended since: wait for the next one.
      if (cur === undefined) return (runLatch ??= Effect.unsafeMakeLatch(false)).whenOpen(writeNow(chunk))
      if (Socket.isCloseEvent(chunk)) {
        cur.state.decide(Exit.fail(closeEventError(chunk)))
        // Start closing now (later writes fail, as on a destroyed net.Socket); `run`'s scope
        // waits for the close to complete.
        Effect.runFork(cur.conn.close)
        return Effect.void
      }
      // `send` completes once the kernel took the bytes (a net.Socket write's callback), so the
      // caller may reuse its buffer afterwards even when it went out zero-copy.
      return Effect.mapError(cur.conn.send(typeof chunk === "string" ? encoder.encode(chunk) : chunk), writeError)
    })
  const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> => {
    const effect = Effect.suspend(() => writeNow(chunk))
    if (chunk instanceof Uint8Array) {
      lastWrite = effect
      lastBytes = chunk
    }
    return effect
  }

  // Built on first use (an idle connection that never asked for a writer keeps none).
  let writer: Effect.Effect<typeof write, never, Scope.Scope> | undefined
  const makeWriter = () =>
    Effect.acquireRelease(
      Effect.succeed(write),
      () =>
        Effect.sync(() => {
          const cur = current
          if (cur === undefined || cur.writeShut) return
          cur.writeShut = true
          // Half-close (FIN once queued bytes are sent), without waiting, like net.Socket.end().
          Effect.runFork(Effect.ignore(cur.conn.shutdownWrite))
        })
    )

  return Socket.Socket.of({
    [Socket.TypeId]: Socket.TypeId,
    run,
    runRaw: run,
    get writer() {
      return writer ??= makeWriter()
    }
  })
}

/**
 * A platform `Socket` over an open ringline connection (from `Tcp.connect`, `Unix.connect` or
 * `listener.accept`).
 *
 * - `run(handler)` calls `handler` with every received chunk (the handler's to keep) and forks
 *   the effects it returns; it completes at the peer's end of stream (once the effects started
 *   for earlier chunks have finished) and fails with the handler's error, `SocketGenericError`
 *   (reason `Read`) on a receive error, or `SocketCloseError` (code 1000) when the connection
 *   was closed on this side. When it ends the connection is closed, queued writes drained first
 *   (see {@link FromConnectionOptions.closeWhenDone}).
 * - `writer` waits until `run` is running; a write completes when the kernel took the bytes and
 *   fails with reason `Write`. Releasing the writer's scope half-closes (FIN); writing a
 *   `CloseEvent` closes the connection and ends `run` with `SocketCloseError` (code 1000), or
 *   with a `Read` error for codes above 1000 — the same as `NodeSocket`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RinglineSocket, Tcp } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const conn = yield* Tcp.connect("127.0.0.1:7878")
 *   const socket = RinglineSocket.fromConnection(conn)
 *   const write = yield* socket.writer
 *   yield* socket.run((bytes) => Effect.log(`got ${bytes.length} bytes`), { onOpen: Effect.orDie(write("hello\n")) })
 * })
 * ```
 *
 * Throws a `TypeError` naming `conn` when it is not a ringline `Connection`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromConnection = (conn: Connection, options?: FromConnectionOptions): Socket.Socket => {
  // Checked at the call: anything else would fail only inside the first `run`, as a defect far
  // from the mistake.
  if (!isConnection(conn)) {
    throw new TypeError(`RinglineSocket.fromConnection: conn must be a ringline Connection, got ${show(conn)}`)
  }
  return fromOpen(
    options?.closeWhenDone === false
      ? Effect.succeed(conn)
      // A plain finalizer (not acquireRelease's, which keeps a copy of the fiber's FiberRefs
      // for as long as `run` waits).
      : Effect.as(Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, conn.close)), conn),
    undefined
  )
}

/**
 * A platform `Socket` that connects through ringline when `run` is called, like
 * `NodeSocket.makeNet`: each `run` opens a new connection (TCP `{ host, port }` or Unix
 * `{ path }`), serves it as {@link fromConnection} does and closes it when `run` ends. A failed
 * connect (refused, not found, timed out) fails `run` with `SocketGenericError` (reason `Open`)
 * whose `cause` is ringline's `ConnectError`.
 *
 * @example
 * ```ts
 * import { Socket } from "@effect/platform"
 * import { Effect, Stream } from "effect"
 * import { Ringline, RinglineSocket } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port: 7878 }, { timeout: "2 seconds" })
 *   // Send one message, half-close, collect the answer until the server closes.
 *   return yield* Stream.make(new TextEncoder().encode("hello\n")).pipe(
 *     Stream.pipeThroughChannel(Socket.toChannel(socket)),
 *     Stream.decodeText(),
 *     Stream.mkString
 *   )
 * })
 * Effect.runPromise(program.pipe(Effect.provide(Ringline.layer())))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNet = (target: NetTarget, options?: NetOptions): Effect.Effect<Socket.Socket, never, Ringline> =>
  Effect.map(Effect.context<Ringline>(), (context) => {
    // A target that is no object is Tcp.connect's to reject (typed, naming it) when the socket
    // opens; `in` on it threw here, a defect.
    const connect = typeof target !== "object" || target === null
      ? Tcp.connect(target, options)
      : "path" in target
      ? Unix.connect(target.path, options)
      : Tcp.connect({ host: target.host, port: target.port }, options)
    return fromOpen(
      Effect.mapError(connect, (cause) => new Socket.SocketGenericError({ reason: "Open", cause })),
      context
    )
  })

/**
 * {@link makeNet} as a Layer of the platform's `Socket` service.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNet = (target: NetTarget, options?: NetOptions): Layer.Layer<Socket.Socket, never, Ringline> =>
  Layer.effect(Socket.Socket, makeNet(target, options))

/**
 * {@link makeNet} as a `Channel` (see `Socket.toChannel`): chunks written to it are sent, its
 * input ending half-closes the connection, and it emits what the peer sends until end of stream.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNetChannel = <IE = never>(
  target: NetTarget,
  options?: NetOptions
): Channel.Channel<
  Chunk.Chunk<Uint8Array>,
  Chunk.Chunk<Uint8Array | string | Socket.CloseEvent>,
  Socket.SocketError | IE,
  IE,
  void,
  unknown,
  Ringline
> => Channel.unwrap(Effect.map(makeNet(target, options), Socket.toChannelWith<IE>()))

/**
 * A `Listener` over any source of accepted connections: a listening socket on the ring
 * (../listener.ts), the inbox of connections another ring handed over (../inbox.ts), or the
 * in-memory test Layer's. Owns `accept` (taken in the fiber that returns it), `serve` (one fiber
 * per connection, user-code guard, logged failures), `serveChunks`' listener side (the
 * connections themselves: chunkServe.ts) and the graceful drain of handlers when the listener's
 * scope closes (idle handlers ended early, the rest after the shutdown timeout).
 */
import { Cause, Clock, Effect, type Exit, type Fiber, FiberRef, FiberSet, Runtime, RuntimeFlags, Scope } from "effect"
import type { Address } from "../../Address.js"
import type { Connection } from "../../Connection.js"
import type { Listener, ServeOptions } from "../../Listener.js"
import type { ConnectionClosed } from "../../RinglineError.js"
import { takeInFiber, type Waiter, type WaiterQueue } from "../waiters.js"
import type { Channel } from "./channel.js"
import { type ChunkHandler, ChunkServe, type ChunkServing, type ReceiveError } from "./chunkServe.js"
import { show } from "../validate.js"

/** What a Listener accepts from: a listening socket, a handed-off connection inbox, a test source. */
export interface AcceptSource {
  /** Accepts waiting for a connection; woken when one is queued or the source closes. */
  readonly acceptors: WaiterQueue
  /** Takes the next connection for `w` in the fiber that returns it (../waiters.ts). */
  take(w: Waiter): Exit.Exit<Channel, ConnectionClosed> | undefined
  close(done: () => void): void
  readonly accepted: number
}

/**
 * A listener's accept without a finalizer, for an owner that closes each connection itself (the
 * platform SocketServer, which would otherwise build a Scope per connection only to close it).
 * `take` must run as `uninterruptibleMask((restore) => flatMap(restore(take), ...))`: the
 * channel it returns is the caller's to `wrap` and close.
 */
export interface UnscopedAccept {
  readonly take: Effect.Effect<Channel, ConnectionClosed>
  readonly wrap: (channel: Channel) => Connection
}

const unscoped = new WeakMap<Listener, UnscopedAccept>()

/** `listener`'s {@link UnscopedAccept}, when it is one of acceptLoop's (undefined for others, e.g. TLS). */
export const unscopedAccept = (listener: Listener): UnscopedAccept | undefined => unscoped.get(listener)

/**
 * What a connection goes through before its chunks are served (a TLS handshake): it runs in a
 * fiber of the listener's handler set; failing, it leaves the connection to be closed unserved
 * (reporting is its own business).
 */
export type Opening = (connection: Connection) => Effect.Effect<void, unknown>

/** The chunk serving of acceptLoop's listeners (Listener.serveChunks; undefined for others). */
export type ServeChunks = <E = never, R = never, R2 = never>(
  handler: ChunkHandler<E, R>,
  options?: ServeOptions<E | ReceiveError, R2>,
  open?: Opening
) => Effect.Effect<void, never, R | R2>

const chunkServers = new WeakMap<Listener, ServeChunks>()

/** `listener`'s chunk serving when it is one of acceptLoop's or derived from one (else undefined). */
export const chunkServer = (listener: Listener): ServeChunks | undefined => chunkServers.get(listener)

/**
 * Gives `outer` (a listener built over `inner`, e.g. TLS's) `inner`'s chunk serving, each
 * connection first going through `open`. False when `inner` has none (outer's serveChunks
 * then runs over its `serve`).
 */
export const deriveChunkServer = (outer: Listener, inner: Listener, open: Opening): boolean => {
  const direct = chunkServers.get(inner)
  if (direct === undefined) return false
  chunkServers.set(outer, (handler, options) => direct(handler, options, open))
  return true
}

/**
 * `open(connection)` as an Effect that fails (a defect) rather than throws: `open` is user code
 * (`Transport.serveChunksAfter`), and a throw while its fiber built the opening would end that
 * fiber before the close that follows a failed opening, leaving the connection open and the
 * shutdown's drain waiting for it until the timeout.
 */
const opening = (open: Opening, connection: Connection): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    const o: unknown = open(connection)
    return Effect.isEffect(o)
      ? o as Effect.Effect<void, unknown>
      : Effect.die(new TypeError(`serveChunksAfter's open returned ${show(o)}, not an Effect`))
  })

/** serve's default report of a failed handler. */
const logFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> => Effect.logWarning("ringline: connection handler failed", cause)

/** A failed handler's report: the user's `onFailure`, whose own failures are logged. */
const report = <E, R>(
  onFailure: (cause: Cause.Cause<E>, c: Connection) => Effect.Effect<void, never, R>,
  cause: Cause.Cause<E>,
  c: Connection
): Effect.Effect<void, never, R> =>
  Effect.suspend(() => onFailure(cause, c)).pipe(
    Effect.catchAllCause((e) => Effect.logWarning("ringline: serve onFailure failed", e))
  )

/** How often a graceful shutdown looks for handlers that went idle. */
const IDLE_SWEEP_MS = 20
/** How long an idle connection must stay quiet during a shutdown before its handler is ended. */
const IDLE_QUIET_MS = 200

/**
 * The Listener serving `source`'s connections, each turned into a `Connection` by `wrap`. Its
 * scope's close closes `source`, then gives handlers up to `shutdownTimeoutMs` to end (FiberSet
 * interrupts the rest). The caller tracks the source itself (stats, release).
 */
export const acceptLoop = (
  source: AcceptSource,
  address: Address,
  wrap: (channel: Channel) => Connection,
  shutdownTimeoutMs: number
): Effect.Effect<Listener, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    // Handler fibers live in the listener's scope. Closing it is graceful: the socket closes
    // first (new connects are refused), running handlers get up to shutdownTimeoutMs to finish
    // on their own, and only then are the rest interrupted (FiberSet's own finalizer, which
    // runs after this one); each interrupted handler's connection still flushes its queue.
    const handlers = yield* FiberSet.make()
    // Each connection's handler by its connection, for the shutdown's idle sweep: serve's fiber,
    // or serveChunks' ChunkServe (no fiber while idle; the drain also waits for those to end).
    const serving = new Map<Channel, Fiber.RuntimeFiber<unknown, unknown> | ChunkServe<any, any>>()
    // ChunkServes running, plus connections still going through their Opening (each becomes one).
    let chunkServes = 0
    /** The shutdown stopped every ChunkServe: one whose Opening ends later stops at once. */
    let stopped = false
    /** The fibers of Openings in progress: a shutdown ends them at once (nothing was served yet). */
    const openings = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
    let chunkServesEnded: (() => void) | undefined
    const forget = (conn: Channel, chunks: boolean): void => {
      if (!serving.delete(conn) || !chunks) return
      if (--chunkServes === 0) chunkServesEnded?.()
    }
    const stopHandler = (h: Fiber.RuntimeFiber<unknown, unknown> | ChunkServe<any, any>): void =>
      h instanceof ChunkServe ? h.stop() : h.unsafeInterruptAsFork(h.id())
    // Every ChunkServe has ended (each has forked its close into `handlers` by then).
    const chunkServesDone = Effect.async<void>((resume) => {
      if (chunkServes === 0) return resume(Effect.void)
      chunkServesEnded = () => resume(Effect.void)
      return Effect.sync(() => {
        chunkServesEnded = undefined
      })
    })
    // A handler that waits for input with nothing buffered and nothing queued, and has seen
    // no byte in or out for IDLE_QUIET_MS, would only wait out the timeout: interrupting it
    // loses nothing. The quiet period spares a client that is mid-transfer and merely
    // between two writes. Checked every IDLE_SWEEP_MS during the shutdown (a handler may
    // finish its work and go idle).
    const drainHandlers = Effect.suspend(() => {
      const quietSince = new Map<Channel, { activity: number; at: number }>()
      // The quiet period is on the Effect clock, like the sweep's sleep: under a TestClock
      // (RinglineTest) both move together, so an advance past the period ends idle handlers.
      const sweepIdle = Effect.map(Clock.currentTimeMillis, (now) => {
        for (const [conn, handler] of serving) {
          const activity = conn.bytesIn + conn.bytesOut
          const seen = quietSince.get(conn)
          if (!conn.idle || seen === undefined || seen.activity !== activity) {
            quietSince.set(conn, { activity, at: now })
          } else if (now - seen.at >= IDLE_QUIET_MS) {
            stopHandler(handler)
          }
        }
      })
      return Effect.raceFirst(
        Effect.zipRight(chunkServesDone, FiberSet.awaitEmpty(handlers)),
        Effect.forever(Effect.zipRight(sweepIdle, Effect.sleep(IDLE_SWEEP_MS)))
      )
    })
    yield* Scope.addFinalizer(
      scope,
      Effect.async<void>((resume) => source.close(() => resume(Effect.void))).pipe(
        Effect.zipRight(Effect.sync(() => {
          for (const f of openings) f.unsafeInterruptAsFork(f.id())
        })),
        Effect.zipRight(Effect.timeoutOption(Effect.interruptible(drainHandlers), shutdownTimeoutMs)),
        // Past the timeout: FiberSet's finalizer interrupts the fibers; ChunkServes have none
        // while idle, so they are stopped here (each forks its close into the set first).
        Effect.zipRight(Effect.sync(() => {
          stopped = true
          for (const h of serving.values()) if (h instanceof ChunkServe) h.stop()
        }))
      )
    )
    // Taken from the listener's queue by the fiber that returns it (internal/waiters.ts).
    const acceptRaw = takeInFiber(source.acceptors, (w) => source.take(w))
    const accept = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(acceptRaw), (conn) => {
        const c = wrap(conn)
        return Effect.as(Effect.addFinalizer(() => c.close), c)
      })
    )
    /** Accepts until the listener closes, handing each connection to `start` (synchronously). */
    const acceptEach = (start: (conn: Channel) => void): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          const open = yield* Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(restore(acceptRaw), (conn) =>
              Effect.sync(() => {
                start(conn)
                return true
              })
            )
          ).pipe(
            // The listener closed (its scope, or the ring's release): serving is over.
            Effect.catchTag("ConnectionClosed", () => Effect.succeed(false))
          )
          if (!open) return
        }
      })
    const serve = <E, R, R2 = never>(
      handler: (c: Connection) => Effect.Effect<unknown, E, R>,
      options?: ServeOptions<E, R2>
    ): Effect.Effect<void, never, R | R2> =>
      Effect.flatMap(Effect.runtime<R | R2>(), (runtime) => {
        const onFailure = options?.onFailure ?? logFailure
        // Handler fibers start uninterruptible (their runtime says so) and open an interruptible
        // region around the handler only: an interruption that comes first (the listener's
        // shutdown) waits for that region, fails it at once, and the close below still runs.
        // An uninterruptibleMask inside each fiber would do the same with two more Effects, two
        // closures and a RevertFlags frame that every idle connection's fiber keeps (~0.35 KB).
        const fork = Runtime.runFork(Runtime.disableRuntimeFlag(runtime, RuntimeFlags.Interruption))
        return acceptEach((conn) => {
          const c = wrap(conn)
          // One match around the handler (not catchAllCause + ensuring + zipRight): each
          // connection's fiber keeps this frame for its whole life, so it is built small,
          // and the close is built only when the handler has ended.
          const finish = () => Effect.ensuring(c.close, Effect.sync(() => forget(conn, false)))
          const fiber = fork(Effect.matchCauseEffect(
            Effect.interruptible(Effect.suspend(() => {
              // The handler is user code: a throw or a non-Effect answer is that
              // connection's defect (reported below), never the accept loop's.
              const h: unknown = handler(c)
              return Effect.isEffect(h)
                ? h as Effect.Effect<unknown, E, R>
                : Effect.die(new TypeError(`serve handler returned ${show(h)}, not an Effect`))
            })),
            {
              onFailure: (cause) =>
                Cause.isInterruptedOnly(cause)
                  ? finish()
                  : Effect.ensuring(Effect.interruptible(report(onFailure, cause, c)), finish()),
              onSuccess: finish
            }
          ))
          // A closed set interrupts the fiber: it fails its interruptible region and closes
          // the connection (FiberSet.runtime's run would not have run it, leaving it open).
          FiberSet.unsafeAdd(handlers, fiber)
          serving.set(conn, fiber)
        })
      })
    const serveChunks: ServeChunks = <E, R, R2 = never>(
      handler: ChunkHandler<E, R>,
      options?: ServeOptions<E | ReceiveError, R2>,
      open?: Opening
    ): Effect.Effect<void, never, R | R2> =>
      Effect.flatMap(Effect.zip(FiberSet.runtime(handlers)<R | R2>(), FiberRef.get(FiberRef.currentScheduler)), ([run, scheduler]) => {
        const onFailure = options?.onFailure ?? logFailure
        const shared: ChunkServing<E, R | R2> = {
          handler,
          scheduler,
          run,
          // Masked as a whole: a shutdown that interrupts this fiber still closes the connection.
          finish: (s, cause) =>
            Effect.uninterruptibleMask((restore) => {
              s.ending()
              forget(s.channel, true)
              const close = s.connection.close
              return cause === undefined || Cause.isInterruptedOnly(cause)
                ? close
                : Effect.ensuring(restore(report(onFailure, cause, s.connection)), close)
            })
        }
        const begin = (s: ChunkServe<E, R | R2>): void => {
          serving.set(s.channel, s)
          s.start()
          if (stopped) s.stop()
        }
        return acceptEach((conn) => {
          const s = new ChunkServe(conn, wrap(conn), shared)
          chunkServes++
          if (open === undefined) return begin(s)
          // The opening's fiber stands for the connection until it is served; a shutdown
          // interrupts it at once (nothing was served, nothing is lost). Failed or interrupted,
          // the connection closes unserved. (The fiber starts at once: it may have ended
          // before `run` returns.)
          let settled = false
          let fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
          fiber = run(Effect.uninterruptibleMask((restore) =>
            Effect.matchCauseEffect(restore(opening(open, s.connection)), {
              onFailure: () =>
                Effect.ensuring(
                  s.connection.close,
                  Effect.sync(() => {
                    settled = true
                    if (fiber !== undefined) openings.delete(fiber)
                    serving.delete(conn)
                    if (--chunkServes === 0) chunkServesEnded?.()
                  })
                ),
              onSuccess: () =>
                Effect.sync(() => {
                  settled = true
                  if (fiber !== undefined) openings.delete(fiber)
                  begin(s)
                })
            })
          ))
          if (settled) return
          serving.set(conn, fiber)
          openings.add(fiber)
        })
      })
    const listener: Listener = {
      address,
      accept,
      serve,
      get accepted() {
        return source.accepted
      }
    }
    unscoped.set(listener, { take: acceptRaw, wrap })
    chunkServers.set(listener, serveChunks)
    return listener
  })

/**
 * Thread-per-core: N `worker_threads`, each with its own ring, buffers and fixed-file table,
 * optionally pinned to a core, serving one port together.
 *
 * The main thread calls {@link launch} (or {@link runMain}) with a module; every worker imports
 * it and runs its default export, an Effect, with its own `Ringline` service and a
 * {@link WorkerContext}. Handler code is the same in both modes:
 *
 * - `reusePort` (default): every worker listens on the same port with SO_REUSEPORT and the
 *   kernel spreads connections by hash.
 * - `acceptor`: the main thread's ring accepts and hands each connection to the least-loaded (or
 *   next) worker's ring with IORING_OP_MSG_RING + IORING_MSG_SEND_FD; the worker's ring gets a
 *   CQE with the new fixed slot and serves it like an accepted connection.
 *
 * Workers talk to each other with {@link WorkerContext.notify} (a 64-bit payload in a MSG_RING
 * CQE) and {@link WorkerContext.send} (a body in a shared-memory mailbox plus such a wake-up),
 * without the main thread's event loop.
 *
 * @since 0.1.0
 */
import { Context, Data, Effect } from "effect"
import type { Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import * as internal from "./internal/workers.js"
import * as Listener from "./Listener.js"
import type { ChunkHandler, ServeOptions } from "./Listener.js"
import type { RinglineStats } from "./Ringline.js"
import type { RinglineConfigInput } from "./RinglineConfig.js"
import type { RinglineConfigError, RinglineUnavailable, SocketError, TlsError } from "./RinglineError.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Mode = "reusePort" | "acceptor"

/**
 * Options of {@link launch}. Everything crosses to the workers by structured clone.
 *
 * @since 0.1.0
 * @category models
 */
export interface LaunchOptions {
  /**
   * The worker program: an absolute path or a `file:` URL of an ES module whose default export
   * (or `program` export) is an `Effect` needing at most `Ringline`, {@link WorkerContext} and
   * `Scope`.
   */
  readonly module: string | URL
  /** Number of workers; default: the CPUs this process may use (`os.availableParallelism()`). */
  readonly workers?: number
  /**
   * Pin worker i to the ((coreOffset + i) mod k)-th of the k CPUs this process may use
   * (sched_setaffinity on the worker's own thread); default true: each worker's ring, buffers
   * and caches stay on one core. Where the workers share every core with other busy processes
   * (no spare core: a load generator on the same machine, a container given fewer CPUs than it
   * sees), `false` lets the scheduler move a worker off a busy core (bench/README.md,
   * "Placement").
   */
  readonly pin?: boolean
  /** Index (among the allowed CPUs) of the first CPU used for pinning; default 0. */
  readonly coreOffset?: number
  /** Default `reusePort`. */
  readonly mode?: Mode
  /** Where to listen; default `127.0.0.1`. Numeric addresses only. */
  readonly host?: string
  /** Default 0: the kernel picks one port and every worker shares it. */
  readonly port?: number
  /** Listen backlog (of each worker's socket, or of the acceptor's). */
  readonly backlog?: number
  /** Acceptor mode: to the worker with the fewest open connections (default), or the next one. */
  readonly balance?: "leastLoaded" | "roundRobin"
  /**
   * How many times a worker that died (its program failed or ended, it threw, it was terminated)
   * is started again; default 3. When exhausted, the whole set goes down ({@link WorkerSet.join}
   * fails with {@link WorkerFailed}). 0: the first death brings the set down.
   */
  readonly maxRestarts?: number
  /** Each worker's ring configuration; default: read from the environment (`RinglineConfig.config`). */
  readonly config?: RinglineConfigInput
  /** Bytes of each worker-to-worker mailbox (power of two, 4096..16 MiB); default 65536. */
  readonly mailboxBytes?: number
  /** Whether {@link launch} waits until every worker listened (default true). */
  readonly awaitListening?: boolean
  /** Anything structured-clonable, given to every worker as {@link WorkerContext.data}. */
  readonly data?: unknown
  /**
   * The most each worker's V8 young generation may grow to, in MiB: Node's `worker_threads`
   * `resourceLimits.maxYoungGenerationSizeMb`, set per worker from the program (the command
   * line's `--max-semi-space-size` sets one value for every isolate of the process, workers
   * included). V8 (Node 20) makes each of the two semi-spaces the power of two at or above a third
   * of it: 12 gives 4 MiB semi-spaces (8 MiB of young generation, as `--max-semi-space-size=4`),
   * 24 gives 8, 48 gives 16; an integer from 1 to 4096.
   *
   * Default: unset, the process's limit (V8's default, up to 16 MiB semi-spaces, which a program
   * that imports `effect` reaches). A smaller young generation scavenges more often, each pause
   * shorter, over less memory: what helps a pipelined server's latency tail and idle memory per
   * connection on one thread (README, "Many idle connections"). It is not the default because it
   * did not lower the CPU per request of 2 workers (measured with 4 MiB semi-spaces: 4× the
   * scavenges, a larger summed pause per request, CPU per request unchanged or higher;
   * bench/README.md, "Placement").
   */
  readonly youngGenerationMb?: number
}

/**
 * A message from another worker.
 *
 * @since 0.1.0
 * @category models
 */
export type WorkerMessage =
  | { readonly _tag: "Notify"; readonly from: number; readonly payload: bigint }
  | { readonly _tag: "Body"; readonly from: number; readonly body: Uint8Array }

/**
 * What a worker's program sees of the set it belongs to.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerContext {
  /** 0..count-1; a restarted worker keeps its id. */
  readonly id: number
  readonly count: number
  readonly mode: Mode
  /** The CPUs this worker's thread may run on (one when pinned). */
  readonly cpus: ReadonlyArray<number>
  /** {@link LaunchOptions.data}. */
  readonly data: unknown
  /**
   * This worker's share of the set's port: its own SO_REUSEPORT listener, or the inbox of
   * connections the acceptor hands to it. Either way a `Listener` (serve it like any other).
   * Call it once; the launcher counts a worker as listening from then on.
   */
  readonly listen: Effect.Effect<Listener.Listener, SocketError, Scope.Scope>
  /**
   * Tells the launcher this worker listens, for programs that listen by other means than
   * {@link WorkerContext.listen} (a Layer-based server on the launch's fixed `port` with
   * `reusePort: true`), so that `launch` (awaitListening) returns once every worker serves.
   */
  readonly reportListening: Effect.Effect<void>
  /** The port the launch was given (or, with port 0, the one worker 0 or the acceptor bound). */
  readonly port: Effect.Effect<number>
  /**
   * Posts a 64-bit payload to worker `to` (a MSG_RING CQE on its ring). Completes at once, without
   * suspending: the message is queued on this worker's ring and reaches the kernel before this
   * thread's event loop next waits (one resume per message, as with `postMessage`; delivering it
   * costs this ring no completion). Fails at once with `NoSuchWorker`, or `WorkerGone` when `to`
   * has no ring now (exited, restarting). A delivery the kernel refuses (errno) is not reported
   * by the call that queued it but by the next `notify` or `send` to the same worker, which fails
   * with `WorkerGone` carrying that errno (the earliest such failure since the last call), and it
   * counts in the worker's `errors` (WorkerSet `stats`).
   */
  readonly notify: (to: number, payload: bigint) => Effect.Effect<void, WorkerChannelError>
  /**
   * Copies `body` into the mailbox to worker `to` and wakes it: completes once the body is in
   * the mailbox and the wake-up queued, failures reported as for {@link WorkerContext.notify}
   * (plus `MailboxFull`, `TooLarge` at once). A body whose wake-up failed stays in the mailbox.
   */
  readonly send: (to: number, body: Uint8Array) => Effect.Effect<void, WorkerChannelError>
  /** The next message from another worker (in order per sender). */
  readonly receive: Effect.Effect<WorkerMessage>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const WorkerContext: Context.Tag<WorkerContext, WorkerContext> = Context.GenericTag<WorkerContext>(
  "@ringline/core/RinglineWorkers/WorkerContext"
)

/**
 * This worker's listener (see {@link WorkerContext.listen}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const listen: Effect.Effect<Listener.Listener, SocketError, Scope.Scope | WorkerContext> = Effect.flatMap(
  WorkerContext,
  (w) => w.listen
)

/**
 * Listens (see {@link WorkerContext.listen}) and serves every connection with `handler` (see
 * `Listener.serve` for `options.onFailure`) until the listener closes or this is interrupted:
 * the one line a worker program needs.
 *
 * @since 0.1.0
 * @category accessors
 */
export const serve = <E, R, R2 = never>(
  handler: (connection: Connection) => Effect.Effect<unknown, E, R>,
  options?: ServeOptions<E, R2>
): Effect.Effect<void, SocketError, R | R2 | WorkerContext> =>
  Effect.scoped(Effect.flatMap(listen, (l) => l.serve(handler, options)))

/**
 * Listens (see {@link WorkerContext.listen}) and serves every connection with `Listener.serveChunks`
 * until the listener closes or this is interrupted: each chunk a connection receives goes to
 * `handler` from the completion that brought it, with no fiber per connection while the handler
 * answers synchronously (see `Listener.serveChunks` for the contract: the empty chunk at end of
 * stream, an Effect answer the next chunk waits for, `connection.unsafeWrite`, backpressure).
 * Both modes deliver per chunk: a connection the acceptor handed over is served exactly like one
 * this worker accepted. The graceful drain is `serve`'s: idle connections close at once, busy
 * ones get `shutdownTimeout`.
 *
 * @example
 * ```ts
 * // worker.ts: an echo, each chunk back as it arrives
 * import { RinglineWorkers } from "@ringline/core"
 * export default RinglineWorkers.serveChunks((chunk, conn) => {
 *   if (chunk.length > 0) conn.unsafeWrite(chunk)
 * })
 * ```
 *
 * @since 0.3.0
 * @category accessors
 */
export const serveChunks = <E = never, R = never, R2 = never>(
  handler: ChunkHandler<E, R>,
  options?: ServeOptions<E | SocketError | TlsError, R2>
): Effect.Effect<void, SocketError, R | R2 | WorkerContext> =>
  Effect.scoped(Effect.flatMap(listen, (l) => Listener.serveChunks(l, handler, options)))

/**
 * A worker channel operation failed: `NoSuchWorker` (bad index), `WorkerGone` (its ring is gone,
 * or refused an earlier message: `errno` then says why, see {@link WorkerContext.notify}),
 * `MailboxFull` (the receiver is behind), or `TooLarge` (a body over half the mailbox).
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerChannelError extends Data.TaggedError("WorkerChannelError")<{
  readonly reason: "NoSuchWorker" | "WorkerGone" | "MailboxFull" | "TooLarge"
  readonly to: number
  readonly errno?: number
  readonly detail: string
}> {
  override get message(): string {
    return `message to worker ${this.to} failed (${this.reason}): ${this.detail}`
  }
}

/**
 * A worker died and could not be restarted (or restarts are off): the set is going down.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerFailed extends Data.TaggedError("WorkerFailed")<{
  readonly worker: number
  readonly restarts: number
  /** What killed it: the program's failure (Cause.pretty), the uncaught error, or the exit code. */
  readonly cause: string
}> {
  override get message(): string {
    return `ringline worker ${this.worker} died after ${this.restarts} restart(s): ${this.cause}`
  }
}

/**
 * A worker's death, as reported (and logged) by the launcher.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerDeath {
  readonly worker: number
  readonly cause: string
  readonly exitCode: number
  /** Whether it was started again. */
  readonly restarted: boolean
  readonly at: Date
}

/**
 * One worker as the main thread sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerInfo {
  readonly id: number
  /** `worker_threads` threadId, and the kernel thread id (as in /proc/self/task/<tid>). */
  readonly threadId: number
  readonly tid: number
  readonly cpus: ReadonlyArray<number>
  readonly restarts: number
  readonly listening: boolean
}

/**
 * Counters of the whole set: each worker's driver stats, their sum, and the acceptor's.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkersStats {
  readonly workers: ReadonlyArray<{ readonly id: number; readonly stats: RinglineStats; readonly errors: Record<string, number> }>
  /** Sums of the numeric counters over the workers that answered. */
  readonly total: Record<string, number>
  /** Acceptor mode: connections accepted, handed to each worker, and closed for want of a taker. */
  readonly acceptor?: { readonly accepted: number; readonly handed: ReadonlyArray<number>; readonly lost: number }
}

/**
 * A running set of workers, from {@link launch}.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerSet {
  readonly mode: Mode
  readonly count: number
  /** Where the set listens (known once a worker, or the acceptor, listened). */
  readonly address: Effect.Effect<Address>
  readonly workers: Effect.Effect<ReadonlyArray<WorkerInfo>>
  /** Asks every live worker for its counters. */
  readonly stats: Effect.Effect<WorkersStats>
  /**
   * Copies every worker's counters into this thread's `ringline_*` metrics: the untagged metric
   * is the sum over workers, and the same metric tagged `worker=<id>` holds each worker's.
   */
  readonly updateMetrics: Effect.Effect<void>
  readonly deaths: Effect.Effect<ReadonlyArray<WorkerDeath>>
  /** Never succeeds; fails when the set goes down (a worker died past `maxRestarts`). */
  readonly join: Effect.Effect<never, WorkerFailed>
}

/**
 * Starts the workers and, unless `awaitListening: false`, waits until each one listened.
 * Closing the scope drains them all with the rules of `Ringline.runMain`: the acceptor (if any)
 * stops first and finishes its transfers, then every worker's program is interrupted (listeners
 * close, handlers get `shutdownTimeout` to finish, connections flush and close, the ring exits);
 * a worker still alive after that plus two seconds is terminated.
 *
 * Fails with `RinglineConfigError` naming a bad option (`workers`, `mode`, `port`,
 * `config.sqEntries`...), `RinglineUnavailable` when the acceptor's ring cannot be set up,
 * `SocketError` when the acceptor cannot listen, `WorkerFailed` when workers die before
 * listening.
 *
 * @example
 * ```ts
 * // main.ts
 * import { Effect } from "effect"
 * import { Ringline, RinglineWorkers } from "@ringline/core"
 *
 * Ringline.runMain(Effect.scoped(Effect.gen(function*() {
 *   const set = yield* RinglineWorkers.launch({ module: new URL("./worker.js", import.meta.url), workers: 2 })
 *   console.log("listening on", yield* set.address)
 *   return yield* set.join
 * })))
 *
 * // worker.ts
 * import { RinglineWorkers } from "@ringline/core"
 * export default RinglineWorkers.serve((conn) => conn.stream.pipe(Stream.run(conn.sink)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const launch: (
  options: LaunchOptions
) => Effect.Effect<WorkerSet, RinglineConfigError | RinglineUnavailable | SocketError | WorkerFailed, Scope.Scope> =
  internal.launch

/**
 * Launches the set as the process's main program (`Ringline.runMain`): SIGINT/SIGTERM drain
 * every worker, a second signal exits at once with 130; a set brought down by a dead worker exits
 * with code 1.
 *
 * @since 0.1.0
 * @category running
 */
export const runMain = (options: LaunchOptions, onReady?: (set: WorkerSet) => Effect.Effect<void>): void =>
  internal.runMain(options, onReady)

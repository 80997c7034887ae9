/**
 * The ringline driver as an Effect service: one io_uring owned by the current JS thread.
 *
 * @since 0.1.0
 */
import { Cause, Config, Effect, Layer, Logger } from "effect"
import type { ConfigError, Duration, Scope } from "effect"
import { setFlagsFromString } from "node:v8"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Channel } from "./internal/net/channel.js"
import type { Driver } from "./internal/driver.js"
import type { AcceptSource } from "./internal/net/serve.js"
import { load } from "./internal/native.js"
import { make as makeIoUring } from "./internal/service.js"
import type { Listener } from "./Listener.js"
import * as RinglineClock from "./RinglineClock.js"
import * as RinglineConfig from "./RinglineConfig.js"
import { Ringline } from "./internal/tag.js"
import type { ConnectError, RinglineConfigError, RinglineUnavailable, SocketError } from "./RinglineError.js"

/**
 * Where and how to listen on TCP: the one options type of `Tcp.listen`,
 * `RinglineSocketServer.make` and `RinglineWorkers`' listeners.
 *
 * @since 0.2.0
 * @category models
 */
export interface TcpListenOptions {
  /** Numeric address or host name; default `127.0.0.1`. */
  readonly host?: string | undefined
  /** 0 (the default) lets the kernel pick a free port; see `Listener.address`. */
  readonly port?: number | undefined
  /** Length of the kernel's accept queue (default `RinglineConfig.backlog`). */
  readonly backlog?: number | undefined
  /** SO_REUSEPORT, for several listeners (e.g. one per worker) on one port. */
  readonly reusePort?: boolean | undefined
}

/**
 * Where and how to listen on a Unix socket: the one options type of `Unix.listen` and
 * `RinglineSocketServer.make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface UnixListenOptions {
  /**
   * Socket file path (a stale socket file there is removed first, never a regular file; the file
   * is removed when the listener closes), or an abstract name starting with a NUL byte.
   */
  readonly path: string
  /** Length of the kernel's accept queue (default `RinglineConfig.backlog`). */
  readonly backlog?: number | undefined
}

/**
 * What the service's `listen` takes: {@link TcpListenOptions} or {@link UnixListenOptions},
 * tagged.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenOptions =
  | ({ readonly _tag: "Tcp" } & TcpListenOptions)
  | ({ readonly _tag: "Unix" } & UnixListenOptions)

/**
 * A TCP peer: a host (numeric or a name, resolved first) and a port. A `TcpAddress` is one.
 *
 * @since 0.2.0
 * @category models
 */
export interface TcpTarget {
  readonly _tag?: "TcpAddress" | undefined
  readonly host: string
  readonly port: number
}

/**
 * A Unix socket peer: a path (or an abstract name starting with a NUL byte). A `UnixAddress` is one.
 *
 * @since 0.2.0
 * @category models
 */
export interface UnixTarget {
  readonly _tag?: "UnixAddress" | undefined
  readonly path: string
}

/**
 * Where to connect: the one target type of the service's `connect` and of
 * `RinglineSocket.makeNet` (`Tcp.connect` also takes `"host:port"`, `Unix.connect` a path).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectTarget = TcpTarget | UnixTarget

/**
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions {
  /** Fails with `ConnectError` (reason `Timeout`) if not connected within this time. */
  readonly timeout?: Duration.DurationInput
}

/**
 * Counters of the driver, for tests, metrics and the curious.
 *
 * @since 0.1.0
 * @category models
 */
export interface RinglineStats {
  /** Ring set-up that the kernel accepted: `defer-taskrun`, `coop-taskrun`, `sqpoll` or `plain`. */
  readonly mode: string
  /** Operations submitted whose terminal CQE has not arrived yet. */
  readonly inFlight: number
  readonly submitted: number
  readonly sqFull: number
  readonly wakeups: number
  readonly emptyWakeups: number
  readonly cqOverflows: number
  readonly cqes: number
  readonly staleCqes: number
  /** Times a multishot recv stopped because the provided-buffer ring was empty. */
  readonly enobufs: number
  readonly sendPoolExhausted: number
  readonly sendSlotsFree: number
  readonly zeroCopySends: number
  /**
   * Zero-copy sends the kernel copied after all (loopback, a device without scatter-gather): the
   * connection then sends without zero-copy.
   */
  readonly zeroCopyCopied: number
  /** Sends that gathered several queued segments into one SENDMSG. */
  readonly vectoredSends: number
  /** Linked send chains submitted (`Connection.chain`). */
  readonly chains: number
  /**
   * Early turns: a completion batch paused after one CQE to run the fibers it woke and submit
   * what they queued (a TLS connection with a large decrypted run, so that its answer leaves
   * while the rest of the batch is still being processed).
   */
  readonly earlyTurns: number
  /** Provided buffers currently lent to sends (echo of parsed views). */
  readonly buffersLent: number
  readonly backpressurePauses: number
  /** Connections accepted, connected (outbound) and closed since the ring started. */
  readonly accepted: number
  readonly connected: number
  readonly closed: number
  /**
   * Connections the kernel accepted that no `accept` took before their listener closed (an
   * interrupted accept leaves its connection to the next one): closed unserved.
   */
  readonly acceptsAbandoned: number
  /**
   * Times listeners stopped arming accept because sockets held every fixed-file slot
   * (`maxConnections`), and the milliseconds spent so: clients wait in the kernel's listen
   * backlog meanwhile, none is reset.
   */
  readonly acceptFull: number
  readonly acceptFullMs: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** UDP datagrams received and sent. */
  readonly datagramsIn: number
  readonly datagramsOut: number
  /** Open connections and listeners now. */
  readonly connections: number
  readonly listeners: number
  /** Provided buffers currently owned by the kernel (all of them when JS holds none). */
  readonly buffers: { readonly head: number; readonly tail: number; readonly available: number } | undefined
}

/**
 * What the Ringline service offers. A second implementation (an in-memory test driver, a portable
 * fallback) satisfies the same interface.
 *
 * @since 0.1.0
 * @category models
 */
export interface RinglineService {
  readonly config: RinglineConfig.RinglineConfig
  /** `defer-taskrun`, `coop-taskrun`, `sqpoll`, `plain`, or the name of another driver. */
  readonly mode: string
  readonly listen: (options: ListenOptions) => Effect.Effect<Listener, SocketError, Scope.Scope>
  readonly connect: (target: ConnectTarget, options?: ConnectOptions) => Effect.Effect<Connection, ConnectError, Scope.Scope>
  readonly stats: Effect.Effect<RinglineStats>
  /**
   * The io_uring driver behind this service, for ringline's own modules (UDP, timers, processes,
   * storage) that submit their own operations. Absent in other implementations.
   * @internal
   */
  readonly driver?: Driver
  /**
   * Serves connections from another source than a listening socket (the inbox of connections a
   * RinglineWorkers acceptor hands to this ring). Absent in other implementations.
   * @internal
   */
  readonly adopt?: (make: (track: (conn: Channel) => void) => AcceptSource, address: Address) => Effect.Effect<Listener, never, Scope.Scope>
}

/**
 * The service tag (defined in internal/tag.ts so that modules the Layer builds on, such as
 * RinglineClock, can name it without importing this module).
 *
 * @since 0.1.0
 * @category tags
 */
export { Ringline } from "./internal/tag.js"

/**
 * Builds the io_uring driver in the current scope. Fails with `RinglineUnavailable` (naming the
 * cause and the fix) when io_uring cannot be used, or `RinglineConfigError` naming a bad field.
 * Closing the scope stops listeners, drains and closes every connection (bounded by
 * `shutdownTimeout`), waits for every in-flight op and exits the ring.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config?: RinglineConfig.RinglineConfigInput
): Effect.Effect<RinglineService, RinglineUnavailable | RinglineConfigError, Scope.Scope> =>
  Effect.flatMap(RinglineConfig.validate(config), makeIoUring)

/**
 * The io_uring driver as a Layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Ringline, Tcp } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const listener = yield* Tcp.listen({ port: 7878 })
 *   yield* listener.serve((conn) => conn.stream.pipe(Stream.run(conn.sink)))
 * })
 * Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Ringline.layer())))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config?: RinglineConfig.RinglineConfigInput
): Layer.Layer<Ringline, RinglineUnavailable | RinglineConfigError> => Layer.scoped(Ringline, make(config))

/**
 * The io_uring driver configured from Effect `Config`, as Effect's own `layerConfig`s take it: a
 * `Config` of the whole input, or a record of `Config`s per field. The default,
 * `RinglineConfig.config`, reads the environment (`RINGLINE_*`, see there for the keys).
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { Ringline, RinglineConfig } from "@ringline/core"
 *
 * // The environment's RINGLINE_* keys:
 * const fromEnv = Ringline.layerConfig()
 * // Fields from keys of your own (unset optional ones keep their defaults):
 * const custom = Ringline.layerConfig({
 *   maxConnections: Config.integer("MAX_CLIENTS"),
 *   shutdownTimeout: Config.duration("DRAIN_TIMEOUT").pipe(Config.withDefault("10 seconds"))
 * })
 * // Or the environment's, adjusted:
 * const bigger = Ringline.layerConfig(RinglineConfig.config.pipe(Config.map((c) => ({ ...c, sqEntries: 1024 }))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<RinglineConfig.RinglineConfigInput> = RinglineConfig.config
): Layer.Layer<Ringline, RinglineUnavailable | RinglineConfigError | ConfigError.ConfigError> =>
  Layer.scoped(Ringline, Effect.flatMap(Config.unwrap(config), make))

/**
 * The driver's counters.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<RinglineStats, never, Ringline> = Effect.flatMap(Ringline, (r) => r.stats)

/**
 * Options of {@link runMain}.
 *
 * @since 0.1.0
 * @category running
 */
export interface RunMainOptions {
  /**
   * Turn off V8's allocation-site pretenuring for this process (default true): with it, a busy
   * server's short-lived Effect objects end up in old space and scavenges get ~10× slower.
   */
  readonly tuneGc?: boolean
  /**
   * Fix glibc's mmap and trim thresholds for this process once it streams (default true; nothing
   * happens without glibc or without the native addon): from the first received run of 16 KiB
   * or more, memory that received bytes are handed over in is reused from the heap instead of
   * being mapped, trimmed and page-faulted in again. In interleaved bulk-echo runs it cut the
   * minor page faults per 64 KiB from 2.8-4.3 to 0.5-2.4 and the CPU per 64 KiB by a quarter to
   * a half. From then on each of the process's malloc arenas keeps up to 64 MiB of freed memory
   * at its top instead of returning it at once; a server that never receives such a run keeps
   * glibc's defaults (no retained memory).
   */
  readonly tuneMalloc?: boolean
}

/** Allocations up to this size come from the heap (the largest reassembly run is 512 KiB). */
const MMAP_THRESHOLD = 4 * 1024 * 1024
/** Freed memory kept at the heap's top before it is given back to the kernel. */
const TRIM_THRESHOLD = 64 * 1024 * 1024

const tuneMalloc = (): void => {
  let native: ReturnType<typeof load>
  try {
    native = load()
  } catch {
    // No addon (a RinglineTest-only program): nothing of ours allocates that memory.
    return
  }
  // Deferred: applied by the first large run a reader is handed (internal/mallocPolicy.ts).
  native.tuneMalloc(MMAP_THRESHOLD, TRIM_THRESHOLD, true)
}

const prettyStderr = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

/**
 * Runs `program` as the process's main program: SIGINT or SIGTERM interrupts it, so every
 * finalizer runs (listeners stop accepting, connections drain and close, the ring exits), and
 * the process exits with code 0 after such a clean stop, 1 if the program failed (its cause is
 * printed on stderr, pretty-printed as `NodeRuntime.runMain` does). A second
 * signal exits at once with code 130.
 *
 * @since 0.1.0
 * @category running
 */
export const runMain = <E>(program: Effect.Effect<unknown, E>, options?: RunMainOptions): void => {
  if (options?.tuneGc !== false) {
    // Effect allocates a few short-lived objects per operation; under load V8 starts to allocate
    // them straight into old space ("pretenuring"), after which every scavenge takes ~5 ms and
    // p99 latency grows 3×. Measured on the echo benchmark (64 B, 50 connections).
    setFlagsFromString("--no-allocation-site-pretenuring")
  }
  if (options?.tuneMalloc !== false) tuneMalloc()
  const fiber = Effect.runFork(program)
  let signalled = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130)
    signalled = true
    void signal
    fiber.unsafeInterruptAsFork(fiber.id())
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    if (exit._tag === "Success" || (signalled && Cause.isInterruptedOnly(exit.cause))) {
      process.exitCode = 0
    } else {
      // Reported as NodeRuntime.runMain does: the whole cause pretty-printed (each error's name,
      // message and stack, every concurrent failure), here on stderr.
      Effect.runSync(Effect.logError("ringline: the program failed", exit.cause).pipe(Effect.provide(prettyStderr)))
      process.exitCode = 1
    }
  })
}

/**
 * The opt-in `Clock` on IORING_OP_TIMEOUT (SPEC §6's name for `RinglineClock.layer`): `Effect.sleep`
 * and friends then run on the ring.
 *
 * @since 0.1.0
 * @category layers
 */
export const clockLayer: Layer.Layer<never, RinglineUnavailable, Ringline> = RinglineClock.layer

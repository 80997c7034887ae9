/**
 * Blocking work off the ring's thread: run a function exported by a module on a `worker_threads`
 * pool and await its result as an Effect.
 *
 * The ring is driven by the JS thread's event loop, so CPU-heavy or blocking code (hashing,
 * compression, parsing a large document, a synchronous native call) stalls every socket while it
 * runs. `Blocking.run` moves such a call to another thread.
 *
 * Closures cannot cross threads: a job names a module (an absolute path, a `file:` URL or a bare
 * specifier) and one of its exports, and passes structured-cloneable arguments; the result is
 * structured-cloned back.
 *
 * @since 0.1.0
 */
import { Context, Data, Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { availableParallelism } from "node:os"
import { type ErrorInfo, type FailureReason, Pool, type PoolStats, specifier } from "./internal/blocking.js"
import { show } from "./internal/validate.js"
import { RinglineConfigError } from "./RinglineError.js"

/**
 * Why a blocking job failed:
 *
 * - `Threw`: the function threw or its promise rejected (`message`, `stack` and `errorName` are
 *   the thrown error's);
 * - `Import`: the module could not be imported or the export is not a function;
 * - `DataClone`: an argument or the result cannot be structured-cloned;
 * - `Crashed`: the worker died under the job (`process.exit`, an uncaught exception in a
 *   callback, out of memory); `exitCode` is the worker's. The worker is replaced;
 * - `Shutdown`: the pool was shut down (its Layer released) before the job finished.
 *
 * @since 0.1.0
 * @category errors
 */
export type BlockingFailure = FailureReason

/**
 * A blocking job failed. Never raised for interruption: an interrupted job is interrupted.
 *
 * @since 0.1.0
 * @category errors
 */
export class BlockingError extends Data.TaggedError("BlockingError")<{
  readonly reason: BlockingFailure
  /** The module as the worker imported it (a URL or a bare specifier). */
  readonly module: string
  readonly exportName: string
  /** The message of the thrown value (or of the failure). */
  readonly detail: string
  /** The `name` of the thrown error, e.g. `TypeError`. */
  readonly errorName: string
  /** The thrown error's stack, from the worker, when it had one. */
  readonly stack?: string
  /** The thrown error's `code` property, when it had one. */
  readonly code?: string
  /** The worker's exit code (reason `Crashed`). */
  readonly exitCode?: number
}> {
  override get message(): string {
    const where = `${this.module}#${this.exportName}`
    switch (this.reason) {
      case "Threw":
        return `${where} threw ${this.errorName}: ${this.detail}`
      case "Import":
        return `cannot run ${where}: ${this.detail}`
      case "DataClone":
        return `${where}: arguments or result cannot be structured-cloned: ${this.detail}`
      case "Crashed":
        return `the worker running ${where} crashed${this.exitCode === undefined ? "" : ` (exit code ${this.exitCode})`}: ${this.detail}`
      case "Shutdown":
        return `${where}: ${this.detail}`
    }
  }
}

/**
 * Options of {@link layer} / {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockingOptions {
  /**
   * Most worker threads (and so jobs running) at once: an integer from 1 to 1024. Default: the
   * number of available cores minus one (at least 1), leaving a core to the ring's thread.
   * Workers start on demand; further jobs wait in a FIFO queue.
   */
  readonly size?: number
  /**
   * A worker that has had no job for this long is terminated (and restarted on demand).
   * Default 30 seconds; `Duration.infinity` keeps workers until the pool shuts down.
   */
  readonly idleTimeout?: Duration.DurationInput
}

/**
 * Counters of a pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockingStats {
  /** The configured maximum number of workers. */
  readonly size: number
  /** Workers alive now (idle or busy). */
  readonly workers: number
  /** Workers running a job now. */
  readonly busy: number
  /** Jobs waiting for a worker. */
  readonly queued: number
  /** Workers started since the pool was made. */
  readonly started: number
  /** Workers that died under a job. */
  readonly crashed: number
  /** Workers terminated because their job was interrupted. */
  readonly recycled: number
  /** Jobs that produced a result or a failure in their worker. */
  readonly completed: number
}

/**
 * The service: a worker pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockingService {
  /**
   * Runs `module`'s export `exportName` with `args` on a worker and succeeds with what it returns
   * (a promise is awaited in the worker). Interrupting the Effect terminates the worker running
   * the job (the function cannot be stopped otherwise; a replacement starts on demand) and
   * completes once that thread has exited; a job still queued is simply dropped.
   */
  readonly run: <A = unknown>(module: string | URL, exportName: string, ...args: ReadonlyArray<unknown>) => Effect.Effect<A, BlockingError>
  readonly stats: Effect.Effect<BlockingStats>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Blocking extends Context.Tag("@ringline/core/Blocking")<Blocking, BlockingService>() {}

const validate = (options: BlockingOptions | undefined): Effect.Effect<{ size: number; idleTimeoutMs: number }, RinglineConfigError> =>
  Effect.suspend(() => {
    // From JavaScript anything can come here; a number or null would read as "all defaults".
    if (options !== undefined && (typeof options !== "object" || options === null)) {
      return Effect.fail(
        new RinglineConfigError({ field: "blocking", detail: `options must be an object, got ${show(options)}` })
      )
    }
    const size = options?.size ?? Math.max(1, availableParallelism() - 1)
    if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 1024) {
      return Effect.fail(
        new RinglineConfigError({ field: "blocking.size", detail: `must be an integer between 1 and 1024, got ${String(size)}` })
      )
    }
    const idle = Duration.decodeUnknown(options?.idleTimeout ?? "30 seconds")
    if (idle._tag === "None") {
      return Effect.fail(
        new RinglineConfigError({ field: "blocking.idleTimeout", detail: `must be a duration, got ${String(options?.idleTimeout)}` })
      )
    }
    const idleTimeoutMs = Duration.toMillis(idle.value)
    if (!(idleTimeoutMs >= 0)) {
      return Effect.fail(new RinglineConfigError({ field: "blocking.idleTimeout", detail: "must not be negative" }))
    }
    // setTimeout cannot wait longer than 2^31-1 ms: treat anything longer as "never".
    return Effect.succeed({ size, idleTimeoutMs: idleTimeoutMs > 2 ** 31 - 1 ? Infinity : idleTimeoutMs })
  })

const toError = (module: string, exportName: string, reason: FailureReason, info: ErrorInfo, exitCode?: number) =>
  new BlockingError({
    reason,
    module,
    exportName,
    detail: info.message,
    errorName: info.name,
    ...(info.stack === undefined ? {} : { stack: info.stack }),
    ...(info.code === undefined ? {} : { code: info.code }),
    ...(exitCode === undefined ? {} : { exitCode })
  })

/**
 * Makes a pool in the current scope. Closing the scope fails queued and running jobs with
 * `Shutdown`, terminates every worker and completes once all of their threads have exited.
 * Fails with `RinglineConfigError` naming the field (`blocking.size`, `blocking.idleTimeout`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: BlockingOptions): Effect.Effect<BlockingService, RinglineConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const { idleTimeoutMs, size } = yield* validate(options)
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => new Pool(size, idleTimeoutMs)),
      (p) => Effect.async<void>((resume) => p.shutdown(() => resume(Effect.void)))
    )
    const run = <A = unknown>(module: string | URL, exportName: string, ...args: ReadonlyArray<unknown>) =>
      Effect.suspend(() => {
        const spec = specifier(module)
        if (spec === undefined) {
          return Effect.fail(toError(String(module), exportName, "Import", {
            name: "TypeError",
            message: "a relative module path is ambiguous across threads; pass an absolute path or new URL(\"./x.js\", import.meta.url)"
          }))
        }
        return Effect.async<A, BlockingError>((resume) => {
          const withdraw = pool.submit(spec, exportName, args, {
            ok: (value) => resume(Effect.succeed(value as A)),
            fail: (reason, info, exitCode) => resume(Effect.fail(toError(spec, exportName, reason, info, exitCode)))
          })
          return Effect.async<void>((done) => withdraw(() => done(Effect.void)))
        })
      }).pipe(Effect.withSpan("ringline.blocking.run", { attributes: { module: String(module), exportName } }))
    const stats = Effect.sync((): BlockingStats => pool.stats() satisfies PoolStats)
    return { run, stats } satisfies BlockingService
  })

/**
 * A worker pool as a Layer; releasing the Layer shuts the pool down (no worker thread is left).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Blocking } from "@ringline/core"
 *
 * // ./hash.mjs: export const sha256 = (text) => createHash("sha256").update(text).digest("hex")
 * const program = Blocking.run<string>(new URL("./hash.mjs", import.meta.url), "sha256", "hello")
 * Effect.runPromise(program.pipe(Effect.provide(Blocking.layer({ size: 2 })))).then(console.log)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: BlockingOptions): Layer.Layer<Blocking, RinglineConfigError> => Layer.scoped(Blocking, make(options))

/**
 * Runs `module`'s export `exportName` with `args` on the pool of the {@link Blocking} service.
 * See {@link BlockingService.run}.
 *
 * @since 0.1.0
 * @category accessors
 */
export const run = <A = unknown>(
  module: string | URL,
  exportName: string,
  ...args: ReadonlyArray<unknown>
): Effect.Effect<A, BlockingError, Blocking> => Effect.flatMap(Blocking, (b) => b.run<A>(module, exportName, ...args))

/**
 * The pool's counters.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<BlockingStats, never, Blocking> = Effect.flatMap(Blocking, (b) => b.stats)

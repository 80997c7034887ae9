/**
 * Child processes on the ring: spawn with args, env, cwd and stdio pipes; wait for the exit with
 * IORING_OP_WAITID on a pidfd (polling the pidfd on kernels before 6.7); read stdout/stderr and
 * write stdin with ring reads and writes; signal with pidfd_send_signal (never a recycled pid).
 *
 * A child belongs to the `Scope` it was spawned in: closing the scope SIGKILLs it if it still
 * runs, reaps it, and closes its pidfd and pipes. Interrupting `exitStatus` also SIGKILLs the
 * child and completes once it is reaped.
 *
 * For code written against `@effect/platform`'s `Command`, see `RinglineCommandExecutor`.
 *
 * @since 0.1.0
 */
import { Effect, Sink, Stream } from "effect"
import type { Scope } from "effect/Scope"
import * as internal from "./internal/process.js"
import { Op } from "./internal/ring/abi.js"
import type { Driver } from "./internal/driver.js"
import { Ringline } from "./Ringline.js"
import { notAvailable, ProcessError, RELEASED, RinglineUnavailable } from "./RinglineError.js"
import { Errno, errnoName } from "./internal/errno.js"

/**
 * Where a child's stdin, stdout or stderr goes: a new pipe read/written through the ring,
 * this process's own stream, or `/dev/null`.
 *
 * @since 0.1.0
 * @category models
 */
export type Stdio = "pipe" | "inherit" | "ignore"

/**
 * Options of {@link spawn}.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpawnOptions {
  /** Variables to set (`undefined` removes one). Merged over this process's environment unless `extendEnv: false`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Default true. The program is searched in the child's `PATH`. */
  readonly extendEnv?: boolean
  /** Working directory of the child (a missing one fails with ENOENT, `syscall: "chdir"`). */
  readonly cwd?: string
  /** `argv[0]` as the program sees it; defaults to the command. */
  readonly argv0?: string
  /** Default `"pipe"`. */
  readonly stdin?: Stdio
  /** Default `"pipe"`. */
  readonly stdout?: Stdio
  /** Default `"pipe"`. */
  readonly stderr?: Stdio
}

/**
 * How a child ended: it exited with a code, or a signal terminated it.
 *
 * @since 0.1.0
 * @category models
 */
export type ExitStatus =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "Signaled"; readonly signal: string; readonly signo: number; readonly coreDumped: boolean }

/**
 * A running child, valid within the scope it was spawned in.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChildProcess {
  readonly pid: number
  /**
   * Waits for the exit (one WAITID on the ring; any number of fibers may wait). Interrupting it
   * SIGKILLs the child and completes once the child is reaped.
   */
  readonly exitStatus: Effect.Effect<ExitStatus, ProcessError>
  /** The exit code; a child killed by a signal reports `128 + signo`, as shells do. */
  readonly exitCode: Effect.Effect<number, ProcessError>
  /** False once the exit was observed. */
  readonly isRunning: Effect.Effect<boolean>
  /** Sends `signal` (default `SIGTERM`) through the pidfd; a no-op once the child exited. Does not wait. */
  readonly kill: (signal?: NodeJS.Signals | number) => Effect.Effect<void, ProcessError>
  /** stdout until EOF (empty when not piped). Chunks are owned copies. Read by one fiber at a time. */
  readonly stdout: Stream.Stream<Uint8Array, ProcessError>
  /** stderr until EOF (empty when not piped). */
  readonly stderr: Stream.Stream<Uint8Array, ProcessError>
  /** Writes every chunk to stdin, then closes it (the child sees EOF). Fails with EPIPE if the child closed it. */
  readonly stdin: Sink.Sink<void, Uint8Array, never, ProcessError>
  /** Writes all of `bytes` to stdin (don't modify them until this completes). */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, ProcessError>
  /** Closes stdin (idempotent): the child reads EOF. */
  readonly closeStdin: Effect.Effect<void>
}

/**
 * What {@link output} collects.
 *
 * @since 0.1.0
 * @category models
 */
export interface Output {
  readonly status: ExitStatus
  readonly stdout: Uint8Array
  readonly stderr: Uint8Array
}

/**
 * The io_uring driver, or `RinglineUnavailable` when this Ringline has none or the kernel lacks
 * the opcodes processes need.
 *
 * @since 0.1.0
 * @internal
 */
export const requireDriver: Effect.Effect<Driver, RinglineUnavailable, Ringline> = Effect.flatMap(Ringline, (r) => {
  const d = r.driver
  if (d === undefined) return Effect.fail(notAvailable("Process", r.mode))
  if (d.released || d.closed) return Effect.fail(new RinglineUnavailable({ reason: "Other", detail: RELEASED }))
  for (const [name, op] of [["READ", Op.READ], ["WRITE", Op.WRITE]] as const) {
    if (d.opcodes[op] !== 1) {
      return Effect.fail(new RinglineUnavailable({ reason: "MissingOpcode", detail: `the kernel lacks IORING_OP_${name}, needed for process pipes` }))
    }
  }
  if (d.opcodes[Op.WAITID] !== 1 && d.opcodes[Op.POLL_ADD] !== 1) {
    return Effect.fail(new RinglineUnavailable({ reason: "MissingOpcode", detail: "the kernel lacks both IORING_OP_WAITID and IORING_OP_POLL_ADD" }))
  }
  return Effect.succeed(d)
})

/**
 * Wraps an internal child (used by `RinglineCommandExecutor`).
 *
 * @since 0.1.0
 * @internal
 */
export const fromChild = (child: internal.Child): ChildProcess => {
  const exitStatus = child.await(true)
  return {
    pid: child.pid,
    exitStatus,
    exitCode: Effect.map(exitStatus, (s) => s._tag === "Exited" ? s.code : 128 + s.signo),
    isRunning: Effect.sync(() => !child.exited),
    kill: (signal = "SIGTERM") =>
      Effect.suspend(() => {
        const signo = internal.signalNumber(signal)
        if (signo === undefined) {
          return Effect.fail(new ProcessError({ operation: "kill", command: child.command, errno: Errno.EINVAL, code: errnoName(Errno.EINVAL) }))
        }
        const e = child.signal(signo)
        return e === undefined ? Effect.void : Effect.fail(e)
      }),
    stdout: child.stdout?.stream ?? Stream.empty,
    stderr: child.stderr?.stream ?? Stream.empty,
    stdin: child.stdin?.sink ?? Sink.drain,
    write: (bytes) =>
      child.stdin?.write(bytes) ??
        Effect.fail(new ProcessError({ operation: "write stdin", command: child.command, errno: Errno.EPIPE, code: errnoName(Errno.EPIPE) })),
    closeStdin: child.stdin?.close ?? Effect.void
  }
}

/**
 * Starts `command` with `args`. Fails with `ProcessError` when the program cannot be started
 * (`ENOENT`, `EACCES`, a missing `cwd`, ...), with the errno the kernel gave the child's `execve`;
 * a command, argument, `argv0`, `cwd` or environment entry with a NUL byte (or an empty or `=`
 * holding variable name) fails with `EINVAL` naming it, before anything starts. After the
 * Ringline layer was released it fails with `RinglineUnavailable` at once.
 * The child is tied to the current `Scope`: closing it SIGKILLs a child that still runs, reaps it
 * and closes every fd.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Process, Ringline } from "@ringline/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const child = yield* Process.spawn("sh", ["-c", "echo hello; exit 3"])
 *   const out = yield* Stream.runCollect(Stream.decodeText(child.stdout))
 *   const status = yield* child.exitStatus // { _tag: "Exited", code: 3 }
 * }))
 * Ringline.runMain(program.pipe(Effect.provide(Ringline.layer())))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const spawn = (
  command: string,
  args: ReadonlyArray<string> = [],
  options: SpawnOptions = {}
): Effect.Effect<ChildProcess, ProcessError | RinglineUnavailable, Ringline | Scope> =>
  Effect.flatMap(requireDriver, (d) => Effect.map(internal.spawn(d, command, args, options), fromChild))

const concat = (chunks: Iterable<Uint8Array>): Uint8Array => {
  const parts = [...chunks]
  const out = new Uint8Array(parts.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of parts) {
    out.set(c, at)
    at += c.length
  }
  return out
}

/**
 * Runs `command` to completion, feeding it `input` (stdin is closed after it; `/dev/null`
 * without input) and collecting stdout and stderr.
 *
 * @since 0.1.0
 * @category combinators
 */
export const output = (
  command: string,
  args: ReadonlyArray<string> = [],
  options: Omit<SpawnOptions, "stdin"> & { readonly input?: Uint8Array } = {}
): Effect.Effect<Output, ProcessError | RinglineUnavailable, Ringline> =>
  Effect.scoped(Effect.gen(function*() {
    const child = yield* spawn(command, args, { ...options, stdin: options.input === undefined ? "ignore" : "pipe" })
    const feed = options.input === undefined
      ? Effect.void
      : Effect.ensuring(child.write(options.input), child.closeStdin).pipe(
        // A child that exits without reading all its input is not an error of `output`.
        Effect.catchIf((e) => e.errno === Errno.EPIPE, () => Effect.void)
      )
    const [, stdout, stderr] = yield* Effect.all([
      feed,
      Stream.runCollect(child.stdout),
      Stream.runCollect(child.stderr)
    ], { concurrency: "unbounded" })
    const status = yield* child.exitStatus
    return { status, stdout: concat(stdout), stderr: concat(stderr) }
  }))

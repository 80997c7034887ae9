/**
 * `@effect/platform`'s `CommandExecutor` on the ring: code written against `Command`
 * (`Command.string`, `Command.lines`, `Command.exitCode`, `Command.start`, piped commands, stdin
 * from a `Stream`, stdout/stderr into a `Sink`) runs unchanged, with children spawned through a
 * pidfd, their exit awaited with IORING_OP_WAITID and their pipes read and written through the
 * ring (see `Process`).
 *
 * Differences from `@effect/platform-node`'s executor:
 * - closing the scope of a running process sends SIGKILL (not SIGTERM) and completes once it is
 *   reaped; `kill(signal)` signals only the child itself (through its pidfd), not a process group;
 * - errors carry ringline's `ProcessError` (errno, code, syscall) as `cause`; a missing program is
 *   a `SystemError` with reason `NotFound`, a non-executable one `PermissionDenied`.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import { type PlatformError, SystemError } from "@effect/platform/Error"
import { Effect, Inspectable, Layer, Option, pipe, Sink, Stream } from "effect"
import type { Scope } from "effect/Scope"
import type { Driver } from "./internal/driver.js"
import { reasonOf } from "./internal/systemError.js"
import * as internal from "./internal/process.js"
import { requireDriver } from "./Process.js"
import type { Ringline } from "./Ringline.js"
import type { ProcessError, RinglineUnavailable } from "./RinglineError.js"

const describe = (command: Command.Command): string =>
  Command.flatten(command).map((c) => [c.command, ...c.args].join(" ")).join(" | ")

const toPlatformError = (method: string, command: Command.Command, e: ProcessError): PlatformError =>
  new SystemError({
    reason: reasonOf(e.code),
    module: "Command",
    method,
    pathOrDescriptor: describe(command),
    ...(e.syscall === undefined ? {} : { syscall: e.syscall }),
    description: e.message,
    cause: e
  })

const ProcessProto = {
  [CommandExecutor.ProcessTypeId]: CommandExecutor.ProcessTypeId,
  ...Inspectable.BaseProto,
  toJSON(this: CommandExecutor.Process) {
    return { _id: "@effect/platform/CommandExecutor/Process", pid: this.pid }
  }
}

const stdioOf = (x: unknown): "pipe" | "inherit" => x === "inherit" ? "inherit" : "pipe"

const runCommand = (d: Driver) =>
(command: Command.Command): Effect.Effect<CommandExecutor.Process, PlatformError, Scope> => {
  if (command._tag === "PipedCommand") {
    const flattened = Command.flatten(command)
    if (flattened.length === 1) return runCommand(d)(flattened[0])
    // Each stage's stdout becomes the next one's stdin (through this process, on the ring).
    const stdoutOf = (c: Command.Command) =>
      Stream.unwrapScoped(Effect.map(runCommand(d)(c), (p) => p.stdout))
    const init = flattened.slice(1, -1).reduce(
      (stdin, c) => stdoutOf(Command.stdin(c, stdin)),
      stdoutOf(flattened[0])
    )
    return runCommand(d)(Command.stdin(flattened[flattened.length - 1]!, init))
  }
  const shell = command.shell
  const [file, args] = shell === false
    ? [command.command, command.args]
    : [shell === true ? "/bin/sh" : shell, ["-c", [command.command, ...command.args].join(" ")]]
  const env = Object.fromEntries(command.env)
  return pipe(
    internal.spawn(d, file, args, {
      env,
      extendEnv: command.extendEnv,
      ...(Option.isSome(command.cwd) ? { cwd: command.cwd.value } : {}),
      stdin: stdioOf(command.stdin),
      stdout: stdioOf(command.stdout),
      stderr: stdioOf(command.stderr)
    }),
    Effect.mapError((e) => toPlatformError("spawn", command, e)),
    Effect.map((child): CommandExecutor.Process => {
      const err = (method: string) => (e: ProcessError) => toPlatformError(method, command, e)
      const wait = Effect.mapError(child.await(false), err("exitCode"))
      const exitCode = Effect.flatMap(wait, (s) =>
        s._tag === "Exited"
          ? Effect.succeed(CommandExecutor.ExitCode(s.code))
          : Effect.fail(
            new SystemError({
              reason: "Unknown",
              module: "Command",
              method: "exitCode",
              pathOrDescriptor: describe(command),
              description: `Process interrupted due to receipt of signal: ${s.signal}`
            })
          ))
      const kill = (signal: CommandExecutor.Signal = "SIGTERM") =>
        Effect.suspend(() => {
          const signo = internal.signalNumber(signal)
          if (signo === undefined) {
            return Effect.fail(
              new SystemError({
                reason: "BadResource",
                module: "Command",
                method: "kill",
                pathOrDescriptor: describe(command),
                description: `unknown signal ${signal}`
              })
            )
          }
          const e = child.signal(signo)
          return e === undefined ? Effect.ignore(child.await(false)) : Effect.fail(err("kill")(e))
        })
      let stdout: Stream.Stream<Uint8Array, PlatformError> = child.stdout === undefined
        ? Stream.empty
        : Stream.mapError(child.stdout.stream, err("fromReadable(stdout)"))
      if (typeof command.stdout !== "string") stdout = Stream.transduce(stdout, command.stdout)
      const stderr: Stream.Stream<Uint8Array, PlatformError> = child.stderr === undefined
        ? Stream.empty
        : Stream.mapError(child.stderr.stream, err("fromReadable(stderr)"))
      const stdin: Sink.Sink<void, unknown, never, PlatformError> = child.stdin === undefined
        ? Sink.drain
        : Sink.mapError(child.stdin.sink as Sink.Sink<void, unknown, never, ProcessError>, err("toWritable"))
      return Object.assign(Object.create(ProcessProto), {
        pid: CommandExecutor.ProcessId(child.pid),
        exitCode,
        isRunning: Effect.sync(() => !child.exited),
        kill,
        stdin,
        stdout,
        stderr
      })
    }),
    typeof command.stdin === "string"
      ? (x) => x
      : Effect.tap((p) => Effect.forkScoped(Stream.run(command.stdin as Stream.Stream<Uint8Array>, p.stdin)))
  )
}

/**
 * A `CommandExecutor` on this thread's ring.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<CommandExecutor.CommandExecutor, RinglineUnavailable, Ringline> = Effect.map(
  requireDriver,
  (d) => CommandExecutor.makeExecutor(runCommand(d))
)

/**
 * The `CommandExecutor` Layer: provide it (with `Ringline.layer()`) where
 * `@effect/platform-node`'s `NodeCommandExecutor.layer` would go.
 *
 * @example
 * ```ts
 * import { Command } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { Ringline, RinglineCommandExecutor } from "@ringline/core"
 *
 * const program = Command.string(Command.make("echo", "hello"))
 * Effect.runPromise(program.pipe(
 *   Effect.provide(RinglineCommandExecutor.layer.pipe(Layer.provide(Ringline.layer())))
 * )).then(console.log) // "hello\n"
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<CommandExecutor.CommandExecutor, RinglineUnavailable, Ringline> = Layer.effect(
  CommandExecutor.CommandExecutor,
  make
)

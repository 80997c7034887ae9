/**
 * Child processes on the ring.
 *
 * The addon starts the child (clone3 + CLONE_PIDFD, exec errors reported back over a CLOEXEC
 * pipe) and hands over a pidfd and the parent's pipe ends. From then on everything is an SQE:
 *   - the exit: IORING_OP_WAITID (idtype P_PIDFD, id = the pidfd in `fd`, options WEXITED in
 *     `file_index`, the siginfo_t (128 bytes) in the slot's argument area via `addr2`), armed at
 *     spawn and in flight until the child exits. Kernels without WAITID (< 6.7) poll the pidfd
 *     (IORING_OP_POLL_ADD, POLLIN) and reap with waitid(WNOHANG) in the addon.
 *   - stdout/stderr: IORING_OP_READ (offset -1) into a per-pipe buffer, one read in flight, issued
 *     when the consumer pulls (a slow consumer leaves the bytes in the pipe: backpressure).
 *   - stdin: IORING_OP_WRITE straight from the caller's bytes (held until the CQE), short writes
 *     continued.
 * Every fd is owned by the ring (closed if it is torn down) until it is closed here.
 * Killing uses pidfd_send_signal, so a recycled pid can never be hit.
 */
import { Effect, Option, Sink, Stream } from "effect"
import { constants } from "node:os"
import type { ExitStatus, SpawnOptions } from "../Process.js"
import { ProcessError } from "../RinglineError.js"
import type { Driver, OpOwner } from "./driver.js"
import { Errno, errnoName } from "./errno.js"
import { load, type Native } from "./native.js"
import { Op } from "./ring/abi.js"
import { CURRENT_POSITION, prepPollAdd, prepRead, prepWaitid, prepWrite } from "./ring/prep.js"
import { badCString, bytesOf, notBytes, show } from "./validate.js"

const TAG_WAIT = 1
const TAG_POLL = 2
const TAG_IO = 3

const P_PIDFD = 3
const WEXITED = 4
const POLLIN = 1
const CLD_EXITED = 1
const CLD_DUMPED = 3
const EBUSY = constants.errno.EBUSY
const ESRCH = constants.errno.ESRCH
const READ_CHUNK = 65536

const signalNames = new Map<number, string>()
for (const [name, n] of Object.entries(constants.signals)) if (!signalNames.has(n)) signalNames.set(n, name)

/** Signal number of a name (`"SIGTERM"`) or number. */
export const signalNumber = (signal: string | number): number | undefined =>
  typeof signal === "number" ? signal : (constants.signals as Record<string, number>)[signal]

export const signalName = (signo: number): string => signalNames.get(signo) ?? `SIG${signo}`

const errorFrom = (operation: string, command: string, e: any): ProcessError => {
  const errno = typeof e?.errno === "number" ? Math.abs(e.errno) : Errno.EINVAL
  return new ProcessError({
    operation,
    command,
    errno,
    code: errnoName(errno),
    ...(typeof e?.syscall === "string" ? { syscall: e.syscall } : {})
  })
}

const errnoError = (operation: string, command: string, errno: number): ProcessError =>
  new ProcessError({ operation, command, errno: Math.abs(errno), code: errnoName(errno) })

/**
 * One parent-side pipe end. At most one op (a read or a write) is in flight; closing cancels it
 * and closes the fd only after its terminal CQE, so the fd number is never reused under an op.
 */
export class PipeEnd implements OpOwner {
  private slot = -1
  private closed = false
  private eof = false
  private stopping = false
  private leftover: Uint8Array | undefined
  private buf: Uint8Array | undefined
  private bufAddr = 0
  private onIdle: Array<() => void> = []
  private pending: ((res: number) => void) | undefined
  private reading = false

  constructor(
    private readonly d: Driver,
    private readonly native: typeof Native,
    readonly fd: number,
    private readonly operation: string,
    private readonly command: string
  ) {}

  onCqe(_slot: number, _tag: number, res: number): void {
    this.slot = -1
    const k = this.pending
    this.pending = undefined
    const cancelled = this.stopping && res === -Errno.ECANCELED
    this.stopping = false
    if (k !== undefined) {
      // Still awaited (the pipe is being closed under a reader or writer, or no cancel at all):
      // a cancelled read is the end of the stream, a cancelled write a broken pipe.
      k(cancelled ? (this.reading ? 0 : -Errno.EPIPE) : res)
    } else if (this.reading) {
      // The reader was interrupted: keep bytes that arrived anyway for the next read.
      if (res > 0) this.leftover = this.buf!.slice(0, res)
      else if (res === 0) this.eof = true
    }
    const idle = this.onIdle
    this.onIdle = []
    for (const f of idle) f()
  }

  /** Cancels the op in flight (if any) and calls `f` after its terminal CQE. */
  private quiesce(f: () => void): void {
    if (this.slot === -1) return f()
    this.onIdle.push(f)
    if (!this.stopping) {
      this.stopping = true
      this.d.cancel(this.slot)
    }
  }

  private interruptible<A>(start: (resume: (res: number) => void) => void, onRes: (res: number) => Effect.Effect<A, ProcessError>) {
    return Effect.async<A, ProcessError>((resume) => {
      start((res) => resume(onRes(res)))
      return Effect.async<void>((done) => {
        this.pending = undefined
        this.quiesce(() => done(Effect.void))
      })
    })
  }

  /** The next chunk (an owned copy), or None at end of stream. */
  readonly read: Effect.Effect<Option.Option<Uint8Array>, ProcessError> = Effect.suspend(() => {
    if (this.leftover !== undefined) {
      const l = this.leftover
      this.leftover = undefined
      return Effect.succeed(Option.some(l))
    }
    if (this.eof || this.closed) return Effect.succeed(Option.none())
    if (this.slot !== -1) return Effect.fail(errnoError(this.operation, this.command, EBUSY))
    if (this.buf === undefined) {
      this.buf = new Uint8Array(READ_CHUNK)
      this.bufAddr = this.native.addressOf(this.buf)
    }
    return this.interruptible(
      (k) => {
        const d = this.d
        this.slot = d.alloc(this, TAG_IO)
        this.pending = k
        this.reading = true
        prepRead(d, this.slot, this.fd, this.bufAddr, READ_CHUNK, CURRENT_POSITION)
        d.holds[this.slot] = this.buf
      },
      (res) => {
        if (res > 0) return Effect.succeed(Option.some(this.buf!.slice(0, res)))
        if (res === 0) {
          this.eof = true
          return Effect.succeed(Option.none())
        }
        return Effect.fail(errnoError(this.operation, this.command, res))
      }
    )
  })

  /** Writes all of `bytes` (continuing short writes). Fails with EPIPE once the child closed its end. */
  write(input: Uint8Array): Effect.Effect<void, ProcessError> {
    // Bytes are checked (views taken over their exact bytes) before an SQE could be staged.
    if (!(input instanceof Uint8Array) && !ArrayBuffer.isView(input)) return Effect.die(notBytes(input, "write stdin: bytes"))
    const bytes = bytesOf(input, "write stdin: bytes")
    const once = (offset: number): Effect.Effect<number, ProcessError> =>
      Effect.suspend(() => {
        if (this.closed) return Effect.fail(errnoError(this.operation, this.command, Errno.EPIPE))
        if (this.slot !== -1) return Effect.fail(errnoError(this.operation, this.command, EBUSY))
        return this.interruptible(
          (k) => {
            const d = this.d
            this.slot = d.alloc(this, TAG_IO)
            this.pending = k
            this.reading = false
            prepWrite(d, this.slot, this.fd, this.native.addressOf(bytes) + offset, bytes.length - offset, CURRENT_POSITION)
            d.holds[this.slot] = bytes
            d.pinHold(this.slot, bytes)
          },
          (res) => res >= 0 ? Effect.succeed(res) : Effect.fail(errnoError(this.operation, this.command, res))
        )
      })
    const loop = (offset: number): Effect.Effect<void, ProcessError> =>
      offset >= bytes.length
        ? Effect.void
        : Effect.flatMap(once(offset), (n) => loop(offset + n))
    return bytes.length === 0 ? Effect.void : loop(0)
  }

  /** Cancels what is in flight, then closes the fd (idempotent). */
  readonly close: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.closed) return resume(Effect.void)
    this.quiesce(() => {
      if (!this.closed) {
        this.closed = true
        this.d.ring.disown(this.fd)
        try {
          this.native.closeFd(this.fd)
        } catch {
          // Nothing useful to do with a failing close of a pipe end.
        }
      }
      resume(Effect.void)
    })
  })

  get stream(): Stream.Stream<Uint8Array, ProcessError> {
    return Stream.repeatEffectOption(
      Effect.flatMap(Effect.mapError(this.read, Option.some), (o) =>
        Option.isSome(o) ? Effect.succeed(o.value) : Effect.fail(Option.none()))
    )
  }

  get sink(): Sink.Sink<void, Uint8Array, never, ProcessError> {
    return Sink.forEach((chunk: Uint8Array) => this.write(chunk)).pipe(Sink.ensuring(this.close))
  }
}

/** A running (or finished) child. Owns its pidfd and pipe ends until `release`. */
export class Child implements OpOwner {
  readonly pid: number
  readonly pidfd: number
  readonly stdin: PipeEnd | undefined
  readonly stdout: PipeEnd | undefined
  readonly stderr: PipeEnd | undefined
  private result: { status: ExitStatus } | { error: ProcessError } | undefined
  private exitWaiters = new Set<() => void>()
  private pidfdClosed = false

  constructor(
    private readonly d: Driver,
    private readonly native: typeof Native,
    spawned: Native.Spawned,
    readonly command: string,
    private useWaitid: boolean
  ) {
    this.pid = spawned.pid
    this.pidfd = spawned.pidfd
    const pipe = (fd: number, op: string) => fd < 0 ? undefined : new PipeEnd(d, native, fd, op, command)
    this.stdin = pipe(spawned.stdin, "write stdin")
    this.stdout = pipe(spawned.stdout, "read stdout")
    this.stderr = pipe(spawned.stderr, "read stderr")
    try {
      this.arm()
    } catch (e) {
      // No room on the ring to wait for it (op table or SQ full): do not leave a child behind.
      this.abandon()
      throw e
    }
  }

  /** Cold path: SIGKILL, reap synchronously (it dies promptly) and close every fd. */
  private abandon(): void {
    const n = this.native
    try {
      n.kill(this.pidfd, constants.signals.SIGKILL)
      const pause = new Int32Array(new SharedArrayBuffer(4))
      for (let i = 0; i < 1000 && n.reap(this.pidfd) === null; i++) Atomics.wait(pause, 0, 0, 1)
    } catch {
      // Already gone.
    }
    for (const fd of [this.pidfd, this.stdin?.fd, this.stdout?.fd, this.stderr?.fd]) {
      if (fd === undefined) continue
      this.d.ring.disown(fd)
      try {
        n.closeFd(fd)
      } catch {
        // ignore
      }
    }
    this.pidfdClosed = true
  }

  private arm(): void {
    const d = this.d
    if (this.useWaitid) {
      const slot = d.alloc(this, TAG_WAIT)
      d.argView(slot).fill(0)
      prepWaitid(d, slot, P_PIDFD, this.pidfd, d.argAddress(slot), WEXITED) // the siginfo_t in the arg area
    } else {
      const slot = d.alloc(this, TAG_POLL)
      prepPollAdd(d, slot, this.pidfd, POLLIN)
    }
  }

  onCqe(slot: number, tag: number, res: number): void {
    if (tag === TAG_WAIT && res >= 0) {
      const arg = this.d.argView(slot)
      const info = new DataView(arg.buffer, arg.byteOffset, arg.byteLength)
      return this.settle({ status: status(info.getInt32(8, true), info.getInt32(24, true)) })
    }
    // WAITID failed, or the pidfd poll fired (res >= 0: the child exited) or failed: reap here.
    try {
      const r = this.native.reap(this.pidfd)
      if (r !== null) return this.settle({ status: status(r.code, r.status) })
    } catch (e) {
      return this.settle({ error: errorFrom("wait", this.command, e) })
    }
    if (tag === TAG_POLL && res < 0) return this.settle({ error: errnoError("wait", this.command, res) })
    // Still running: a kernel that refused WAITID falls back to polling the pidfd.
    if (tag === TAG_WAIT) this.useWaitid = false
    this.arm()
  }

  private settle(r: { status: ExitStatus } | { error: ProcessError }): void {
    this.result = r
    const ws = [...this.exitWaiters]
    this.exitWaiters.clear()
    for (const w of ws) w()
  }

  get exited(): boolean {
    return this.result !== undefined
  }

  private onExit(f: () => void): () => void {
    if (this.result !== undefined) {
      f()
      return () => {}
    }
    this.exitWaiters.add(f)
    return () => this.exitWaiters.delete(f)
  }

  private get outcome(): Effect.Effect<ExitStatus, ProcessError> {
    const r = this.result!
    return "status" in r ? Effect.succeed(r.status) : Effect.fail(r.error)
  }

  /** Waits for the exit. With `killOnInterrupt`, interrupting the wait SIGKILLs the child and completes once it is reaped. */
  await(killOnInterrupt: boolean): Effect.Effect<ExitStatus, ProcessError> {
    return Effect.async<ExitStatus, ProcessError>((resume) => {
      const off = this.onExit(() => resume(this.outcome))
      if (!killOnInterrupt) return Effect.sync(off)
      return Effect.async<void>((done) => {
        off()
        this.signal(constants.signals.SIGKILL)
        this.onExit(() => done(Effect.void))
      })
    })
  }

  /** Sends a signal unless the child already exited; ESRCH (already gone) is not an error. */
  signal(signo: number): ProcessError | undefined {
    if (this.result !== undefined || this.pidfdClosed) return undefined
    try {
      this.native.kill(this.pidfd, signo)
    } catch (e: any) {
      if (e?.errno !== ESRCH) return errorFrom("kill", this.command, e)
    }
    return undefined
  }

  /** Scope release: SIGKILL a child that still runs and reap it, close the pipes, then the pidfd. */
  readonly release: Effect.Effect<void> = Effect.suspend(() => {
    const killed = this.result !== undefined
      ? Effect.void
      : Effect.async<void>((resume) => {
        this.signal(constants.signals.SIGKILL)
        this.onExit(() => resume(Effect.void))
      })
    const pipes = [this.stdin, this.stdout, this.stderr].filter((p): p is PipeEnd => p !== undefined)
    return killed.pipe(
      Effect.zipRight(Effect.forEach(pipes, (p) => p.close, { discard: true })),
      Effect.zipRight(Effect.sync(() => {
        if (this.pidfdClosed) return
        this.pidfdClosed = true
        this.d.ring.disown(this.pidfd)
        try {
          this.native.closeFd(this.pidfd)
        } catch {
          // ignore
        }
      }))
    )
  }).pipe(Effect.uninterruptible)
}

const status = (code: number, value: number): ExitStatus =>
  code === CLD_EXITED
    ? { _tag: "Exited", code: value }
    : { _tag: "Signaled", signo: value, signal: signalName(value), coreDumped: code === CLD_DUMPED }

const envArray = (options: SpawnOptions): Array<string> | null => {
  if (options.env === undefined && options.extendEnv !== false) return null
  const merged: Record<string, string | undefined> = options.extendEnv === false
    ? { ...options.env }
    : { ...process.env, ...options.env }
  const out: Array<string> = []
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) out.push(`${k}=${v}`)
  return out
}

/**
 * The first argument execve would misread, as a typed error: a NUL byte ends a C string early,
 * so `rm "a\0 -rf /"` must never reach the kernel as `rm a`. An environment name may not be empty
 * or hold `=` either (the kernel splits `NAME=value` at the first one).
 */
export const checkSpawn = (command: string, args: ReadonlyArray<string>, options: SpawnOptions): ProcessError | undefined => {
  const checks: Array<[string, string | undefined]> = [["command", badCString(command)]]
  if (command === "") checks.push(["command", "must not be empty"])
  if (!Array.isArray(args)) checks.push(["args", `must be an array of strings, got ${show(args)}`])
  else args.forEach((a, i) => checks.push([`args[${i}]`, badCString(a)]))
  if (options.argv0 !== undefined) checks.push(["argv0", badCString(options.argv0)])
  if (options.cwd !== undefined) checks.push(["cwd", badCString(options.cwd)])
  if (options.env !== undefined) {
    for (const [k, v] of Object.entries(options.env)) {
      checks.push([`env name ${show(k)}`, k === "" || k.includes("=") ? "must be non-empty and without \"=\"" : badCString(k)])
      if (v !== undefined) checks.push([`env.${k}`, badCString(v)])
    }
  }
  for (const [argument, problem] of checks) {
    if (problem !== undefined) {
      return new ProcessError({
        operation: "spawn",
        command: typeof command === "string" ? command : show(command),
        errno: Errno.EINVAL,
        code: "EINVAL",
        argument,
        detail: problem
      })
    }
  }
  return undefined
}

/** Starts a child; the Scope's release kills it if it still runs and closes every fd. */
export const spawn = (
  d: Driver,
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions,
  useWaitid = d.opcodes[Op.WAITID] === 1
) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const invalid = checkSpawn(command, args, options)
      return invalid === undefined ? Effect.void : Effect.fail(invalid)
    }).pipe(Effect.zipRight(Effect.try({
      try: () => {
        const native = load()
        const spawned = native.spawn(
          command,
          [options.argv0 ?? command, ...args],
          envArray(options),
          options.cwd ?? null,
          [options.stdin ?? "pipe", options.stdout ?? "pipe", options.stderr ?? "pipe"]
        )
        for (const fd of [spawned.pidfd, spawned.stdin, spawned.stdout, spawned.stderr]) if (fd >= 0) d.ring.own(fd)
        return new Child(d, native, spawned, command, useWaitid)
      },
      catch: (e) => errorFrom("spawn", command, e)
    }))),
    (child) => child.release
  )

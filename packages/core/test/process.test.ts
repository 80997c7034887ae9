import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Stream } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Command, CommandExecutor } from "@effect/platform"
import { Process, Ringline, RinglineCommandExecutor } from "../src/index.js"
import * as internal from "../src/internal/process.js"
import { Op } from "../src/internal/sqe.js"
import { detachAndReuse, withRing } from "./helpers.js"
import type { ProcessError } from "../src/RinglineError.js"

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !isZombie(pid)
const isZombie = (pid: number) => {
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, "utf8"))
  } catch {
    return false
  }
}


/** Narrows a spawn failure to ProcessError (asserting that is what it is). */
const processError = (e: { readonly _tag: string }): ProcessError => {
  expect(e._tag).toBe("ProcessError")
  return e as ProcessError
}

describe("processes", () => {
  it.live("true exits 0, false exits non-zero", () =>
    withRing(Effect.gen(function*() {
      const ok = yield* Process.spawn("true", [], { stdin: "ignore", stdout: "ignore", stderr: "ignore" })
      expect(yield* ok.exitStatus).toEqual({ _tag: "Exited", code: 0 })
      const bad = yield* Process.spawn("false")
      const s = yield* bad.exitStatus
      expect(s._tag).toBe("Exited")
      expect(s._tag === "Exited" && s.code).not.toBe(0)
      expect(yield* bad.isRunning).toBe(false)
    })))

  it.live("passes args, env and cwd; reports the exit code", () =>
    withRing(Effect.gen(function*() {
      const out = yield* Process.output("sh", ["-c", 'echo "$FOO" "$1" && pwd && echo err >&2 && exit 7', "sh", "an arg"], {
        env: { FOO: "bar baz" },
        cwd: "/tmp"
      })
      expect(text(out.stdout)).toBe("bar baz an arg\n/tmp\n")
      expect(text(out.stderr)).toBe("err\n")
      expect(out.status).toEqual({ _tag: "Exited", code: 7 })
      // extendEnv: false gives the child exactly `env`.
      const only = yield* Process.output("/usr/bin/env", [], { env: { ONLY: "1" }, extendEnv: false })
      expect(text(only.stdout)).toBe("ONLY=1\n")
    })))

  it.live("kill of sleep 60 reports the signal", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("sleep", ["60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" })
      expect(yield* child.isRunning).toBe(true)
      yield* child.kill()
      expect(yield* child.exitStatus).toEqual({ _tag: "Signaled", signal: "SIGTERM", signo: 15, coreDumped: false })
      expect(yield* child.exitCode).toBe(143)
      // Killing an exited child is a no-op.
      yield* child.kill("SIGKILL")
      const bad = processError(yield* Effect.flip(Effect.scoped(Effect.flatMap(Process.spawn("sleep", ["60"]), (c) => c.kill("SIGNOPE" as any)))))
      expect(bad.code).toBe("EINVAL")
    })))

  it.live("a missing program fails typed with ENOENT; a non-executable one with EACCES; a bad cwd with ENOENT in chdir", () =>
    withRing(Effect.gen(function*() {
      const e1 = processError(yield* Effect.flip(Process.spawn("ringline-no-such-program-x")))
      expect(e1.code).toBe("ENOENT")
      expect(e1.operation).toBe("spawn")
      expect(e1.syscall).toBe("execve")
      const file = join(mkdtempSync(join(tmpdir(), "ringline-proc-")), "not-executable")
      writeFileSync(file, "#!/bin/sh\necho hi\n", { mode: 0o644 })
      const e2 = processError(yield* Effect.flip(Process.spawn(file)))
      expect(e2.code).toBe("EACCES")
      rmSync(dirname(file), { recursive: true })
      const e3 = processError(yield* Effect.flip(Process.spawn("true", [], { cwd: "/nonexistent-dir-ringline" })))
      expect(e3.code).toBe("ENOENT")
      expect(e3.syscall).toBe("chdir")
    })))

  it.live("reads 16 MiB of stdout completely", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("head", ["-c", "16777216", "/dev/zero"], { stdin: "ignore" })
      const total = yield* Stream.runFold(child.stdout, 0, (n, c) => {
        for (let i = 0; i < c.length; i += 4096) if (c[i] !== 0) throw new Error("not zero")
        return n + c.length
      })
      expect(total).toBe(16 * 1024 * 1024)
      expect(yield* child.exitStatus).toEqual({ _tag: "Exited", code: 0 })
    })))

  it.live("a stdin write's buffer transferred (detached) while the write waits: the child gets those bytes, not freed memory", () =>
    withRing(Effect.gen(function*() {
      const SIZE = 1 << 20
      // The child reads nothing for a second: the write waits on a full pipe. Then it counts
      // what is not "A".
      const child = yield* Process.spawn("sh", ["-c", "sleep 1; tr -d A | wc -c"])
      const reader = yield* Effect.fork(Stream.runCollect(child.stdout))
      const bytes = new Uint8Array(SIZE).fill(0x41)
      const writer = yield* Effect.fork(Effect.zipRight(child.write(bytes), child.closeStdin))
      yield* Effect.sleep("50 millis")
      const junk = detachAndReuse(bytes, 16)
      expect(bytes.byteLength).toBe(0)
      // Before the pin: EFAULT once the pipe had room, or other memory's bytes.
      yield* Fiber.join(writer)
      const out = [...(yield* Fiber.join(reader))].map((c) => text(c)).join("")
      expect(out.trim()).toBe("0")
      expect(junk).toHaveLength(16)
    })), 30_000)

  it.live("stdin piped to cat echoes back (1 MiB, more than a pipe holds)", () =>
    withRing(Effect.gen(function*() {
      const payload = new Uint8Array(1 << 20)
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff
      const child = yield* Process.spawn("cat")
      const reader = yield* Effect.fork(Stream.runCollect(child.stdout))
      yield* Stream.run(Stream.make(payload.subarray(0, 1000), payload.subarray(1000)), child.stdin)
      const chunks = [...(yield* Fiber.join(reader))]
      const back = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
      let at = 0
      for (const c of chunks) (back.set(c, at), at += c.length)
      expect(back.length).toBe(payload.length)
      expect(Buffer.from(back).equals(Buffer.from(payload))).toBe(true)
      expect(yield* child.exitStatus).toEqual({ _tag: "Exited", code: 0 })
      const small = yield* Process.output("cat", [], { input: new TextEncoder().encode("hello") })
      expect(text(small.stdout)).toBe("hello")
    })))

  it.live("interrupting the wait SIGKILLs the child and reaps it", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("sleep", ["60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" })
      expect(alive(child.pid)).toBe(true)
      const r = yield* Effect.timeout(child.exitStatus, "100 millis").pipe(Effect.option)
      expect(Option.isNone(r)).toBe(true)
      // The interruption completed only after the exit: the child is gone (reaped, no zombie).
      expect(existsSync(`/proc/${child.pid}`)).toBe(false)
      expect(yield* child.isRunning).toBe(false)
      // Later waits see how it ended.
      expect(yield* child.exitStatus).toMatchObject({ _tag: "Signaled", signal: "SIGKILL" })
    })))

  it.live("closing the scope kills a running child and closes every fd; interrupting a read leaks nothing", () =>
    withRing(Effect.gen(function*() {
      let pid = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* Process.spawn("sleep", ["60"])
        pid = child.pid
        // A read in flight on stdout, interrupted.
        const f = yield* Effect.fork(Stream.runDrain(child.stdout))
        yield* Effect.sleep(20)
        yield* Fiber.interrupt(f)
      }))
      expect(existsSync(`/proc/${pid}`)).toBe(false)
      // A reader still running when the scope closes sees the end of the stream.
      const exit = yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* Process.spawn("sleep", ["60"])
        return yield* Effect.fork(Stream.runCollect(child.stdout))
      })).pipe(Effect.flatMap(Fiber.await))
      expect(Exit.isSuccess(exit)).toBe(true)
    })))

  it.live("an interrupted read keeps bytes that arrived meanwhile", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("sh", ["-c", "read x; echo \"got $x\""])
      const f = yield* Effect.fork(Stream.runCollect(child.stdout))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(f)
      yield* child.write(new TextEncoder().encode("line\n"))
      const out = yield* Stream.runCollect(child.stdout)
      expect(text(Buffer.concat([...out]))).toBe("got line\n")
      expect(yield* child.exitStatus).toEqual({ _tag: "Exited", code: 0 })
    })))

  it.live("writing to a child that closed stdin fails with EPIPE", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("true", [], { stdout: "ignore", stderr: "ignore" })
      yield* child.exitStatus
      const e = yield* Effect.flip(child.write(new Uint8Array(100)))
      expect(e.code).toBe("EPIPE")
    })))

  it.live("falls back to polling the pidfd without IORING_OP_WAITID", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ringline.Ringline
      const d = ring.driver!
      const child = Process.fromChild(
        yield* internal.spawn(d, "sh", ["-c", "exit 5"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }, false)
      )
      expect(yield* child.exitStatus).toEqual({ _tag: "Exited", code: 5 })
      const sleeper = Process.fromChild(
        yield* internal.spawn(d, "sleep", ["60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }, false)
      )
      yield* sleeper.kill("SIGKILL")
      expect(yield* sleeper.exitStatus).toMatchObject({ _tag: "Signaled", signo: 9 })
      if (d.opcodes[Op.WAITID] !== 1) console.log("SKIP WAITID path: kernel lacks IORING_OP_WAITID (polled instead)")
    })))

  it.live("many concurrent children", () =>
    withRing(Effect.gen(function*() {
      const outs = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Process.output("sh", ["-c", `echo ${i}; exit ${i % 3}`]),
        { concurrency: "unbounded" }
      )
      outs.forEach((o, i) => {
        expect(text(o.stdout)).toBe(`${i}\n`)
        expect(o.status).toEqual({ _tag: "Exited", code: i % 3 })
      })
    })))
})

describe("RinglineCommandExecutor (@effect/platform Command on the ring)", () => {
  const run = <A, E>(body: Effect.Effect<A, E, CommandExecutor.CommandExecutor | import("effect").Scope.Scope>) =>
    withRing(Effect.flatMap(RinglineCommandExecutor.make, (ex) =>
      Effect.provideService(body, CommandExecutor.CommandExecutor, ex)))

  it.live("string, lines, exitCode, env, cwd, shell", () =>
    run(Effect.gen(function*() {
      expect(yield* Command.string(Command.make("echo", "hello"))).toBe("hello\n")
      expect(yield* Command.lines(Command.make("printf", "a\\nb\\n"))).toEqual(["a", "b"])
      expect(yield* Command.exitCode(Command.make("false"))).toBe(1)
      const c = Command.make("sh", "-c", 'echo "$FOO"; pwd').pipe(
        Command.env({ FOO: "from-env" }),
        Command.workingDirectory("/tmp")
      )
      expect(yield* Command.string(c)).toBe("from-env\n/tmp\n")
      expect(yield* Command.string(Command.make("echo $((1+2))").pipe(Command.runInShell(true)))).toBe("3\n")
    })))

  it.live("a missing program is a NotFound SystemError with the ProcessError as cause", () =>
    run(Effect.gen(function*() {
      const e = yield* Effect.flip(Command.exitCode(Command.make("ringline-no-such-program-y")))
      expect(e._tag).toBe("SystemError")
      expect(e._tag === "SystemError" && e.reason).toBe("NotFound")
      expect((e as any).cause._tag).toBe("ProcessError")
      expect((e as any).cause.code).toBe("ENOENT")
    })))

  it.live("stdin from a Stream, piped commands, kill", () =>
    run(Effect.gen(function*() {
      const fed = Command.make("cat").pipe(Command.feed("fed through the ring"))
      expect(yield* Command.string(fed)).toBe("fed through the ring")
      const piped = Command.make("printf", "b\\na\\nc\\n").pipe(Command.pipeTo(Command.make("sort")))
      expect(yield* Command.lines(piped)).toEqual(["a", "b", "c"])
      const p = yield* Command.start(Command.make("sleep", "60"))
      expect(yield* p.isRunning).toBe(true)
      yield* p.kill("SIGKILL")
      expect(yield* p.isRunning).toBe(false)
      const e = yield* Effect.flip(p.exitCode)
      expect(e.message).toContain("SIGKILL")
    })))
})

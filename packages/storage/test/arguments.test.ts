/**
 * Storage arguments (issue 9, items 4 and 7): a path with a NUL byte fails before any SQE (the
 * kernel would read the C string up to the NUL: `File.open("a\0.png")` read `a`,
 * `File.remove("victim\0zzz")` deleted `victim`); RinglineFileSystem fails exactly as
 * NodeFileSystem does; bad offsets and lengths are typed errors, non-bytes are defects; and every
 * entry point fails at once after the Ringline layer was released.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Ringline } from "@ringline/core"
import { Cause, Effect, Exit, Layer, Option, Sink, Stream } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { DirectFile, File, Nvme, RinglineFileSystem } from "../src/index.js"
import { tempDir, withRing } from "./helpers.js"

const nothingSubmitted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* Effect.sleep(5)
    const before = yield* Ringline.stats
    const exit = yield* Effect.exit(effect)
    yield* Effect.sleep(5)
    const after = yield* Ringline.stats
    expect(after.cqes - before.cqes).toBe(0)
    expect(after.inFlight).toBe(before.inFlight)
    return exit
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): any => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got success")
  const f = Cause.failureOption(exit.cause)
  if (Option.isNone(f)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return f.value
}

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) throw new Error("expected a defect, got success")
  const d = Cause.dieOption(exit.cause)
  if (Option.isNone(d)) throw new Error(`expected a defect, got ${Cause.pretty(exit.cause)}`)
  return d.value
}

describe("item 4: NUL in storage paths", () => {
  it.live("File: open/stat/lstat/remove/rename/link/symlink/makeDirectory refuse NUL before any SQE", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const a = join(dir, "a")
      const victim = join(dir, "victim")
      writeFileSync(a, "secret a")
      writeFileSync(victim, "keep me")
      const cases: Array<[string, Effect.Effect<unknown, any, any>, string]> = [
        ["open", Effect.scoped(File.open(a + "\0.png")), "path"],
        ["stat", File.stat(a + "\0"), "path"],
        ["lstat", File.lstat(a + "\0"), "path"],
        ["remove", File.remove(victim + "\0zzz"), "path"],
        ["rename", File.rename(victim + "\0", join(dir, "b")), "path"],
        ["rename", File.rename(a, join(dir, "b\0c")), "to"],
        ["link", File.link(a, join(dir, "l\0x")), "to"],
        ["symlink", File.symlink(a + "\0", join(dir, "s")), "target"],
        ["symlink", File.symlink(a, join(dir, "s\0x")), "path"],
        ["makeDirectory", File.makeDirectory(join(dir, "d\0x")), "path"]
      ]
      for (const [method, effect, argument] of cases) {
        const e = failureOf(yield* nothingSubmitted(effect))
        expect(e).toMatchObject({ _tag: "SystemError", module: "FileSystem", method, reason: "InvalidData" })
        expect(e.message).toContain(`${argument} must not contain NUL bytes`)
      }
      expect(readFileSync(victim, "utf8")).toBe("keep me")
      expect(existsSync(join(dir, "b"))).toBe(false)
      expect(existsSync(join(dir, "d"))).toBe(false)
      expect(existsSync(join(dir, "l"))).toBe(false)
    })))

  it.live("File handle: bad positions and lengths are typed errors; non-bytes are defects; nothing submitted", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const f = yield* File.open(join(dir, "f"), { flags: "w+" })
      yield* f.write(new Uint8Array([1, 2, 3, 4]), 0)
      for (const position of [-1, -2, 1.5, NaN, Infinity, 2 ** 64]) {
        const e = failureOf(yield* nothingSubmitted(f.read(new Uint8Array(4), position)))
        expect(e).toMatchObject({ _tag: "SystemError", method: "read", reason: "InvalidData" })
        expect(e.message).toContain("position must be an integer")
        expect(failureOf(yield* nothingSubmitted(f.write(new Uint8Array(1), position)))).toMatchObject({ method: "write" })
        expect(failureOf(yield* nothingSubmitted(f.readv([new Uint8Array(1)], position)))).toMatchObject({ method: "readv" })
      }
      for (const length of [-1, NaN, 0.5]) {
        expect(failureOf(yield* nothingSubmitted(f.truncate(length)))).toMatchObject({ method: "truncate", reason: "InvalidData" })
        expect(failureOf(yield* nothingSubmitted(f.allocate(length)))).toMatchObject({ method: "allocate", reason: "InvalidData" })
      }
      for (const bad of ["abcd", 42, null, [1, 2]]) {
        expect(defectOf(yield* nothingSubmitted(f.write(bad as any, 0)))).toBeInstanceOf(TypeError)
        expect(defectOf(yield* nothingSubmitted(f.read(bad as any, 0)))).toBeInstanceOf(TypeError)
        expect(defectOf(yield* nothingSubmitted(f.writev([bad as any], 0)))).toBeInstanceOf(TypeError)
      }
      // Views of other types read and write their exact bytes.
      const dv = new DataView(new ArrayBuffer(8), 2, 4)
      expect(yield* f.read(dv as any, 0)).toBe(4)
      expect([...new Uint8Array(dv.buffer, 2, 4)]).toEqual([1, 2, 3, 4])
      const words = new Uint16Array([0x0605, 0x0807])
      expect(yield* f.write(words as any, 4)).toBe(4)
      const back = new Uint8Array(8)
      yield* f.readFully(back, 0)
      expect([...back]).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      // readFully / writeAll with a view or with non-bytes: before, the op stayed counted in flight
      // and the file's close (the scope) hung forever. Found by properties.test.ts.
      const whole = new DataView(new ArrayBuffer(8))
      yield* f.readFully(whole as any, 0)
      expect([...new Uint8Array(whole.buffer)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      yield* f.writeAll(new Uint16Array([0x0a09]) as any, 8)
      expect(defectOf(yield* nothingSubmitted(f.readFully("abcd" as any, 0)))).toBeInstanceOf(TypeError)
      expect(defectOf(yield* nothingSubmitted(f.writeAll(7 as any, 0)))).toBeInstanceOf(TypeError)
      expect(failureOf(yield* nothingSubmitted(f.readFully(new Uint8Array(1), -1)))).toMatchObject({ reason: "InvalidData" })
      const invalidMode = failureOf(yield* nothingSubmitted(Effect.scoped(File.open(join(dir, "m"), { flags: "w", mode: -1 }))))
      expect(invalidMode.message).toContain("mode")
    })))

  it.live("DirectFile.open and Nvme.open refuse NUL paths before any syscall", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(join(dir, "a"), "x")
      const d = failureOf(yield* nothingSubmitted(Effect.scoped(DirectFile.open(join(dir, "a") + "\0.bin"))))
      expect(d).toMatchObject({ _tag: "DirectFileError", operation: "open", code: "EINVAL" })
      const n = failureOf(yield* Effect.exit(Effect.scoped(Nvme.open("/dev/ng0n1\0x"))))
      expect(n).toMatchObject({ _tag: "NvmeArgumentError", operation: "open", field: "path" })
    })))
})

/**
 * Each FileSystem method called with a NUL path, against NodeFileSystem and RinglineFileSystem:
 * both must fail with the same error tag and method (BadArgument, except readDirectory, which
 * NodeFileSystem reports as a SystemError), and RinglineFileSystem must submit nothing.
 */
const nulCalls = (dir: string): Record<string, (fs: FileSystem.FileSystem) => Effect.Effect<unknown, unknown, never>> => {
  const bad = join(dir, "a\0b")
  const ok = join(dir, "ok")
  return {
    access: (fs) => fs.access(bad),
    copy: (fs) => fs.copy(bad, ok),
    copyTo: (fs) => fs.copy(dir, bad),
    copyFile: (fs) => fs.copyFile(bad, ok),
    chmod: (fs) => fs.chmod(bad, 0o644),
    chown: (fs) => fs.chown(bad, 0, 0),
    exists: (fs) => fs.exists(bad),
    link: (fs) => fs.link(bad, ok),
    makeDirectory: (fs) => fs.makeDirectory(bad),
    makeDirectoryRecursive: (fs) => fs.makeDirectory(bad, { recursive: true }),
    makeTempDirectory: (fs) => fs.makeTempDirectory({ directory: bad }),
    makeTempDirectoryPrefix: (fs) => fs.makeTempDirectory({ directory: dir, prefix: "p\0" }),
    makeTempFile: (fs) => fs.makeTempFile({ directory: bad }),
    makeTempFilePrefix: (fs) => fs.makeTempFile({ directory: dir, prefix: "p\0" }),
    makeTempDirectoryScoped: (fs) => Effect.scoped(fs.makeTempDirectoryScoped({ directory: bad })),
    makeTempFileScoped: (fs) => Effect.scoped(fs.makeTempFileScoped({ directory: bad })),
    open: (fs) => Effect.scoped(fs.open(bad)),
    readDirectory: (fs) => fs.readDirectory(bad),
    readFile: (fs) => fs.readFile(bad),
    readFileString: (fs) => fs.readFileString(bad),
    readLink: (fs) => fs.readLink(bad),
    realPath: (fs) => fs.realPath(bad),
    remove: (fs) => fs.remove(bad),
    removeRecursive: (fs) => fs.remove(bad, { recursive: true }),
    rename: (fs) => fs.rename(bad, ok),
    renameTo: (fs) => fs.rename(join(dir, "missing"), bad),
    stat: (fs) => fs.stat(bad),
    symlink: (fs) => fs.symlink(bad, ok),
    symlinkAt: (fs) => fs.symlink(ok, bad),
    truncate: (fs) => fs.truncate(bad),
    utimes: (fs) => fs.utimes(bad, 0, 0),
    writeFile: (fs) => fs.writeFile(bad, new Uint8Array(1)),
    writeFileString: (fs) => fs.writeFileString(bad, "x"),
    stream: (fs) => Stream.runDrain(fs.stream(bad)),
    sink: (fs) => Stream.run(Stream.make(new Uint8Array(1)), fs.sink(bad))
  }
}

const summary = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return { success: true }
  const f = Cause.failureOption(exit.cause)
  if (Option.isNone(f)) return { defect: Cause.pretty(exit.cause).split("\n")[0] }
  const e = f.value as any
  return { _tag: e._tag, module: e.module, method: e.method, reason: e.reason }
}

describe("RinglineFileSystem: NUL paths fail as with NodeFileSystem", () => {
  it.live("every method: same error tag, module, method and reason; nothing submitted; nothing created", () =>
    Effect.gen(function*() {
      const node: Record<string, unknown> = {}
      yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* tempDir
        const fs = yield* FileSystem.FileSystem
        for (const [name, call] of Object.entries(nulCalls(dir))) node[name] = summary(yield* Effect.exit(call(fs)))
      })).pipe(Effect.provide(NodeFileSystem.layer))
      const ring: Record<string, unknown> = {}
      yield* withRing(Effect.gen(function*() {
        const dir = yield* tempDir
        writeFileSync(join(dir, "a"), "must survive")
        const fs = yield* FileSystem.FileSystem
        for (const [name, call] of Object.entries(nulCalls(dir))) ring[name] = summary(yield* nothingSubmitted(call(fs)))
        expect(readFileSync(join(dir, "a"), "utf8")).toBe("must survive")
        expect(existsSync(join(dir, "ok"))).toBe(false)
      }).pipe(Effect.provide(RinglineFileSystem.layer)))
      expect(ring).toEqual(node)
      // Agreeing on nonsense would also be equal: check what they agree on.
      expect(ring.remove).toEqual({ _tag: "BadArgument", module: "FileSystem", method: "remove", reason: undefined })
      expect(ring.exists).toMatchObject({ _tag: "BadArgument", method: "access" })
      expect(ring.stream).toMatchObject({ _tag: "BadArgument", method: "open" })
      expect(ring.readDirectory).toMatchObject({ _tag: "SystemError", reason: "Unknown" })
    }))
})

describe("item 7: storage after the Ringline layer was released", () => {
  it.live("File, RinglineFileSystem and DirectFile fail at once with typed errors", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(join(dir, "a"), "x")
      const context = yield* Effect.scoped(Layer.build(Ringline.layer()))
      const fsLayer = Layer.provide(RinglineFileSystem.layer, Layer.succeedContext(context))
      const cases: Array<[string, Effect.Effect<unknown, any, Ringline.Ringline>, Record<string, unknown>]> = [
        ["File.open", Effect.scoped(File.open(join(dir, "a"))), { _tag: "SystemError", reason: "BadResource" }],
        ["File.stat", File.stat(join(dir, "a")), { _tag: "SystemError", reason: "BadResource" }],
        ["File.remove", File.remove(join(dir, "a")), { _tag: "SystemError", reason: "BadResource" }],
        ["DirectFile.open", Effect.scoped(DirectFile.open(join(dir, "a"))), { _tag: "DirectFileError", code: "ESHUTDOWN" }],
        [
          "FileSystem.readFile",
          Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(join(dir, "a"))).pipe(Effect.provide(fsLayer)),
          { _tag: "SystemError", reason: "BadResource", method: "readFile" }
        ]
      ]
      for (const [name, effect, expected] of cases) {
        const started = Date.now()
        const exit = yield* Effect.exit(effect.pipe(Effect.provide(context), Effect.timeout(2000)))
        expect({ name, ...failureOf(exit) }).toMatchObject({ name, ...expected })
        expect(Date.now() - started).toBeLessThan(1000)
      }
      expect(existsSync(join(dir, "a"))).toBe(true)
    }).pipe(Effect.scoped))
})

export const _s = Sink.drain

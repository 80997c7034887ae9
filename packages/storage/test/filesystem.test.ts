/**
 * Conformance: one suite of scenarios run against NodeFileSystem.layer and RinglineFileSystem.layer,
 * asserting identical results (values, error tags/reasons/methods, file contents on disk).
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Ringline } from "@ringline/core"
import { Effect, Option, type Scope, Stream } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { RinglineFileSystem } from "../src/index.js"
import { tempDir, withRing } from "./helpers.js"

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

type Scenario = (dir: string) => Effect.Effect<unknown, unknown, FileSystem.FileSystem | Scope.Scope>

/** An error as a comparable value (paths relative to the scenario directory). */
const describeError = (dir: string) => (e: unknown) => {
  const err = e as { _tag: string; reason?: string; method?: string; pathOrDescriptor?: unknown }
  return {
    error: err._tag,
    reason: err.reason,
    method: err.method,
    path: typeof err.pathOrDescriptor === "string" ? err.pathOrDescriptor.replace(dir, "<dir>") : err.pathOrDescriptor
  }
}
const attempt = <A>(dir: string, effect: Effect.Effect<A, unknown, FileSystem.FileSystem | Scope.Scope>) =>
  Effect.catchAll(Effect.map(effect, (value) => ({ ok: value as unknown })), (e) => Effect.succeed(describeError(dir)(e)))

const scenarios: Record<string, Scenario> = {
  "writeFile / readFile / readFileString / writeFile flags": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const p = join(dir, "a.txt")
      yield* fs.writeFile(p, text("hello"))
      const first = str(yield* fs.readFile(p))
      yield* fs.writeFileString(p, " world", { flag: "a" })
      const appended = yield* fs.readFileString(p)
      const big = new Uint8Array(700_000).map((_, i) => i % 251)
      yield* fs.writeFile(join(dir, "big.bin"), big)
      const bigBack = yield* fs.readFile(join(dir, "big.bin"))
      const empty = yield* fs.writeFile(join(dir, "empty"), new Uint8Array(0)).pipe(Effect.zipRight(fs.readFile(join(dir, "empty"))))
      const exclusive = yield* attempt(dir, fs.writeFile(p, text("x"), { flag: "wx" }))
      return {
        first,
        appended,
        onDisk: readFileSync(p, "utf8"),
        big: bigBack.length === big.length && Buffer.from(bigBack).equals(Buffer.from(big)),
        empty: empty.length,
        exclusive
      }
    }),

  "stat size and type": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(join(dir, "f"), "12345")
      yield* fs.makeDirectory(join(dir, "d"))
      const f = yield* fs.stat(join(dir, "f"))
      const d = yield* fs.stat(join(dir, "d"))
      return {
        file: [f.type, f.size, f.mode & 0o170000, Option.isSome(f.mtime), Option.map(f.nlink, (n) => n)],
        dir: [d.type, d.mode & 0o170000],
        missing: yield* attempt(dir, fs.stat(join(dir, "nope")))
      }
    }),

  "rename": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(join(dir, "a"), "A")
      yield* fs.rename(join(dir, "a"), join(dir, "b"))
      return {
        a: yield* fs.exists(join(dir, "a")),
        b: yield* fs.readFileString(join(dir, "b")),
        missing: yield* attempt(dir, fs.rename(join(dir, "a"), join(dir, "c")))
      }
    }),

  "remove file, directory, recursive, force": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(join(dir, "f"), "x")
      yield* fs.remove(join(dir, "f"))
      yield* fs.makeDirectory(join(dir, "t/a/b/c"), { recursive: true })
      yield* fs.writeFileString(join(dir, "t/a/1"), "1")
      yield* fs.writeFileString(join(dir, "t/a/b/2"), "2")
      yield* fs.writeFileString(join(dir, "t/a/b/c/3"), "3")
      yield* fs.symlink(join(dir, "t/a"), join(dir, "t/link"))
      const nonRecursive = yield* attempt(dir, fs.remove(join(dir, "t")))
      yield* fs.makeDirectory(join(dir, "keep"))
      yield* fs.writeFileString(join(dir, "keep/k"), "k")
      yield* fs.symlink(join(dir, "keep"), join(dir, "t/to-keep"))
      yield* fs.remove(join(dir, "t"), { recursive: true })
      return {
        f: yield* fs.exists(join(dir, "f")),
        nonRecursive,
        t: yield* fs.exists(join(dir, "t")),
        keptThroughSymlink: yield* fs.readFileString(join(dir, "keep/k")),
        missing: yield* attempt(dir, fs.remove(join(dir, "nope"))),
        forced: yield* attempt(dir, fs.remove(join(dir, "nope"), { force: true }))
      }
    }),

  "makeDirectory plain and recursive": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.makeDirectory(join(dir, "x/y/z"), { recursive: true })
      const again = yield* attempt(dir, fs.makeDirectory(join(dir, "x/y/z"), { recursive: true }))
      const exists = yield* attempt(dir, fs.makeDirectory(join(dir, "x")))
      const noParent = yield* attempt(dir, fs.makeDirectory(join(dir, "p/q")))
      yield* fs.writeFileString(join(dir, "file"), "")
      const overFile = yield* attempt(dir, fs.makeDirectory(join(dir, "file"), { recursive: true }))
      const underFile = yield* attempt(dir, fs.makeDirectory(join(dir, "file/sub"), { recursive: true }))
      const mode = yield* fs.makeDirectory(join(dir, "m"), { mode: 0o700 }).pipe(Effect.zipRight(fs.stat(join(dir, "m"))))
      return { z: (yield* fs.stat(join(dir, "x/y/z"))).type, again, exists, noParent, overFile, underFile, mode: mode.mode & 0o777 }
    }),

  "temp files and directories, scoped cleanup": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const tdir = yield* fs.makeTempDirectory({ directory: dir, prefix: "pre-" })
      const tfile = yield* fs.makeTempFile({ directory: dir, prefix: "f-", suffix: ".txt" })
      const scoped = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* fs.makeTempDirectoryScoped({ directory: dir })
        yield* fs.makeDirectory(join(d, "inner/deep"), { recursive: true })
        yield* fs.writeFileString(join(d, "inner/deep/x"), "x")
        const f = yield* fs.makeTempFileScoped({ directory: dir, suffix: ".bin" })
        yield* fs.writeFileString(f, "data")
        return { d, f, during: [yield* fs.exists(d), yield* fs.readFileString(f)] }
      }))
      const base = (p: string) => p.slice(dir.length + 1)
      return {
        tdir: [base(tdir).startsWith("pre-"), base(tdir).length, (yield* fs.stat(tdir)).type, (yield* fs.stat(tdir)).mode & 0o777],
        tfile: [tfile.endsWith(".txt"), (yield* fs.stat(tfile)).size, base(tfile).split("/").length],
        scopedDuring: scoped.during,
        scopedAfter: [yield* fs.exists(scoped.d), yield* fs.exists(scoped.f), yield* fs.exists(join(scoped.f, ".."))]
      }
    }),

  "copyFile and copy (recursive, overwrite)": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const content = new Uint8Array(600_000).map((_, i) => (i * 7) % 256)
      yield* fs.writeFile(join(dir, "src.bin"), content)
      yield* fs.chmod(join(dir, "src.bin"), 0o640)
      yield* fs.copyFile(join(dir, "src.bin"), join(dir, "dst.bin"))
      const copied = yield* fs.readFile(join(dir, "dst.bin"))
      yield* fs.makeDirectory(join(dir, "tree/sub"), { recursive: true })
      yield* fs.writeFileString(join(dir, "tree/a"), "a")
      yield* fs.writeFileString(join(dir, "tree/sub/b"), "b")
      yield* fs.copy(join(dir, "tree"), join(dir, "tree2"))
      yield* fs.writeFileString(join(dir, "tree/a"), "A2")
      yield* fs.copy(join(dir, "tree"), join(dir, "tree2"))
      const notOverwritten = yield* fs.readFileString(join(dir, "tree2/a"))
      yield* fs.copy(join(dir, "tree"), join(dir, "tree2"), { overwrite: true })
      return {
        copied: Buffer.from(copied).equals(Buffer.from(content)),
        mode: (yield* fs.stat(join(dir, "dst.bin"))).mode & 0o777,
        missing: yield* attempt(dir, fs.copyFile(join(dir, "nope"), join(dir, "x"))),
        tree: (yield* fs.readDirectory(join(dir, "tree2"), { recursive: true })).sort(),
        b: yield* fs.readFileString(join(dir, "tree2/sub/b")),
        notOverwritten,
        overwritten: yield* fs.readFileString(join(dir, "tree2/a"))
      }
    }),

  "truncate": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const p = join(dir, "t")
      yield* fs.writeFileString(p, "0123456789")
      yield* fs.truncate(p, 4)
      const four = yield* fs.readFileString(p)
      yield* fs.truncate(p, 6n)
      const six = [...(yield* fs.readFile(p))]
      yield* fs.truncate(p)
      return { four, six, zero: (yield* fs.stat(p)).size, missing: yield* attempt(dir, fs.truncate(join(dir, "nope"))) }
    }),

  "exists and access": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(join(dir, "f"), "")
      yield* fs.symlink(join(dir, "gone"), join(dir, "dangling"))
      return {
        file: yield* fs.exists(join(dir, "f")),
        dir: yield* fs.exists(dir),
        missing: yield* fs.exists(join(dir, "nope")),
        dangling: yield* fs.exists(join(dir, "dangling")),
        access: yield* attempt(dir, fs.access(join(dir, "f"), { readable: true, writable: true })),
        accessMissing: yield* attempt(dir, fs.access(join(dir, "nope")))
      }
    }),

  "File handle: seek, read, readAlloc, write positions, truncate, append": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const p = join(dir, "h")
      const out: Array<unknown> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const f = yield* fs.open(p, { flag: "w+" })
        yield* f.writeAll(text("hello world"))
        out.push(yield* f.write(text("!")))
        yield* f.seek(0, "start")
        const b = new Uint8Array(5)
        out.push(yield* f.read(b), str(b))
        yield* f.seek(1, "current")
        out.push(Option.map(yield* f.readAlloc(100), str))
        out.push(yield* f.readAlloc(10)) // end of file: none
        yield* f.seek(0, "start")
        yield* f.writeAll(text("J"))
        yield* f.truncate(8)
        yield* f.writeAll(text("E"))
        yield* f.seek(20, "start")
        yield* f.truncate(3) // position beyond: moved back to 3
        yield* f.writeAll(text("XY"))
        const info = yield* f.stat
        out.push(info.type, info.size)
        yield* f.sync
      }))
      out.push(readFileSync(p, "utf8"))
      yield* Effect.scoped(Effect.gen(function*() {
        const f = yield* fs.open(p, { flag: "a+" })
        yield* f.writeAll(text("++"))
        out.push(Option.map(yield* f.readAlloc(3), str)) // append mode: reads from position 0
        yield* f.write(text("--"))
      }))
      out.push(readFileSync(p, "utf8"))
      out.push(yield* attempt(dir, Effect.scoped(fs.open(join(dir, "nope")))))
      out.push(yield* attempt(dir, Effect.scoped(fs.open(p, { flag: "wx" }))))
      return out
    }),

  "stream and sink": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const p = join(dir, "s")
      const data = new Uint8Array(200_000).map((_, i) => i % 13)
      yield* fs.writeFile(p, data)
      const chunks = yield* Stream.runCollect(fs.stream(p, { chunkSize: 65536, offset: 10 }))
      const sizes = [...chunks].map((c) => c.length)
      yield* Stream.run(Stream.make(text("ab"), text("cd")), fs.sink(join(dir, "sunk")))
      return { sizes, sunk: readFileSync(join(dir, "sunk"), "utf8") }
    }),

  "readDirectory": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* fs.makeDirectory(join(dir, "a/b"), { recursive: true })
      yield* fs.writeFileString(join(dir, "a/x"), "")
      yield* fs.writeFileString(join(dir, "a/b/y"), "")
      return {
        flat: (yield* fs.readDirectory(join(dir, "a"))).sort(),
        recursive: (yield* fs.readDirectory(join(dir, "a"), { recursive: true })).sort(),
        missing: yield* attempt(dir, fs.readDirectory(join(dir, "nope")))
      }
    }),

  "link, symlink, readLink, realPath": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const f = join(dir, "f")
      yield* fs.writeFileString(f, "data")
      yield* fs.link(f, join(dir, "hard"))
      yield* fs.symlink("f", join(dir, "soft"))
      return {
        nlink: (yield* fs.stat(f)).nlink,
        hard: yield* fs.readFileString(join(dir, "hard")),
        soft: yield* fs.readFileString(join(dir, "soft")),
        readLink: yield* fs.readLink(join(dir, "soft")),
        realPath: (yield* fs.realPath(join(dir, "soft"))).replace(dir, "<dir>"),
        linkExists: yield* attempt(dir, fs.link(f, join(dir, "hard"))),
        linkMissing: yield* attempt(dir, fs.link(join(dir, "nope"), join(dir, "h2"))),
        symlinkExists: yield* attempt(dir, fs.symlink("f", join(dir, "soft"))),
        readLinkMissing: yield* attempt(dir, fs.readLink(join(dir, "nope")))
      }
    }),

  "errors: NotFound and AlreadyExists": (dir) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const missing = join(dir, "missing/file")
      yield* fs.makeDirectory(join(dir, "d"))
      return {
        readFile: yield* attempt(dir, fs.readFile(missing)),
        readFileDir: yield* attempt(dir, fs.readFile(join(dir, "d"))),
        writeFile: yield* attempt(dir, fs.writeFile(missing, text("x"))),
        stat: yield* attempt(dir, fs.stat(missing)),
        makeDirectory: yield* attempt(dir, fs.makeDirectory(join(dir, "d"))),
        tempInMissing: yield* attempt(dir, fs.makeTempDirectory({ directory: join(dir, "missing") })),
        // The rest of the errno table: Node's reasons, including the errnos it leaves "Unknown".
        notEmpty: yield* Effect.gen(function*() {
          yield* fs.writeFile(join(dir, "d", "f"), text("x"))
          return yield* attempt(dir, fs.remove(join(dir, "d"))) // ENOTEMPTY
        }),
        notDir: yield* attempt(dir, fs.stat(join(dir, "d", "f", "x"))), // ENOTDIR
        loop: yield* Effect.gen(function*() {
          yield* fs.symlink(join(dir, "b"), join(dir, "a"))
          yield* fs.symlink(join(dir, "a"), join(dir, "b"))
          return yield* attempt(dir, fs.readFile(join(dir, "a"))) // ELOOP
        }),
        invalid: yield* attempt(dir, fs.rename(join(dir, "d"), join(dir, "d", "sub"))) // EINVAL
      }
    })
}

const runNode = (scenario: Scenario) =>
  Effect.scoped(Effect.flatMap(tempDir, (dir) => scenario(dir))).pipe(Effect.provide(NodeFileSystem.layer))

const runRing = (scenario: Scenario) =>
  withRing(Effect.flatMap(tempDir, (dir) => scenario(dir)).pipe(Effect.provide(RinglineFileSystem.layer)))

describe("RinglineFileSystem conformance with NodeFileSystem", () => {
  for (const [name, scenario] of Object.entries(scenarios)) {
    it.live(name, () =>
      Effect.gen(function*() {
        const node = yield* runNode(scenario)
        const ring = yield* runRing(scenario)
        expect(ring).toEqual(node)
      }))
  }

  it.live("expected values (not only equal ones)", () =>
    Effect.gen(function*() {
      const r = (yield* runRing(scenarios["File handle: seek, read, readAlloc, write positions, truncate, append"]!)) as Array<unknown>
      expect(r.slice(0, 3)).toEqual([1n, 5n, "hello"])
      expect(r[3]).toEqual(Option.some("world!"))
      expect(r[4]).toEqual(Option.none())
      expect(r.slice(5, 8)).toEqual(["File", 5n, "JElXY"])
      expect(r[8]).toEqual(Option.some("JEl"))
      expect(r[9]).toBe("JElXY++--")
      const e = (yield* runRing(scenarios["errors: NotFound and AlreadyExists"]!)) as Record<string, { reason: string }>
      expect(e.readFile!.reason).toBe("NotFound")
      expect(e.makeDirectory!.reason).toBe("AlreadyExists")
      expect(e.notDir!.reason).toBe("BadResource")
      expect(e.loop!.reason).toBe("BadResource")
      expect(e.notEmpty!.reason).toBe("Unknown")
      expect(e.invalid!.reason).toBe("Unknown")
    }))
})

describe("RinglineFileSystem uses the ring", () => {
  it.live("file operations complete as CQEs", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const fs = yield* FileSystem.FileSystem
      const before = yield* Ringline.stats
      yield* fs.writeFileString(join(dir, "a"), "ring")
      const mid = yield* Ringline.stats
      expect(yield* fs.readFileString(join(dir, "a"))).toBe("ring")
      yield* fs.stat(join(dir, "a"))
      yield* fs.rename(join(dir, "a"), join(dir, "b"))
      yield* fs.remove(join(dir, "b"))
      const after = yield* Ringline.stats
      // writeFile = OPENAT + WRITE + CLOSE; readFile = OPENAT + STATX + 2 READs + CLOSE; stat, rename, remove: 1 each.
      expect(mid.cqes - before.cqes).toBeGreaterThanOrEqual(3)
      expect(after.cqes - mid.cqes).toBeGreaterThanOrEqual(8)
      expect(after.submitted).toBeGreaterThan(before.submitted)
    }).pipe(Effect.provide(RinglineFileSystem.layer))))
})

import { describe, expect, it } from "@effect/vitest"
import { Ringline } from "@ringline/core"
import { Effect, Exit, Fiber } from "effect"
import { randomBytes } from "node:crypto"
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs"
import { join } from "node:path"
import { File } from "../src/index.js"
import { detachAndReuse, fdCount, tempDir, tempFifo, withRing } from "./helpers.js"

const text = (s: string) => new TextEncoder().encode(s)

describe("File", () => {
  it.live("create, write, fsync, close, reopen, read back", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "a.txt")
      yield* Effect.scoped(Effect.gen(function*() {
        const f = yield* File.open(path, { flags: "w" })
        yield* f.writeAll(text("hello, ring"))
        yield* f.sync
        yield* f.datasync
      }))
      expect(readFileSync(path, "utf8")).toBe("hello, ring")
      const back = yield* Effect.scoped(Effect.gen(function*() {
        const f = yield* File.open(path)
        const buf = new Uint8Array(64)
        const n = yield* f.read(buf, 0)
        expect(yield* f.read(buf, n)).toBe(0) // end of file
        return Buffer.from(buf.subarray(0, n)).toString()
      }))
      expect(back).toBe("hello, ring")
    })))

  it.live("positional reads and writes, readv/writev, current-position writes", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "p.bin")
      const f = yield* File.open(path, { flags: "w+" })
      yield* f.writeAll(text("0123456789"), 0)
      yield* f.writeAll(text("AB"), 4)
      const b = new Uint8Array(4)
      yield* f.readFully(b, 3)
      expect(Buffer.from(b).toString()).toBe("3AB6")
      // Past the end: short read, and readFully fails with UnexpectedEof.
      expect(yield* f.read(new Uint8Array(8), 8)).toBe(2)
      const eof = yield* Effect.flip(f.readFully(new Uint8Array(8), 8))
      expect(eof.reason).toBe("UnexpectedEof")
      // Vectored I/O, with few iovecs (argument area) and many (driver-held memory).
      expect(yield* f.writev([text("xy"), text(""), text("z")], 10)).toBe(3)
      const parts = Array.from({ length: 20 }, (_, i) => text(String.fromCharCode(97 + i)))
      expect(yield* f.writev(parts, 13)).toBe(20)
      const x = new Uint8Array(1), y = new Uint8Array(2)
      expect(yield* f.readv([x, y], 10)).toBe(3)
      expect(Buffer.from([...x, ...y]).toString()).toBe("xyz")
      const many = Array.from({ length: 20 }, () => new Uint8Array(1))
      expect(yield* f.readv(many, 13)).toBe(20)
      expect(Buffer.concat(many).toString()).toBe("abcdefghijklmnopqrst")
      yield* f.close
      yield* f.close // idempotent
      expect(readFileSync(path, "utf8")).toBe("0123AB6789xyzabcdefghijklmnopqrst")
      const closed = yield* Effect.flip(f.read(new Uint8Array(1), 0))
      expect(closed.reason).toBe("BadResource")
    })))

  it.live("appends with flag a", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "log")
      writeFileSync(path, "one\n")
      yield* Effect.scoped(Effect.flatMap(File.open(path, { flags: "a" }), (f) => f.writeAll(text("two\n"))))
      expect(readFileSync(path, "utf8")).toBe("one\ntwo\n")
    })))

  it.live("64 MiB write + read round trip is byte-exact", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "big")
      const data = randomBytes(64 * 1024 * 1024)
      const f = yield* File.open(path, { flags: "w+" })
      yield* f.writeAll(data, 0)
      const back = Buffer.alloc(data.length)
      yield* f.readFully(back, 0)
      expect(back.equals(data)).toBe(true)
      const info = yield* f.stat
      expect(info.size).toBe(BigInt(data.length))
    })), 120_000)

  it.live("stat: size and kind, of a path and of an open file", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "s")
      writeFileSync(path, "12345")
      const info = yield* File.stat(path)
      expect(info.type).toBe("File")
      expect(info.size).toBe(5n)
      expect(info.mode & 0o777).toBe(statSync(path).mode & 0o777)
      expect(info.ino._tag === "Some" && info.ino.value).toBe(statSync(path).ino)
      expect(info.mtime._tag === "Some" && Math.abs(info.mtime.value.getTime() - statSync(path).mtimeMs)).toBeLessThan(2)
      expect((yield* File.stat(dir)).type).toBe("Directory")
      const f = yield* File.open(path, { flags: "r+" })
      expect((yield* f.stat).size).toBe(5n)
      yield* f.allocate(4096)
      expect((yield* f.stat).size).toBe(4096n)
      yield* f.truncate(3)
      expect((yield* f.stat).size).toBe(3n)
      yield* f.truncate()
      expect(statSync(path).size).toBe(0)
    })))

  it.live("rename, remove, makeDirectory", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const a = join(dir, "a"), b = join(dir, "b"), sub = join(dir, "sub")
      writeFileSync(a, "x")
      yield* File.rename(a, b)
      expect(existsSync(a)).toBe(false)
      expect(readFileSync(b, "utf8")).toBe("x")
      yield* File.remove(b)
      expect(existsSync(b)).toBe(false)
      yield* File.makeDirectory(sub)
      expect((yield* File.stat(sub)).type).toBe("Directory")
      const notEmpty = yield* Effect.flip(File.remove(sub))
      expect(notEmpty.reason).toBe("BadResource") // EISDIR: unlink of a directory
      yield* File.remove(sub, { directory: true })
      expect(existsSync(sub)).toBe(false)
      const again = yield* Effect.flip(File.makeDirectory(dir))
      expect(again.reason).toBe("AlreadyExists")
    })))

  it.live("errors: ENOENT is NotFound with the path, EEXIST with wx is AlreadyExists", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = join(dir, "nope")
      const e1 = yield* Effect.flip(File.open(missing))
      expect(e1._tag).toBe("SystemError")
      expect(e1.reason).toBe("NotFound")
      expect(e1.module).toBe("FileSystem")
      expect(e1.method).toBe("open")
      expect(e1._tag === "SystemError" && e1.pathOrDescriptor).toBe(missing)
      expect(e1.message).toContain("ENOENT")
      expect((yield* Effect.flip(File.stat(missing))).reason).toBe("NotFound")
      expect((yield* Effect.flip(File.remove(missing))).reason).toBe("NotFound")
      expect((yield* Effect.flip(File.rename(missing, join(dir, "x")))).reason).toBe("NotFound")
      const path = join(dir, "exists")
      writeFileSync(path, "")
      const e2 = yield* Effect.flip(File.open(path, { flags: "wx" }))
      expect(e2.reason).toBe("AlreadyExists")
      expect(e2._tag === "SystemError" && e2.pathOrDescriptor).toBe(path)
      // A read-only file refuses writes (EBADF → Unknown, as in @effect/platform-node).
      const ro = yield* File.open(path)
      expect((yield* Effect.flip(ro.write(text("x"), 0))).reason).toBe("Unknown")
      expect((yield* Effect.flip(File.open(dir, { flags: "w" }))).reason).toBe("BadResource") // EISDIR
    })))

  it.live("interrupting a pending read cancels it and leaves the op table empty", () =>
    withRing(Effect.gen(function*() {
      const fifo = yield* tempFifo
      const f = yield* File.open(fifo, { flags: "r+" }) // O_RDWR: does not wait for a writer
      const reader = yield* Effect.fork(f.read(new Uint8Array(16)))
      yield* Effect.sleep("100 millis")
      expect((yield* Ringline.stats).inFlight).toBeGreaterThanOrEqual(1)
      const exit = yield* Fiber.interrupt(reader)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect((yield* Ringline.stats).inFlight).toBe(0)
      // The file still works after the cancelled read.
      expect(yield* f.write(text("hi"))).toBe(2)
      const buf = new Uint8Array(16)
      expect(yield* f.read(buf)).toBe(2)
    })))

  it.live("a read's buffer transferred (detached) while the read waits: the kernel writes into memory still held, never freed memory", () =>
    withRing(Effect.gen(function*() {
      const path = yield* tempFifo
      const f = yield* File.open(path, { flags: "r+" })
      const SIZE = 1024 * 1024
      const into = new Uint8Array(SIZE)
      const reader = yield* Effect.fork(f.read(into))
      yield* Effect.sleep("50 millis")
      // The caller moves the memory away and drops it; memory allocated then may be where the
      // read's buffer was, unless the read holds it.
      const junk = detachAndReuse(into, 16)
      expect(into.byteLength).toBe(0)
      const w = openSync(path, "w")
      writeSync(w, new Uint8Array(4096).fill(0x41))
      closeSync(w)
      expect(yield* Fiber.join(reader)).toBe(4096)
      // Before the pin the kernel wrote these bytes into whatever had the freed memory.
      for (const j of junk) expect(j.every((b) => b === 0x42)).toBe(true)
    })))

  it.live("interrupting an open that blocks (a FIFO without writer) completes and leaks nothing", () =>
    withRing(Effect.gen(function*() {
      const fifo = yield* tempFifo
      // O_TRUNC sends the open to io-wq, where a FIFO open waits for a reader.
      const opener = yield* Effect.fork(Effect.scoped(File.open(fifo, { flags: "w" })))
      yield* Effect.sleep("100 millis")
      expect((yield* Ringline.stats).inFlight).toBeGreaterThanOrEqual(1)
      const exit = yield* Fiber.interrupt(opener).pipe(Effect.timeout("10 seconds"))
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect((yield* Ringline.stats).inFlight).toBe(0)
    })))

  it.live("opens interrupted at any point never leak a fixed-file slot", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "f")
      writeFileSync(path, "x")
      for (let i = 0; i < 300; i++) {
        const opener = yield* Effect.fork(Effect.scoped(Effect.zipRight(File.open(path), Effect.never)))
        for (let k = 0; k < i % 4; k++) yield* Effect.yieldNow()
        if (i % 5 === 0) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(opener)
      }
      expect((yield* Ringline.stats).inFlight).toBe(0)
      // The table has 4 slots: all of them are free again.
      const files = yield* Effect.all(Array.from({ length: 4 }, () => File.open(path)))
      expect(new Set(files.map((f) => f.fixedIndex)).size).toBe(4)
      const full = yield* Effect.flip(File.open(path))
      expect(full.message).toContain("ENFILE")
    }), { maxConnections: 4 }))

  it.live("close waits for in-flight ops; no fd leak after many scopes", () =>
    withRing(Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "many")
      writeFileSync(path, "abc")
      const before = fdCount()
      for (let i = 0; i < 200; i++) {
        yield* Effect.scoped(Effect.flatMap(File.open(path), (f) => f.readFully(new Uint8Array(3), 0)))
      }
      // Fixed files are not fds, and the stat's transient fd is closed again.
      yield* Effect.scoped(Effect.flatMap(File.open(path), (f) => f.stat))
      expect(fdCount()).toBe(before)
      // A close that races a pending read completes only after the read.
      const fifo = yield* tempFifo
      const f = yield* File.open(fifo, { flags: "r+" })
      const reader = yield* Effect.fork(f.read(new Uint8Array(4)))
      yield* Effect.sleep("50 millis")
      const closer = yield* Effect.fork(f.close)
      yield* Effect.sleep("50 millis")
      expect(closer.unsafePoll()).toBe(null)
      yield* Fiber.interrupt(reader)
      yield* Fiber.join(closer)
      expect((yield* Effect.flip(f.write(text("x")))).reason).toBe("BadResource")
    })))
})

/**
 * Property tests for storage (issue 9): paths, positions, sizes and byte arguments of File from the
 * whole input space, and reads / writes / opens interrupted at random points. Each case works or
 * fails with a typed error, never hangs, and leaves no op in flight and no fd open.
 * Run longer with RINGLINE_PROPERTY_RUNS=N.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Ringline, RinglineTesting } from "@ringline/core"
import { Cause, type Context, Effect, Exit, FastCheck as fc, Layer, Option, Scope } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { File, RinglineFileSystem } from "../src/index.js"

const RUNS = Math.max(1, Number(process.env.RINGLINE_PROPERTY_RUNS ?? "20"))
// The time limit grows with the case count (about a second per case on a loaded machine).
const opts = (factor = 1) => {
  const numRuns = Math.max(1, Math.round(RUNS * factor))
  return { timeout: 120_000 + numRuns * 1000, fastCheck: { numRuns } }
}
const CASES = new Map<string, number>()

let scope: Scope.CloseableScope
let context: Context.Context<Ringline.Ringline>
let dir = ""
let fdsBefore = 0
beforeAll(async () => {
  fdsBefore = RinglineTesting.openFds()
  dir = mkdtempSync(join(tmpdir(), "rl-sp-"))
  scope = await Effect.runPromise(Scope.make())
  context = await Effect.runPromise(Layer.buildWithScope(Ringline.layer(), scope))
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  rmSync(dir, { recursive: true, force: true })
  const total = [...CASES.values()].reduce((a, b) => a + b, 0)
  console.log(`PROPERTY CASES ${total}: ${[...CASES].map(([k, v]) => `${k}=${v}`).join(" ")}`)
  expect(RinglineTesting.openFds()).toBeLessThanOrEqual(fdsBefore)
})

const classify = <A, E>(exit: Exit.Exit<A, E>): { outcome: "success" | "failure" | "defect"; error?: any } => {
  if (Exit.isSuccess(exit)) return { outcome: "success" }
  const f = Cause.failureOption(exit.cause)
  if (Option.isSome(f)) return { outcome: "failure", error: f.value }
  return { outcome: "defect", error: Option.getOrElse(Cause.dieOption(exit.cause), () => Cause.pretty(exit.cause)) }
}

/** One case on the shared ring: bounded in time; afterwards no op in flight and no new fd. */
const oneCase = <A, E>(name: string, body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>) =>
  Effect.gen(function*() {
    CASES.set(name, (CASES.get(name) ?? 0) + 1)
    const fds = RinglineTesting.openFds()
    const exit = yield* Effect.exit(Effect.scoped(body).pipe(Effect.timeout(10_000)))
    const r = classify(exit)
    if (r.outcome === "failure" && r.error?._tag === "TimeoutException") throw new Error(`${name}: hung`)
    const { inFlight } = yield* Ringline.stats
    expect(inFlight).toBe(0)
    expect(RinglineTesting.openFds()).toBeLessThanOrEqual(fds)
    return r
  }).pipe(Effect.provide(context))

const withNul = (base: fc.Arbitrary<string>) =>
  fc.tuple(base, fc.nat()).map(([s, at]) => s.slice(0, at % (s.length + 1)) + "\0" + s.slice(at % (s.length + 1)))

const anyName = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 30 }) },
  { weight: 2, arbitrary: withNul(fc.string({ maxLength: 10 })) },
  { weight: 1, arbitrary: fc.string({ minLength: 250, maxLength: 5000 }) }
)

const anyOffset: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 100_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: -100, max: -1 }) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, 0.5, NaN, Infinity, 2 ** 60, "3", null) }
)

const anyBuffer: fc.Arbitrary<{ value: unknown; length: number | undefined }> = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map((n) => ({ value: new Uint8Array(n), length: n })),
  fc.integer({ min: 0, max: 1000 }).map((n) => ({ value: new Int32Array(n), length: n * 4 })),
  fc.integer({ min: 2, max: 100 }).map((n) => ({ value: new DataView(new ArrayBuffer(n), 1, n - 1), length: n - 1 })),
  fc.constantFrom<unknown>("abc", 7, null, {}, [1]).map((value) => ({ value, length: undefined }))
)

const validOffset = (v: unknown) => v === undefined || (typeof v === "number" && Number.isSafeInteger(v) && v >= 0)

describe("properties: File arguments", () => {
  it.live.prop("open / stat / remove / rename / makeDirectory with any name: typed SystemError; NUL creates nothing", {
    name: anyName,
    other: anyName,
    flags: fc.constantFrom("r", "w", "w+", "a", "wx", "bogus")
  }, ({ flags, name, other }) =>
    Effect.gen(function*() {
      const path = join(dir, name)
      const to = join(dir, other)
      const r = yield* oneCase("File paths", Effect.gen(function*() {
        yield* Effect.exit(File.stat(path))
        yield* Effect.exit(File.makeDirectory(path + "-d"))
        const f = yield* File.open(path, { flags: flags as any })
        void f
        yield* File.rename(path, to)
        yield* File.remove(to)
      }))
      if (r.outcome === "failure") {
        expect(r.error._tag).toBe("SystemError")
        if (path.includes("\0")) expect(r.error.reason).toBe("InvalidData")
      } else {
        expect(r.outcome).toBe("success")
      }
      // A NUL never reached the kernel: no truncated name exists.
      if (path.includes("\0")) {
        const cut = path.slice(0, path.indexOf("\0"))
        expect(yield* Effect.exit(File.stat(cut)).pipe(Effect.map(Exit.isSuccess), Effect.provide(context))).toBe(resolve(cut) === resolve(dir))
      }
      rmSync(dir, { recursive: true, force: true })
      dir = mkdtempSync(join(tmpdir(), "rl-sp-"))
    }), opts())

  it.live.prop("read / write / readv / writev / truncate / allocate with any buffer, position and length", {
    op: fc.constantFrom("read", "write", "readv", "writev", "readFully", "writeAll", "truncate", "allocate"),
    buffer: anyBuffer,
    position: anyOffset
  }, ({ buffer, op, position }) =>
    Effect.gen(function*() {
      const path = join(dir, "data")
      writeFileSync(path, Buffer.alloc(5000, 1))
      const r = yield* oneCase("File handle args", Effect.gen(function*() {
        const f = yield* File.open(path, { flags: "r+" })
        const b = buffer.value as Uint8Array
        const pos = position as number | undefined
        switch (op) {
          case "read": return yield* f.read(b, pos)
          case "write": return yield* f.write(b, pos)
          case "readv": return yield* f.readv([b], pos)
          case "writev": return yield* f.writev([b], pos)
          case "readFully": return yield* f.readFully(b, pos)
          case "writeAll": return yield* f.writeAll(b, pos)
          case "truncate": return yield* f.truncate(pos)
          default: return yield* f.allocate(pos as number, 0)
        }
      }))
      const usesBuffer = op !== "truncate" && op !== "allocate"
      if (usesBuffer && buffer.length === undefined) {
        expect(r.outcome).toBe("defect")
        expect(r.error).toBeInstanceOf(TypeError)
      } else if (r.outcome === "failure") {
        expect(r.error._tag).toBe("SystemError")
        const bad = op === "allocate" ? !validOffset(position) || position === undefined : !validOffset(position)
        if (bad) expect(r.error.reason).toBe("InvalidData")
      } else {
        expect(r.outcome).toBe("success")
      }
    }), opts())
})

describe("properties: interrupted storage ops", () => {
  it.live.prop("an open, read or write interrupted at a random point leaves nothing in flight; the file stays consistent", {
    op: fc.constantFrom("open", "read", "write", "readFully", "writeAll", "stat", "readFile"),
    size: fc.integer({ min: 0, max: 2_000_000 }),
    delayUs: fc.integer({ min: 0, max: 2000 })
  }, ({ delayUs, op, size }) =>
    Effect.gen(function*() {
      const path = join(dir, "big")
      writeFileSync(path, Buffer.alloc(Math.max(size, 1), 7))
      const r = yield* oneCase("File interrupted", Effect.gen(function*() {
        const f = yield* File.open(path, { flags: "r+" })
        const buf = new Uint8Array(size)
        const run = op === "open"
          ? Effect.scoped(File.open(path, { flags: "r" }))
          : op === "read"
          ? f.read(buf, 0)
          : op === "write"
          ? f.write(buf.fill(9), 0)
          : op === "readFully"
          ? f.readFully(buf, 0)
          : op === "writeAll"
          ? f.writeAll(buf.fill(9), 0)
          : op === "stat"
          ? File.stat(path)
          : Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(path)).pipe(Effect.provide(RinglineFileSystem.layer))
        const fiber = yield* Effect.fork(run as Effect.Effect<unknown, unknown, Ringline.Ringline>)
        yield* Effect.sleep(delayUs / 1000)
        yield* fiber.interruptAsFork(fiber.id())
        yield* fiber.await
        // The handle still works after an interrupted op on it.
        const one = new Uint8Array(1)
        yield* f.read(one, 0)
        expect([7, 9]).toContain(one[0])
      }))
      expect(r.outcome).toBe("success")
      // Only whole runs of 7s and 9s: no byte from anywhere else.
      const content = readFileSync(path)
      expect(content.every((b) => b === 7 || b === 9)).toBe(true)
    }), opts())
})

describe("properties: FileSystem errors agree with NodeFileSystem", () => {
  it.live.prop("stat / readFile / remove / makeDirectory / rename of any name: same outcome, tag and reason", {
    name: anyName,
    method: fc.constantFrom("stat", "readFile", "remove", "makeDirectory", "rename", "exists", "writeFile")
  }, ({ method, name }) =>
    Effect.gen(function*() {
      CASES.set("FileSystem vs Node", (CASES.get("FileSystem vs Node") ?? 0) + 1)
      const run = (fsLayer: Layer.Layer<FileSystem.FileSystem>, base: string) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          writeFileSync(join(base, "present"), "x")
          const path = join(base, name)
          const call = method === "stat"
            ? fs.stat(path)
            : method === "readFile"
            ? fs.readFile(path)
            : method === "remove"
            ? fs.remove(path)
            : method === "makeDirectory"
            ? fs.makeDirectory(path)
            : method === "rename"
            ? fs.rename(join(base, "present"), path)
            : method === "exists"
            ? fs.exists(path)
            : fs.writeFile(path, new Uint8Array([1]))
          const r = classify(yield* Effect.exit(call))
          return r.outcome === "failure"
            ? { outcome: r.outcome, tag: r.error._tag, reason: r.error.reason, method: r.error.method }
            : { outcome: r.outcome, value: method === "exists" ? Exit.succeed(0) : undefined }
        }).pipe(Effect.provide(fsLayer))
      const a = mkdtempSync(join(tmpdir(), "rl-n-")), b = mkdtempSync(join(tmpdir(), "rl-r-"))
      try {
        const node = yield* run(NodeFileSystem.layer, a)
        const ring = yield* run(Layer.provide(RinglineFileSystem.layer, Layer.succeedContext(context)), b)
        expect(ring).toEqual(node)
      } finally {
        rmSync(a, { recursive: true, force: true })
        rmSync(b, { recursive: true, force: true })
      }
    }), opts())
})

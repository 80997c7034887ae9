import { afterAll, describe, expect, it } from "@effect/vitest"
import { Ring, Ringline, RinglineTest } from "@ringline/core"
import { Cause, Effect, Exit, Fiber } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DirectFile from "../src/DirectFile.js"
import * as Direct from "../src/internal/direct.js"
import { withRing } from "./helpers.js"

const EXT4 = 0xef53
const XFS = 0x58465342
const BTRFS = 0x9123683e
const TMPFS = 0x01021994

/** A directory on a block-device filesystem (ext4/xfs/btrfs), or why there is none. */
const diskDir = (): { dir: string } | { skip: string } => {
  const candidates = [process.env.RINGLINE_DIRECT_DIR, os.tmpdir(), "/var/tmp", process.cwd()]
  const seen: Array<string> = []
  for (const c of candidates) {
    if (c === undefined) continue
    try {
      const t = fs.statfsSync(c).type
      if (t === EXT4 || t === XFS || t === BTRFS) {
        const dir = fs.mkdtempSync(path.join(c, "ringline-direct-"))
        return { dir }
      }
      seen.push(`${c} (fs type 0x${t.toString(16)})`)
    } catch (e) {
      seen.push(`${c} (${(e as Error).message})`)
    }
  }
  return { skip: `no ext4/xfs/btrfs directory for O_DIRECT tests; tried ${seen.join(", ")}; set RINGLINE_DIRECT_DIR` }
}

const disk = diskDir()
const onDisk = "dir" in disk
if (!onDisk) console.log(`SKIP ${disk.skip}`)

const pattern = (n: number, seed: number) => {
  const b = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

describe("DirectFile (O_DIRECT + registered buffers)", () => {
  it.live.skipIf(!onDisk)("write -> fsync -> read back byte for byte, across pool chunks", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "data.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 64 * 1024, chunks: 4 } })
      expect(f.alignment.offset).toBeGreaterThan(0)
      expect(f.alignment.memory).toBeGreaterThan(0)
      console.log(`direct alignment of ${file}: offset ${f.alignment.offset}, memory ${f.alignment.memory}`)
      // 300 KiB: spans several 64 KiB chunks, the last one partial.
      const data = pattern(300 * 1024, 7)
      const at = f.alignment.offset * 3
      expect(yield* f.write(at, data)).toBe(data.length)
      yield* f.sync
      const back = yield* f.read(at, data.length)
      expect(back.length).toBe(data.length)
      expect(Buffer.compare(Buffer.from(back), Buffer.from(data))).toBe(0)
      // Node's own view of the file agrees (bytes went to the file, not a private buffer).
      const onFile = fs.readFileSync(file)
      expect(onFile.length).toBe(at + data.length)
      expect(Buffer.compare(onFile.subarray(at), Buffer.from(data))).toBe(0)
      // Reading past EOF is short, not an error.
      const tail = yield* f.read(at + data.length - f.alignment.offset, f.alignment.offset * 4)
      expect(tail.length).toBe(f.alignment.offset)
      yield* f.dataSync
      // Concurrent writes contend for the 4 pool chunks; all land.
      const blocks = Array.from({ length: 12 }, (_, i) => pattern(64 * 1024, 100 + i))
      yield* Effect.forEach(blocks, (b, i) => f.write(i * 64 * 1024, b), { concurrency: "unbounded" })
      yield* f.sync
      const all = yield* f.read(0, 12 * 64 * 1024)
      for (let i = 0; i < 12; i++) {
        expect(Buffer.compare(Buffer.from(all.subarray(i * 65536, (i + 1) * 65536)), Buffer.from(blocks[i]!))).toBe(0)
      }
    })))

  it.live.skipIf(!onDisk)("misaligned offset or length fails with AlignmentError naming the rule", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "align.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true })
      const n = f.alignment.offset
      const badOffset = yield* Effect.flip(f.write(1, new Uint8Array(n)))
      expect(badOffset._tag).toBe("AlignmentError")
      if (badOffset._tag !== "AlignmentError") return
      expect(badOffset.field).toBe("offset")
      expect(badOffset.required).toBe(n)
      expect(badOffset.message).toContain(`must be multiples of ${n}`)
      const badLength = yield* Effect.flip(f.read(0, n + 100))
      expect(badLength._tag).toBe("AlignmentError")
      if (badLength._tag === "AlignmentError") expect(badLength.field).toBe("length")
      const badRead = yield* Effect.flip(f.read(n / 2, n))
      expect(badRead._tag).toBe("AlignmentError")
    })))

  it.live.skipIf(!onDisk)("a missing file is a typed DirectFileError (ENOENT)", () =>
    withRing(Effect.gen(function*() {
      const e = yield* Effect.flip(DirectFile.open(path.join((disk as { dir: string }).dir, "nope", "x")))
      expect(e._tag).toBe("DirectFileError")
      if (e._tag === "DirectFileError") expect(e.code).toBe("ENOENT")
    })))

  it.live.skipIf(!onDisk)("interrupting reads completes after their CQEs and frees every chunk", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "intr.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 64 * 1024, chunks: 2 } })
      yield* f.write(0, pattern(256 * 1024, 3))
      const d = yield* Ring.current
      const pool = Direct.poolFor(d)
      expect(pool.chunks).toBe(2)
      const exit = yield* Effect.forEach(Array.from({ length: 8 }), () => f.read(0, 256 * 1024), { concurrency: "unbounded" })
        .pipe(Effect.timeout("1 millis"), Effect.exit)
      // Normally a timeout (the reads were interrupted mid-flight); success is legal on a fast disk.
      console.log(`interrupted reads: ${Exit.isFailure(exit) ? "timed out and were interrupted" : "finished first"}`)
      // Interrupted reads returned only after their CQEs, and gave their chunks back.
      expect(pool.available).toBe(2)
      // A full read still works.
      const back = yield* f.read(0, 256 * 1024)
      expect(back.length).toBe(256 * 1024)
    })))

  it.live.skipIf(!onDisk)("readInto: one-chunk reads, reads larger than a chunk, more readers than chunks, EOF", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "into.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 8192, chunks: 2 } })
      const n = f.alignment.offset
      const data = pattern(64 * 1024, 11)
      yield* f.write(0, data)
      yield* f.sync
      // Fits one chunk: a single READ_FIXED. `into` needs no alignment (it is a copy target).
      const odd = new Uint8Array(4096 + 1).subarray(1)
      expect(yield* f.readInto(8192, odd)).toBe(4096)
      expect(Buffer.compare(Buffer.from(odd), Buffer.from(data.subarray(8192, 8192 + 4096)))).toBe(0)
      // Larger than a chunk: chunk by chunk.
      const big = new Uint8Array(40 * 1024)
      expect(yield* f.readInto(n, big)).toBe(big.length)
      expect(Buffer.compare(Buffer.from(big), Buffer.from(data.subarray(n, n + big.length)))).toBe(0)
      // 16 concurrent one-chunk readers share 2 chunks: the rest wait for a free one.
      const outs = Array.from({ length: 16 }, () => new Uint8Array(4096))
      const got = yield* Effect.forEach(outs, (o, i) => f.readInto(i * 4096, o), { concurrency: "unbounded" })
      expect(got).toEqual(outs.map(() => 4096))
      outs.forEach((o, i) => expect(Buffer.compare(Buffer.from(o), Buffer.from(data.subarray(i * 4096, (i + 1) * 4096)))).toBe(0))
      // At end of file the count is short.
      const tail = new Uint8Array(4 * n)
      expect(yield* f.readInto(data.length - n, tail)).toBe(n)
      const bad = yield* Effect.flip(f.readInto(0, new Uint8Array(n + 1)))
      expect(bad._tag).toBe("AlignmentError")
      const pool = Direct.poolFor(yield* Ring.current)
      expect(pool.available).toBe(2)
    })))

  it.live.skipIf(!onDisk)("readInto at queue depth 32: the woken fibers' next reads go out EFFECT_SUBMIT_BATCH (8) per submit", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "batch.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 32 } })
      const data = pattern(1024 * 1024, 17)
      yield* f.write(0, data)
      yield* f.sync
      // Each explicit submit of device reads is an io_uring_enter with a device notification
      // (a VM exit on a virtual machine): count them on this ring.
      const ring = yield* Ring.current
      const submitNow = ring.submitNow
      let submits = 0
      Object.defineProperty(ring, "submitNow", { configurable: true, value: () => (submits++, submitNow.call(ring)) })
      const rounds = 20
      const reads = yield* Effect.ensuring(
        Effect.forEach(Array.from({ length: 32 }), (_, loop) => {
          const into = new Uint8Array(4096)
          return Effect.forEach(Array.from({ length: rounds }), (_, r) => {
            const at = ((loop * rounds + r) * 7 % 256) * 4096
            return Effect.map(f.readInto(at, into), (n) => {
              expect(n).toBe(4096)
              expect(Buffer.compare(Buffer.from(into), Buffer.from(data.subarray(at, at + 4096)))).toBe(0)
              return n
            })
          })
        }, { concurrency: 32 }),
        Effect.sync(() => delete (ring as { submitNow?: unknown }).submitNow)
      )
      expect(reads.flat().length).toBe(32 * rounds)
      console.log(`readInto x ${32 * rounds} at QD 32: ${submits} explicit submits`)
      // Every 8 staged reads: at most 80 here (a submit needs 8 staged; what is left at the end
      // of a completion batch goes out with the addon's next enter, not counted). Every 4 would
      // be about 160, every 16 at most 40.
      const batch = Direct.EFFECT_SUBMIT_BATCH
      expect(batch).toBe(8)
      expect(submits).toBeLessThanOrEqual((32 * rounds) / batch)
      expect(submits).toBeGreaterThan((32 * rounds) / 16)
    })))

  it.live.skipIf(!onDisk)("one read Effect run several times at once: each run takes and returns its own chunk", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "rerun.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 4 } })
      const data = pattern(64 * 1024, 13)
      yield* f.write(0, data)
      yield* f.sync
      const pool = Direct.poolFor(yield* Ring.current)
      // An Effect is a description: running the same value twice at once must not share the
      // per-run state (the chunk) between the runs.
      const outs = [new Uint8Array(4096), new Uint8Array(4096), new Uint8Array(4096)]
      const reads = outs.map((o, i) => f.readInto((i + 1) * 4096, o))
      for (let round = 0; round < 3; round++) {
        yield* Effect.all([...reads, ...reads], { concurrency: "unbounded" })
        outs.forEach((o, i) => expect(Buffer.compare(Buffer.from(o), Buffer.from(data.subarray((i + 1) * 4096, (i + 2) * 4096)))).toBe(0))
        // Every chunk is back exactly once: taking them all yields 4 different chunks.
        const taken = [pool.tryTake(), pool.tryTake(), pool.tryTake(), pool.tryTake(), pool.tryTake()]
        expect(taken[4]).toBe(-1)
        expect(new Set(taken.slice(0, 4)).size).toBe(4)
        for (const c of taken.slice(0, 4)) pool.give(c)
      }
    })))

  it.live.skipIf(!onDisk)("interrupting one-chunk reads waits for their CQEs and returns their chunks", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "intr1.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 4 } })
      yield* f.write(0, pattern(1024 * 1024, 5))
      const pool = Direct.poolFor(yield* Ring.current)
      let sawInFlight = 0
      for (let round = 0; round < 20; round++) {
        const fiber = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 32 }), (_, i) => f.read(((i * 37 + round) % 256) * 4096, 4096), { concurrency: "unbounded" })
        )
        for (let i = 0; i < 100 && (yield* Ringline.stats).inFlight === 0; i++) yield* Effect.yieldNow()
        // Let a few of them reach the kernel (one loop turn) before interrupting.
        if (round % 2 === 1) yield* Effect.sleep("0 millis")
        if ((yield* Ringline.stats).inFlight > 0) sawInFlight++
        yield* Fiber.interrupt(fiber)
        // Every interrupted read finished its op before the interruption completed.
        expect(pool.available).toBe(4)
        expect((yield* Ringline.stats).inFlight).toBe(0)
      }
      // The interruptions really met reads in flight.
      expect(sawInFlight).toBeGreaterThan(0)
    })))

  it.live.skipIf(!onDisk)("forEachRead: every block once, in completion order, chunks shared with other readers", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "many.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 4 } })
      const blocks = 64
      const data = pattern(blocks * 4096, 21)
      yield* f.write(0, data)
      yield* f.sync
      const pool = Direct.poolFor(yield* Ring.current)
      // Shuffled offsets, more readers wanted than the pool has chunks, and per-read Effects
      // competing for the same chunks at the same time.
      const order = Array.from({ length: blocks }, (_, i) => i).sort((a, b) => ((a * 7919) % 61) - ((b * 7919) % 61))
      const seen = new Map<number, Buffer>()
      const [n, others] = yield* Effect.all([
        f.forEachRead(order.map((i) => i * 4096), { length: 4096, concurrency: 8 }, (bytes, offset) => {
          expect(seen.has(offset)).toBe(false)
          seen.set(offset, Buffer.from(bytes)) // a copy: the view is the pool chunk's
        }),
        Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (i) => f.read(i * 4096, 4096), { concurrency: "unbounded" })
      ], { concurrency: 2 })
      expect(n).toBe(blocks)
      for (let i = 0; i < blocks; i++) {
        expect(Buffer.compare(seen.get(i * 4096)!, Buffer.from(data.subarray(i * 4096, (i + 1) * 4096)))).toBe(0)
      }
      others.forEach((b, i) => expect(Buffer.compare(Buffer.from(b), Buffer.from(data.subarray(i * 4096, (i + 1) * 4096)))).toBe(0))
      expect(pool.available).toBe(4)
      // Past the end of the file the bytes are short (here: empty).
      const lengths: Array<number> = []
      yield* f.forEachRead([blocks * 4096, (blocks - 1) * 4096], { length: 4096 }, (b, o) => void (lengths[o === blocks * 4096 ? 0 : 1] = b.length))
      expect(lengths).toEqual([0, 4096])
    })))

  it.live.skipIf(!onDisk)("forEachRead: a misaligned offset fails typed, a throwing callback dies, both after the reads in flight", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "many-bad.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 8 } })
      yield* f.write(0, pattern(64 * 4096, 3))
      const pool = Direct.poolFor(yield* Ring.current)
      let calls = 0
      const bad = yield* Effect.flip(f.forEachRead([0, 4096, 8192, 100, 12288], { length: 4096, concurrency: 2 }, () => void calls++))
      expect(bad._tag).toBe("AlignmentError")
      if (bad._tag === "AlignmentError") expect(bad.field).toBe("offset")
      expect(calls).toBeLessThanOrEqual(3)
      expect(pool.available).toBe(8)
      expect((yield* Ringline.stats).inFlight).toBe(0)
      const died = yield* Effect.exit(f.forEachRead(Array.from({ length: 64 }, (_, i) => i * 4096), { length: 4096, concurrency: 8 }, (_b, o) => {
        if (o === 10 * 4096) throw new Error("callback failed")
      }))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      expect(pool.available).toBe(8)
      expect((yield* Ringline.stats).inFlight).toBe(0)
      const badLength = yield* Effect.flip(f.forEachRead([0], { length: 100 }, () => {}))
      expect(badLength._tag).toBe("AlignmentError")
    })))

  it.live.skipIf(!onDisk)("forEachRead: an offsets iterator answering garbage ends the run with a defect, never an uncaught throw (issue 9, item 1)", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "many-garbage.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 8 } })
      yield* f.write(0, pattern(16 * 4096, 5))
      const pool = Direct.poolFor(yield* Ring.current)
      const uncaught: Array<unknown> = []
      const onError = (e: unknown) => void uncaught.push(e)
      process.on("uncaughtException", onError)
      // The answers come from the completion handler's refill: after a few good offsets.
      const answers: Array<unknown> = [undefined, null, 42, { done: false, value: "x" }, { done: false, value: undefined }]
      for (const bad of answers) {
        let i = 0
        const offsets = {
          [Symbol.iterator]: () => ({ next: () => (i < 4 ? { done: false, value: (i++) * 4096 } : bad) })
        } as unknown as Iterable<number>
        const exit = yield* Effect.exit(f.forEachRead(offsets, { length: 4096, concurrency: 2 }, () => {}))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(bad)).toBe(true)
        expect(pool.available).toBe(8)
        expect((yield* Ringline.stats).inFlight).toBe(0)
      }
      process.off("uncaughtException", onError)
      expect(uncaught).toEqual([])
    })))

  it.live.skipIf(!onDisk)("forEachRead: interrupting an endless run cancels its reads and completes after their CQEs", () =>
    withRing(Effect.gen(function*() {
      const file = path.join((disk as { dir: string }).dir, "many-intr.bin")
      const f = yield* DirectFile.open(file, { create: true, truncate: true, pool: { chunkSize: 4096, chunks: 16 } })
      yield* f.write(0, pattern(256 * 4096, 9))
      const pool = Direct.poolFor(yield* Ring.current)
      function* endless() {
        for (let i = 0; ; i++) yield ((i * 37) % 256) * 4096
      }
      let reads = 0
      let afterInterrupt = 0
      let interrupted = false
      const fiber = yield* Effect.fork(f.forEachRead(endless(), { length: 4096, concurrency: 16 }, () => {
        reads++
        if (interrupted) afterInterrupt++
      }))
      while (reads < 200) yield* Effect.sleep("1 millis")
      expect((yield* Ringline.stats).inFlight).toBeGreaterThan(0)
      interrupted = true
      yield* Fiber.interrupt(fiber)
      // Once the interruption returned: nothing in flight, every chunk back, no callback since.
      expect((yield* Ringline.stats).inFlight).toBe(0)
      expect(pool.available).toBe(16)
      expect(afterInterrupt).toBe(0)
    })))

  it.live("tmpfs (no real direct I/O) is refused with DirectIoUnsupported", () =>
    Effect.gen(function*() {
      const shm = "/dev/shm"
      let isTmpfs = false
      try {
        isTmpfs = fs.statfsSync(shm).type === TMPFS
      } catch {
        // no /dev/shm
      }
      if (!isTmpfs) {
        console.log("SKIP /dev/shm is not a tmpfs here")
        return
      }
      const dir = fs.mkdtempSync(path.join(shm, "ringline-direct-"))
      try {
        const e = yield* withRing(Effect.flip(DirectFile.open(path.join(dir, "x"), { create: true })))
        expect(e._tag).toBe("DirectIoUnsupported")
        if (e._tag === "DirectIoUnsupported") {
          // Kernels before 6.6 refuse O_DIRECT on tmpfs at open; newer ones accept it but report
          // no direct I/O alignment.
          expect(["OpenRefused", "NoAlignment"]).toContain(e.reason)
          expect(e.message).toContain("ext4 or xfs")
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))
})

afterAll(() => {
  if (onDisk) fs.rmSync((disk as { dir: string }).dir, { recursive: true, force: true })
})

describe("DirectFile on RinglineTest (no ring)", () => {
  it.scoped("open fails with DirectIoUnsupported NoRing saying the test Layer has no ring", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(DirectFile.open(path.join(os.tmpdir(), "ringline-no-ring")))
      expect(err._tag).toBe("DirectIoUnsupported")
      expect(err._tag === "DirectIoUnsupported" ? err.reason : "").toBe("NoRing")
      expect(err.message).toContain("is not available in the test Layer")
    }).pipe(Effect.provide(RinglineTest.layer())))
})

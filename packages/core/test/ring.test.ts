/**
 * The public low-level `Ring` module: real ops through the current ring (NOP, READ of a file,
 * OPENAT), interruption that completes only after the op's CQE and its cancel's, typed errors,
 * the opcode probe and the registered buffer pool.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { constants } from "node:os"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { load } from "../src/internal/native.js"
import { Ring, Ringline } from "../src/index.js"
import { withRing } from "./helpers.js"

/** pread(2) as a Ring.Operation (the README's example), recording every CQE result in `seen`. */
class Pread extends Ring.Operation<number, Ring.RingOpError> {
  constructor(
    readonly ring: Ring.Ring,
    readonly fd: number,
    readonly into: Uint8Array,
    readonly at: number,
    readonly seen: Array<number>
  ) {
    super()
  }
  prepare(slot: number) {
    Ring.prepRead(this.ring, slot, this.fd, Ring.addressOf(this.into), this.into.byteLength, this.at)
    return this.into
  }
  finish(res: number) {
    return res < 0 ? Effect.fail(Ring.opError(this.ring, "read", res)) : Effect.succeed(res)
  }
  override always(res: number) {
    this.seen.push(res)
  }
}

const tmp = (name: string) => join(fs.mkdtempSync(join(tmpdir(), "ringline-ring-")), name)
const AT_FDCWD = -100

describe("Ring (public low-level module)", () => {
  it.live("a NOP through the current ring completes with 0", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      expect(ring.supports(Ring.Op.NOP)).toBe(true)
      const res = yield* Ring.run(ring, "nop", (slot) => {
        Ring.prepNop(ring, slot)
      })
      expect(res).toBe(0)
      expect(ring.inFlight).toBe(0)
    })))

  it.live("READ of a real file: the bytes land in the pinned buffer, at the given offset", () =>
    withRing(Effect.gen(function*() {
      const path = tmp("data.bin")
      fs.writeFileSync(path, "0123456789abcdef")
      const fd = fs.openSync(path, "r")
      try {
        const ring = yield* Ring.current
        const into = new Uint8Array(6)
        const n = yield* Ring.run(ring, "read", (slot) => {
          Ring.prepRead(ring, slot, fd, Ring.addressOf(into), into.byteLength, 10)
          return into
        })
        expect(n).toBe(6)
        expect(Buffer.from(into).toString()).toBe("abcdef")
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.live("OPENAT into the fixed-file table, READ on the fixed slot, direct CLOSE", () =>
    withRing(Effect.gen(function*() {
      const path = tmp("fixed.txt")
      fs.writeFileSync(path, "through a fixed file")
      const ring = yield* Ring.current
      const name = Ring.cString(path)
      const index = yield* Ring.run(ring, "openat", (slot) => {
        Ring.prepOpenat(ring, slot, AT_FDCWD, Ring.addressOf(name), fs.constants.O_RDONLY, 0, Ring.FILE_INDEX_ALLOC)
        return name
      })
      const into = new Uint8Array(64)
      const n = yield* Ring.run(ring, "read", (slot) => {
        Ring.prepRead(ring, slot, index, Ring.addressOf(into), into.byteLength, 0, Ring.SqeFlag.FIXED_FILE)
        return into
      })
      expect(Buffer.from(into.subarray(0, n)).toString()).toBe("through a fixed file")
      yield* Ring.closeFixed(ring, index)
      // The slot is closed: a read on it now fails with EBADF.
      const gone = yield* Effect.flip(Ring.run(ring, "read", (slot) => {
        Ring.prepRead(ring, slot, index, Ring.addressOf(into), into.byteLength, 0, Ring.SqeFlag.FIXED_FILE)
        return into
      }))
      expect(gone.code).toBe("EBADF")
    })))

  it.live("interrupting a READ that waits (a FIFO with no data) completes after its CQE and its cancel's", () =>
    withRing(Effect.gen(function*() {
      const fifo = tmp("fifo")
      execFileSync("mkfifo", [fifo])
      // O_RDWR: opening does not wait for a writer, and the read never sees EOF.
      const fd = fs.openSync(fifo, fs.constants.O_RDWR)
      try {
        const ring = yield* Ring.current
        const baseline = ring.inFlight
        const into = new Uint8Array(16)
        let cqeRes: number | undefined
        const fiber = yield* Effect.fork(Ring.submit(ring, {
          prepare: (slot) => {
            Ring.prepRead(ring, slot, fd, Ring.addressOf(into), into.byteLength, Ring.CURRENT_POSITION)
            return into
          },
          finish: (res) => Effect.succeed(res),
          always: (res) => {
            cqeRes = res
          }
        }))
        // Submitted and waiting in the kernel.
        while (ring.inFlight === baseline) yield* Effect.sleep(1)
        yield* Effect.sleep(20)
        expect(cqeRes).toBeUndefined()
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        // By the time the interruption is over, the op's CQE (-ECANCELED) and the cancel's are in.
        expect(cqeRes).toBe(-constants.errno.ECANCELED)
        expect(ring.inFlight).toBe(baseline)
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.live("Ring.Operation: a READ as a class, one object per run (one Effect value run 8 times at once)", () =>
    withRing(Effect.gen(function*() {
      const path = tmp("op.bin")
      fs.writeFileSync(path, "0123456789abcdef")
      const fd = fs.openSync(path, "r")
      try {
        const ring = yield* Ring.current
        const seen: Array<number> = []
        const outs = Array.from({ length: 8 }, () => new Uint8Array(4))
        let next = 0
        // One Effect value; each run reads into the next buffer, at an offset of its own.
        const one = Effect.uninterruptibleMask((restore) => {
          const i = next++
          return Ring.awaitOperation(ring, new Pread(ring, fd, outs[i]!, i, seen), restore)
        })
        const got = yield* Effect.all(Array.from({ length: 8 }, () => one), { concurrency: "unbounded" })
        expect(got).toEqual([4, 4, 4, 4, 4, 4, 4, 4])
        outs.forEach((o, i) => expect(Buffer.from(o).toString()).toBe("0123456789abcdef".slice(i, i + 4)))
        expect(seen.sort()).toEqual([4, 4, 4, 4, 4, 4, 4, 4])
        expect(ring.inFlight).toBe(0)
        // A failed READ goes through finish as a typed error.
        const bad = yield* Effect.flip(Effect.uninterruptibleMask((restore) =>
          Ring.awaitOperation(ring, new Pread(ring, 1_000_000, new Uint8Array(4), 0, seen), restore)
        ))
        expect(bad).toMatchObject({ _tag: "RingOpError", code: "EBADF" })
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.live("Ring.Operation: interruption cancels and completes after both CQEs; an uninterruptible caller waits for the CQE", () =>
    withRing(Effect.gen(function*() {
      const fifo = tmp("opfifo")
      execFileSync("mkfifo", [fifo])
      const fd = fs.openSync(fifo, fs.constants.O_RDWR)
      try {
        const ring = yield* Ring.current
        const baseline = ring.inFlight
        const always: Array<number> = []
        const read = Effect.uninterruptibleMask((restore) =>
          Ring.awaitOperation(ring, new Pread(ring, fd, new Uint8Array(8), Ring.CURRENT_POSITION, always), restore)
        )
        const fiber = yield* Effect.fork(read)
        while (ring.inFlight === baseline) yield* Effect.sleep(1)
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(always).toEqual([-constants.errno.ECANCELED])
        expect(ring.inFlight).toBe(baseline)
        // Uninterruptible caller: the interruption waits until the op completes on its own.
        const held = yield* Effect.fork(Effect.uninterruptible(read))
        while (ring.inFlight === baseline) yield* Effect.sleep(1)
        const interrupting = yield* Effect.fork(Fiber.interrupt(held))
        yield* Effect.sleep(30)
        expect(interrupting.unsafePoll()).toBeNull()
        fs.writeSync(fd, "12345678")
        const heldExit = yield* Fiber.join(interrupting)
        expect(Exit.isSuccess(heldExit) || Exit.isInterrupted(heldExit)).toBe(true)
        expect(always).toEqual([-constants.errno.ECANCELED, 8])
        expect(ring.inFlight).toBe(baseline)
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.live("Ring.awaitOperation: an argument that is not a Ring.Operation is a defect naming it; nothing staged", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      const lookalike = { prepare: () => undefined, finish: () => Effect.succeed(0), always: () => undefined }
      for (const bad of [lookalike, null, 42, new Date()]) {
        const before = ring.inFlight
        const exit = yield* Effect.exit(
          Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, bad as any, restore))
        )
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        expect(defect).toBeInstanceOf(TypeError)
        expect(String((defect as Error).message)).toMatch(/Ring\.awaitOperation: operation must be an instance of a Ring\.Operation subclass/)
        expect(ring.inFlight).toBe(before)
      }
      // The ring still works afterwards.
      const seen: Array<number> = []
      const bad = yield* Effect.flip(Effect.uninterruptibleMask((restore) =>
        Ring.awaitOperation(ring, new Pread(ring, 1_000_000, new Uint8Array(4), 0, seen), restore)
      ))
      expect(bad).toMatchObject({ _tag: "RingOpError", code: "EBADF" })
      expect(seen).toEqual([-constants.errno.EBADF])
    })))

  it.live("Ring.Operation: a throw while staging is a defect after always(-EAGAIN); nothing stays in flight", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      const always: Array<number> = []
      class Throws extends Ring.Operation<number, never> {
        prepare(): void {
          throw new RangeError("no SQE for you")
        }
        finish(res: number) {
          return Effect.succeed(res)
        }
        override always(res: number) {
          always.push(res)
        }
      }
      const exit = yield* Effect.exit(Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, new Throws(), restore)))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(always).toEqual([-constants.errno.EAGAIN])
      expect(ring.inFlight).toBe(0)

      // Staged, then threw: the staged READ (on a FIFO nobody writes: it would wait forever)
      // becomes a NOP, whose CQE gives the slot back; `always` is not called twice.
      const fifo = tmp("throwfifo")
      execFileSync("mkfifo", [fifo])
      const fd = fs.openSync(fifo, fs.constants.O_RDWR)
      try {
        const into = new Uint8Array(8)
        class StagesThenThrows extends Throws {
          override prepare(slot?: number): void {
            Ring.prepRead(ring, slot!, fd, Ring.addressOf(into), into.byteLength, Ring.CURRENT_POSITION)
            throw new RangeError("after staging")
          }
        }
        const exit2 = yield* Effect.exit(Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, new StagesThenThrows(), restore)))
        expect(Exit.isFailure(exit2) && Cause.isDie(exit2.cause)).toBe(true)
        for (let i = 0; i < 200 && ring.inFlight > 0; i++) yield* Effect.sleep(5)
        expect(ring.inFlight).toBe(0)
        expect(always).toEqual([-constants.errno.EAGAIN, -constants.errno.EAGAIN])
      } finally {
        fs.closeSync(fd)
      }
    })))

  it.live("a failed op is a typed RingOpError; Ring.systemError maps errno as @effect/platform-node does", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      const into = new Uint8Array(8)
      const e = yield* Effect.flip(Ring.run(ring, "read", (slot) => {
        Ring.prepRead(ring, slot, 1_000_000, Ring.addressOf(into), 8, 0)
        return into
      }))
      expect(e._tag).toBe("RingOpError")
      expect(e).toMatchObject({ operation: "read", errno: constants.errno.EBADF, code: "EBADF" })
      expect(e.message).toBe("read failed: EBADF (errno 9)")

      const missing = join(tmpdir(), "ringline-ring-does-not-exist", "x")
      const name = Ring.cString(missing)
      const res = yield* Ring.submitRaw(ring, (slot) => {
        Ring.prepOpenat(ring, slot, AT_FDCWD, Ring.addressOf(name), 0, 0)
        return name
      })
      expect(res).toBe(-constants.errno.ENOENT)
      const se = Ring.systemError(ring, { res, module: "FileSystem", method: "open", syscall: "openat", pathOrDescriptor: missing })
      expect(se).toMatchObject({ _tag: "SystemError", reason: "NotFound", syscall: "openat", pathOrDescriptor: missing })
      expect(se.description).toContain("ENOENT")
    })))

  it.effect("Ring.current fails with RinglineUnavailable when the Ringline service has no ring", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Ring.current)
      expect(e._tag).toBe("RinglineUnavailable")
      expect(e.message).toContain("in-memory")
    }).pipe(Effect.provide(Layer.succeed(Ringline.Ringline, { mode: "in-memory" } as unknown as Ringline.RinglineService))))

  it.effect("probeOpcodes reports the kernel's opcodes without a Ringline service", () =>
    Effect.gen(function*() {
      const supported = yield* Ring.probeOpcodes
      expect(supported[Ring.Op.NOP]).toBe(1)
      expect(supported[Ring.Op.READ]).toBe(1)
    }))

  it("native: the registered pool is page-aligned, one per ring, re-registrable after unregister", () => {
    const native = load()
    const ring = new native.Ring({
      sqEntries: 2,
      cqEntries: 8,
      bufferCount: 1,
      bufferSize: 1,
      files: 0,
      sendPoolBytes: 1,
      argBytes: 1,
      sqpoll: false,
      sqpollIdleMs: 0
    }, () => {})
    try {
      const p = ring.registerDirectPool(10_000)
      expect(p.base % 4096).toBe(0)
      expect(p.buffer.byteLength).toBe(12_288)
      new Uint8Array(p.buffer).fill(1)
      expect(() => ring.registerDirectPool(4096)).toThrow(expect.objectContaining({ errno: 16 }))
      ring.unregisterDirectPool()
      const q = ring.registerDirectPool(4096)
      expect(q.base % 4096).toBe(0)
    } finally {
      ring.close()
    }
  })
})

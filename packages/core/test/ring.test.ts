/**
 * The public low-level `Ring` module: real ops through the current ring (NOP, READ of a file,
 * OPENAT), interruption that completes only after the op's CQE and its cancel's, typed errors,
 * the opcode probe and the registered buffer pool.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { constants } from "node:os"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { load } from "../src/internal/native.js"
import { Ring, Ringline } from "../src/index.js"
import { withRing } from "./helpers.js"

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

import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Nvme from "../src/Nvme.js"

// Expected bytes were produced by a C program filling `struct nvme_uring_cmd` / `struct io_uring_sqe`
// from <linux/nvme_ioctl.h> and <linux/io_uring.h> (kernel 6.18 headers) and hex-dumping them.
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

describe("Nvme encoding", () => {
  it("identify namespace (admin 0x06, CNS 0)", () => {
    const cmd = Nvme.identifyNamespace({ nsid: 1, addr: 0x7f0000001000 })
    expect(Nvme.cmdOp(cmd)).toBe(0xc0484e82)
    expect(hex(Nvme.encode(cmd))).toBe(
      "06000000010000000000000000000000000000000000000000100000007f0000000000000010000000000000000000000000000000" +
        "00000000000000000000000000000000000000"
    )
  })

  it("read: SLBA split across cdw10/cdw11, NLB = blocks - 1 in cdw12", () => {
    const cmd = Nvme.read({ nsid: 1, slba: 0x100000002n, blocks: 8, addr: 0x12345678abc, dataLen: 4096 })
    expect(Nvme.cmdOp(cmd)).toBe(0xc0484e80)
    expect(cmd.cdw10).toBe(2)
    expect(cmd.cdw11).toBe(1)
    expect(cmd.cdw12).toBe(7)
    expect(hex(Nvme.encode(cmd))).toBe(
      "020000000100000000000000000000000000000000000000bc8a674523010000000000000010000002000000010000000700000000" +
        "00000000000000000000000000000000000000"
    )
  })

  it("write with metadata, timeout and the largest block count", () => {
    const cmd = {
      ...Nvme.write({ nsid: 2, slba: 0xfffffffe, blocks: 65536, addr: 0x1000, dataLen: 65536 * 512 }),
      metadata: 0xabcdef,
      metadataLen: 8,
      timeoutMs: 1500
    }
    expect(hex(Nvme.encode(cmd))).toBe(
      "01000000020000000000000000000000efcdab000000000000100000000000000800000000000002feffffff00000000ffff000000" +
        "0000000000000000000000dc05000000000000"
    )
  })

  it("flush, and the 128-byte URING_CMD SQE carrying it", () => {
    const cmd = Nvme.flush({ nsid: 3 })
    expect(hex(Nvme.encode(cmd))).toBe("00000000" + "03000000" + "00".repeat(64))
    const sqe = Nvme.sqe128(cmd, { fd: 5, fixed: true, userData: 0x1122334455667788n })
    expect(hex(sqe)).toBe(
      "2e01000005000000804e48c0000000000000000000000000000000000000000088776655443322110000000000000000" +
        "0000000003000000" + "00".repeat(72)
    )
  })

  it("encodes in place at an offset and rejects out-of-range fields", () => {
    const buf = new Uint8Array(200).fill(0xaa)
    Nvme.encode(Nvme.flush({ nsid: 9 }), buf, 48)
    expect(buf[47]).toBe(0xaa)
    expect(buf[48 + 4]).toBe(9)
    expect(buf[48 + 72]).toBe(0xaa)
    expect(() => Nvme.read({ nsid: 1, slba: 0, blocks: 0, addr: 0, dataLen: 0 })).toThrow(RangeError)
    expect(() => Nvme.read({ nsid: 1, slba: 0, blocks: 65537, addr: 0, dataLen: 0 })).toThrow(RangeError)
    expect(() => Nvme.encode({ queue: "io", opcode: 256, nsid: 1 })).toThrow(RangeError)
    expect(() => Nvme.encode({ queue: "io", opcode: 1, nsid: -1 })).toThrow(RangeError)
    expect(() => Nvme.encode({ queue: "io", opcode: 1, nsid: 1, addr: -1n })).toThrow(RangeError)
  })
})

describe("Nvme status decoding", () => {
  it("splits SC, SCT, CRD, More and DNR", () => {
    // DNR | media error (SCT 2) | Unrecovered Read Error (0x81)
    const s = Nvme.decodeStatus((1 << 14) | (2 << 8) | 0x81)
    expect(s).toMatchObject({
      statusCodeType: 2,
      statusCodeTypeName: "MediaAndDataIntegrity",
      statusCode: 0x81,
      description: "Unrecovered Read Error",
      doNotRetry: true,
      more: false,
      commandRetryDelay: 0
    })
    const g = Nvme.decodeStatus((1 << 13) | (2 << 11) | 0x80)
    expect(g).toMatchObject({ statusCodeTypeName: "Generic", description: "LBA Out of Range", more: true, commandRetryDelay: 2, doNotRetry: false })
    expect(Nvme.decodeStatus(0x702).description).toBe("Unknown (SCT 7, SC 0x02)")
    expect(Nvme.decodeStatus(0x702).statusCodeTypeName).toBe("VendorSpecific")
  })

  it.effect("checkResult: 0 ok, positive -> NvmeStatusError, negative -> NvmeCommandError", () =>
    Effect.gen(function*() {
      yield* Nvme.checkResult(0x02, 0)
      const e = yield* Effect.flip(Nvme.checkResult(0x02, 0x4002))
      expect(e._tag).toBe("NvmeStatusError")
      if (e._tag === "NvmeStatusError") {
        expect(e.status.description).toBe("Invalid Field in Command")
        expect(e.message).toBe("NVMe command 0x02 failed: Invalid Field in Command (SCT 0 Generic, SC 0x02, do not retry)")
      }
      const k = yield* Effect.flip(Nvme.checkResult(0x01, -95))
      expect(k._tag).toBe("NvmeCommandError")
      if (k._tag === "NvmeCommandError") expect(k.errno).toBe(95)
    }))
})

describe("Nvme devices", () => {
  it("kernel version check", () => {
    expect(Nvme.kernelAtLeast(5, 19, "5.19.0-generic")).toBe(true)
    expect(Nvme.kernelAtLeast(5, 19, "5.15.0")).toBe(false)
    expect(Nvme.kernelAtLeast(5, 19, "6.1.2")).toBe(true)
  })

  it.live("a missing device is a typed NvmeUnavailable naming what is needed", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Nvme.open("/dev/ng99n1"))
      expect(e.reason).toBe("NoDevice")
      expect(e.message).toContain("/dev/ng99n1")
      expect(e.message).toContain("5.19")
      expect(e.message).toContain("SQE128")
      const notChar = yield* Effect.flip(Nvme.open("/etc/hostname"))
      expect(notChar.reason).toBe("NotCharDevice")
    }))

  it.live("on a real NVMe char device (skipped without one)", () =>
    Effect.gen(function*() {
      const found = yield* Nvme.devices
      if (found.length === 0) {
        console.log("SKIP no NVMe generic char device (/dev/ngXnY) on this machine")
        return
      }
      // Passthrough submission is not implemented (no SQE128|CQE32 ring): open says so.
      const e = yield* Effect.flip(Nvme.open(found[0]!))
      expect(["RingUnsupported", "KernelTooOld"]).toContain(e.reason)
    }))
})

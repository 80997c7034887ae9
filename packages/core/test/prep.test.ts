/**
 * The prep helpers (src/internal/ring/prep.ts, public as `Ring.prep*`) write the same 64 bytes
 * as liburing's io_uring_prep_* for the same arguments: the addon runs liburing's helper into a
 * zeroed SQE (abi.prepSqe) and the JS helper stages into a zeroed SQE of its own.
 */
import { describe, expect, it } from "@effect/vitest"
import { FILE_INDEX_ALLOC, Op, SqeFlag, SqeOffset } from "../src/internal/ring/abi.js"
import { load } from "../src/internal/native.js"
import * as prep from "../src/internal/ring/prep.js"

/** A one-SQE staging area: what the driver's `sqe()` does, without a ring. */
const stager = () => {
  const words = new Int32Array(16)
  return {
    words,
    sqe(op: number, flags: number, fd: number, _slot: number) {
      words.fill(0)
      words[0] = op | (flags << 8)
      words[1] = fd
      return 0
    }
  }
}

const js = (f: (s: prep.Stager) => void): Uint8Array => {
  const s = stager()
  f(s)
  return new Uint8Array(s.words.buffer)
}
const liburing = (name: string, args: ReadonlyArray<number>): Uint8Array => new Uint8Array(load().abi.prepSqe(name, args))

const FD = 7
const ADDR = 0x12_3456_789a
const ADDR2 = 0x7f_0000_1000
const OFF = 0x1_0000_0010
const LEN = 4096

describe("prep helpers = liburing's io_uring_prep_*", () => {
  const cases: Array<[string, ReadonlyArray<number>, (s: prep.Stager) => void]> = [
    ["rw", [Op.SEND, FD, ADDR, LEN, OFF], (s) => prep.prepRw(s, 0, Op.SEND, FD, ADDR, LEN, OFF)],
    ["nop", [], (s) => prep.prepNop(s, 0)],
    ["read", [FD, ADDR, LEN, OFF], (s) => prep.prepRead(s, 0, FD, ADDR, LEN, OFF)],
    ["read", [FD, ADDR, LEN, -1], (s) => prep.prepRead(s, 0, FD, ADDR, LEN, prep.CURRENT_POSITION)],
    ["write", [FD, ADDR, LEN, OFF], (s) => prep.prepWrite(s, 0, FD, ADDR, LEN, OFF)],
    ["readv", [FD, ADDR, 3, OFF], (s) => prep.prepReadv(s, 0, FD, ADDR, 3, OFF)],
    ["writev", [FD, ADDR, 3, OFF], (s) => prep.prepWritev(s, 0, FD, ADDR, 3, OFF)],
    ["readFixed", [FD, ADDR, LEN, OFF, 2], (s) => prep.prepReadFixed(s, 0, FD, ADDR, LEN, OFF, 2)],
    ["writeFixed", [FD, ADDR, LEN, OFF, 2], (s) => prep.prepWriteFixed(s, 0, FD, ADDR, LEN, OFF, 2)],
    ["fsync", [FD, 0], (s) => prep.prepFsync(s, 0, FD, false)],
    ["fsync", [FD, 1], (s) => prep.prepFsync(s, 0, FD, true)],
    ["fallocate", [FD, 1, OFF, 1 << 20], (s) => prep.prepFallocate(s, 0, FD, 1, OFF, 1 << 20)],
    ["openat", [-100, ADDR, 0o1102, 0o644], (s) => prep.prepOpenat(s, 0, -100, ADDR, 0o1102, 0o644)],
    ["openatDirect", [-100, ADDR, 0o2, 0o600, 5], (s) => prep.prepOpenat(s, 0, -100, ADDR, 0o2, 0o600, 5)],
    ["close", [FD], (s) => prep.prepClose(s, 0, FD)],
    ["closeDirect", [9], (s) => prep.prepCloseDirect(s, 0, 9)],
    ["statx", [-100, ADDR, 0x100, 0xfff, ADDR2], (s) => prep.prepStatx(s, 0, -100, ADDR, 0x100, 0xfff, ADDR2)],
    ["renameat", [-100, ADDR, 3, ADDR2, 1], (s) => prep.prepRenameat(s, 0, -100, ADDR, 3, ADDR2, 1)],
    ["unlinkat", [-100, ADDR, 0x200], (s) => prep.prepUnlinkat(s, 0, -100, ADDR, 0x200)],
    ["mkdirat", [-100, ADDR, 0o755], (s) => prep.prepMkdirat(s, 0, -100, ADDR, 0o755)],
    ["symlinkat", [ADDR, -100, ADDR2], (s) => prep.prepSymlinkat(s, 0, ADDR, -100, ADDR2)],
    ["linkat", [-100, ADDR, 4, ADDR2, 0x400], (s) => prep.prepLinkat(s, 0, -100, ADDR, 4, ADDR2, 0x400)],
    ["timeout", [ADDR, 0, 1], (s) => prep.prepTimeout(s, 0, ADDR, 0, 1)],
    ["timeout", [ADDR, 3, 0], (s) => prep.prepTimeout(s, 0, ADDR, 3, 0)],
    ["pollAdd", [FD, 1], (s) => prep.prepPollAdd(s, 0, FD, 1)],
    ["send", [FD, ADDR, LEN, 0x4000], (s) => prep.prepSend(s, 0, FD, ADDR, LEN, 0x4000)],
    ["sendZc", [FD, ADDR, LEN, 0x4000, 0], (s) => prep.prepSendZc(s, 0, FD, ADDR, LEN, 0x4000)],
    ["sendZc", [FD, ADDR, LEN, 0x4100, 1], (s) => prep.prepSendZc(s, 0, FD, ADDR, LEN, 0x4100, 1)],
    ["sendmsg", [FD, ADDR, 0x4000], (s) => prep.prepSendmsg(s, 0, FD, ADDR, 0x4000)],
    ["sendmsgZc", [FD, ADDR, 0x4000], (s) => prep.prepSendmsgZc(s, 0, FD, ADDR, 0x4000)],
    ["recv", [FD, ADDR, LEN, 0x100], (s) => prep.prepRecv(s, 0, FD, ADDR, LEN, 0x100)],
    ["recvMultishot", [FD, 0, 0, 0], (s) => prep.prepRecvMultishot(s, 0, FD, 0, 0, 0)],
    ["shutdown", [FD, 1], (s) => prep.prepShutdown(s, 0, FD, 1)],
    ["accept", [FD, ADDR, ADDR2, 0x80000], (s) => prep.prepAccept(s, 0, FD, ADDR, ADDR2, 0x80000)],
    ["accept", [FD, 0, 0, 0], (s) => prep.prepAccept(s, 0, FD, 0, 0, 0)],
    ["acceptDirect", [FD, 0, 0, 0, 5], (s) => prep.prepAcceptDirect(s, 0, FD, 0, 0, 0, 5)],
    ["multishotAcceptDirect", [FD, 0, 0, 0], (s) => prep.prepMultishotAcceptDirect(s, 0, FD, 0, 0, 0)],
    ["connect", [FD, ADDR, 16], (s) => prep.prepConnect(s, 0, FD, ADDR, 16)],
    ["socketDirectAlloc", [2, 1, 0, 0], (s) => prep.prepSocketDirectAlloc(s, 0, 2, 1, 0)],
    ["socketDirectAlloc", [10, 0x80001, 6, 0], (s) => prep.prepSocketDirectAlloc(s, 0, 10, 0x80001, 6)],
    ["linkTimeout", [ADDR, 0], (s) => prep.prepLinkTimeout(s, 0, ADDR)],
    ["linkTimeout", [ADDR, 1], (s) => prep.prepLinkTimeout(s, 0, ADDR, 1)]
  ]
  for (const [name, args, f] of cases) {
    it(`${name}(${args.join(", ")})`, () => {
      expect(Array.from(js(f)), name).toEqual(Array.from(liburing(name, args)))
    })
  }

  it("accept with FILE_INDEX_ALLOC asks the kernel to pick the slot; SQE flags of a linked send", () => {
    const a = new DataView(js((s) => prep.prepAcceptDirect(s, 0, FD, 0, 0, 0, FILE_INDEX_ALLOC)).buffer)
    expect(a.getUint32(SqeOffset.fileIndex, true)).toBe(0xffffffff)
    const b = js((s) => prep.prepSend(s, 0, FD, ADDR, LEN, 0, SqeFlag.FIXED_FILE | SqeFlag.IO_LINK))
    expect(b[SqeOffset.flags]).toBe(SqeFlag.FIXED_FILE | SqeFlag.IO_LINK)
  })

  it("socket URING_CMD (liburing 2.5's io_uring_prep_cmd_sock, absent from 2.3): fields at the kernel's offsets", () => {
    const b = js((s) => prep.prepCmdSock(s, 0, 1, FD, 6, 1, ADDR, 4, SqeFlag.FIXED_FILE))
    const v = new DataView(b.buffer)
    expect(b[SqeOffset.opcode]).toBe(Op.URING_CMD)
    expect(b[SqeOffset.flags]).toBe(SqeFlag.FIXED_FILE)
    expect(v.getInt32(SqeOffset.fd, true)).toBe(FD)
    expect(v.getUint32(SqeOffset.off, true)).toBe(1) // cmd_op: SOCKET_URING_OP_SETSOCKOPT
    expect(v.getUint32(SqeOffset.addr, true)).toBe(6) // level
    expect(v.getUint32(SqeOffset.addr + 4, true)).toBe(1) // optname
    expect(v.getUint32(SqeOffset.fileIndex, true)).toBe(4) // optlen
    expect(Number(v.getBigUint64(SqeOffset.addr3, true))).toBe(ADDR) // optval
    // Every other byte stays zero.
    const touched = new Set<number>()
    for (const [at, n] of [[0, 2], [SqeOffset.fd, 4], [SqeOffset.off, 4], [SqeOffset.addr, 8], [SqeOffset.fileIndex, 4], [SqeOffset.addr3, 8]]) {
      for (let i = 0; i < n!; i++) touched.add(at! + i)
    }
    for (let i = 0; i < 64; i++) if (!touched.has(i)) expect(b[i], `byte ${i}`).toBe(0)
  })

  it("SQE flags land in byte 1 (liburing leaves them to the caller)", () => {
    const b = js((s) => prep.prepRead(s, 0, FD, ADDR, LEN, 0, SqeFlag.FIXED_FILE | SqeFlag.IO_LINK))
    expect(b[SqeOffset.flags]).toBe(SqeFlag.FIXED_FILE | SqeFlag.IO_LINK)
  })

  it("openat with FILE_INDEX_ALLOC asks the kernel to pick the slot (file_index all ones)", () => {
    // liburing 2.3's openat_direct would write ALLOC + 1 = 0 here (fixed in later releases).
    const b = js((s) => prep.prepOpenat(s, 0, -100, ADDR, 0, 0, FILE_INDEX_ALLOC))
    expect(new DataView(b.buffer).getUint32(SqeOffset.fileIndex, true)).toBe(0xffffffff)
  })

  it("helpers liburing 2.3 lacks follow the kernel's field use: FTRUNCATE, FIXED_FD_INSTALL, WAITID", () => {
    const v = (b: Uint8Array) => new DataView(b.buffer)
    const t = v(js((s) => prep.prepFtruncate(s, 0, FD, OFF)))
    expect([t.getUint8(SqeOffset.opcode), t.getInt32(SqeOffset.fd, true), Number(t.getBigUint64(SqeOffset.off, true))])
      .toEqual([Op.FTRUNCATE, FD, OFF])
    const i = v(js((s) => prep.prepFixedFdInstall(s, 0, 9)))
    expect([i.getUint8(SqeOffset.opcode), i.getUint8(SqeOffset.flags), i.getInt32(SqeOffset.fd, true), i.getUint32(SqeOffset.opFlags, true)])
      .toEqual([Op.FIXED_FD_INSTALL, SqeFlag.FIXED_FILE, 9, 0])
    const w = v(js((s) => prep.prepWaitid(s, 0, 3, FD, ADDR, 4)))
    expect([
      w.getUint8(SqeOffset.opcode),
      w.getInt32(SqeOffset.fd, true),
      w.getUint32(SqeOffset.len, true),
      w.getUint32(SqeOffset.fileIndex, true),
      Number(w.getBigUint64(SqeOffset.off, true))
    ]).toEqual([Op.WAITID, FD, 3, 4, ADDR])
  })
})

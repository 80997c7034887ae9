/**
 * The one ABI table (src/internal/ring/abi.ts, public through `Ring`) against what the addon was
 * compiled with (packages/native/src/abi.cc: liburing's header, offsetof, the control-word enums).
 * Every entry on either side must exist on the other with the same value.
 */
import { describe, expect, it } from "@effect/vitest"
import * as abi from "../src/internal/ring/abi.js"
import { load } from "../src/internal/native.js"
import * as Ring from "../src/Ring.js"

const native = load().abi

/** Both directions: same keys, same values. */
const same = (name: string, js: Readonly<Record<string, number>>, c: Readonly<Record<string, number>>) => {
  expect(Object.keys(js).sort(), `${name}: the JS table and the addon name the same entries`).toEqual(Object.keys(c).sort())
  for (const [key, value] of Object.entries(js)) expect(value, `${name}.${key}`).toBe(c[key])
}

describe("io_uring ABI: JS table = addon build", () => {
  it("opcodes", () => same("Op", abi.Op, native.op))
  it("SQE flags", () => same("SqeFlag", abi.SqeFlag, native.sqeFlag))
  it("CQE flags", () => same("CqeFlag", abi.CqeFlag, native.cqeFlag))
  it("setup flags", () => same("SetupFlag", abi.SetupFlag, native.setupFlag))
  it("SQE layout (offsetof struct io_uring_sqe)", () => same("SqeOffset", abi.SqeOffset, native.sqeOffset))
  it("CQE layout (offsetof struct io_uring_cqe)", () => same("CqeOffset", abi.CqeOffset, native.cqeOffset))
  it("control words (loop_ring.h, ring.h)", () => same("Ctl", abi.Ctl, native.ctl))

  it("single values: op flag words, sizes, the CQE copy format", () => {
    same("values", {
      CQE_BUFFER_SHIFT: abi.CQE_BUFFER_SHIFT,
      IOPRIO_ACCEPT_MULTISHOT: abi.IOPRIO_ACCEPT_MULTISHOT,
      IOPRIO_RECV_MULTISHOT: abi.IOPRIO_RECV_MULTISHOT,
      FILE_INDEX_ALLOC: abi.FILE_INDEX_ALLOC,
      FSYNC_DATASYNC: abi.FSYNC_DATASYNC,
      TIMEOUT_ABS: abi.TIMEOUT_ABS,
      SOCKET_URING_OP_SETSOCKOPT: abi.SOCKET_URING_OP_SETSOCKOPT,
      NOP_INJECT_RESULT: abi.NOP_INJECT_RESULT,
      MSG_NOSIGNAL: abi.MSG_NOSIGNAL,
      SQE_BYTES: abi.SQE_BYTES,
      SQE128_BYTES: abi.SQE128_BYTES,
      CQE_WORDS: abi.CQE_WORDS,
      CQE32_WORDS: abi.CQE32_WORDS
    }, native.values)
  })

  it("the word offsets are the byte offsets / 4, and every u64 field is 8-byte aligned", () => {
    const o = abi.SqeOffset
    expect(abi.W).toEqual({
      head: o.opcode / 4,
      fd: o.fd / 4,
      off: o.off / 4,
      addr: o.addr / 4,
      len: o.len / 4,
      opFlags: o.opFlags / 4,
      userData: o.userData / 4,
      bufGroup: o.bufIndex / 4,
      fileIndex: o.fileIndex / 4,
      addr3: o.addr3 / 4
    })
    for (const f of [o.off, o.addr, o.userData, o.addr3]) expect(f % 8).toBe(0)
    // The CQE copy: user_data, res and flags in this order, as the struct has them.
    expect(abi.CqeWord.userDataLo * 4).toBe(abi.CqeOffset.userData)
    expect(abi.CqeWord.res * 4).toBe(abi.CqeOffset.res)
    expect(abi.CqeWord.flags * 4).toBe(abi.CqeOffset.flags)
    expect(abi.CqeWord.big0Lo * 4).toBe(abi.CqeOffset.bigCqe)
  })

  it("a real ring's shared regions have the table's shapes", () => {
    const ring = new (load().Ring)({
      sqEntries: 4,
      cqEntries: 16,
      bufferCount: 1,
      bufferSize: 1,
      files: 0,
      sendPoolBytes: 1,
      argBytes: 1,
      sqpoll: false,
      sqpollIdleMs: 0
    }, () => {})
    try {
      const info = ring.info()
      expect(info.regions.ctl.byteLength).toBe(abi.Ctl.words * 4)
      expect(info.regions.stage.byteLength % abi.SQE_BYTES).toBe(0)
      expect(info.regions.cqes.byteLength % (abi.CQE_WORDS * 4)).toBe(0)
    } finally {
      ring.close()
    }
  })

  it("a wide ring's regions have 128-byte SQEs and 8-word CQEs", () => {
    const ring = new (load().WideRing)({ entries: 4 }, () => {})
    try {
      const info = ring.info()
      expect(info.setupFlags & (abi.SetupFlag.SQE128 | abi.SetupFlag.CQE32)).toBe(abi.SetupFlag.SQE128 | abi.SetupFlag.CQE32)
      expect(info.regions.stage.byteLength).toBe(info.sqEntries * abi.SQE128_BYTES)
      expect(info.regions.cqes.byteLength).toBe(info.cqEntries * abi.CQE32_WORDS * 4)
      expect(info.regions.ctl.byteLength).toBe(abi.Ctl.words * 4)
    } finally {
      ring.close()
    }
  })

  it("the public Ring module re-exports the same table", () => {
    expect(Ring.Op).toBe(abi.Op)
    expect(Ring.SqeFlag).toBe(abi.SqeFlag)
    expect(Ring.SqeOffset).toBe(abi.SqeOffset)
    expect(Ring.SqeWord).toBe(abi.W)
    expect(Ring.Ctl).toBe(abi.Ctl)
  })
})

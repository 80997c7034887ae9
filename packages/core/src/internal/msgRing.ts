/**
 * IORING_OP_MSG_RING, both halves in one place: the SQEs a ring stages to post into another
 * ring (a data message, or IORING_MSG_SEND_FD moving a fixed file), and the decoding of the CQEs
 * that arrive on the target ring.
 *
 * liburing 2.3 has no helpers for it; the SQE fields (kernel io_uring/msg_ring.c):
 *   fd = target ring fd, addr = IORING_MSG_DATA (0) or IORING_MSG_SEND_FD (1),
 *   off = user_data of the CQE posted on the target, len = its res (data messages),
 *   addr3 = source fixed-file index, file_index = target slot + 1 or IORING_FILE_INDEX_ALLOC
 *   (SEND_FD; the target CQE's res is then the slot the kernel picked).
 * The source ring gets its own CQE (res 0 or -errno) once the target has the message, unless the
 * SQE says IOSQE_CQE_SKIP_SUCCESS (data messages here: then only a failure posts one); a SEND_FD
 * that fails posts nothing on the target. The source keeps its fixed slot and must close it.
 *
 * Marking: the target's driver sees these CQEs among its own. Their user_data low word is
 * negative (bit 31 set), which no op slot is (Driver.onRingMessage), and carries the kind and the
 * sending worker; the high word and res carry the payload.
 */
import type { Driver, OpOwner } from "./driver.js"
import { FILE_INDEX_ALLOC, SqeFlag, W } from "./ring/abi.js"

export const OP_MSG_RING = 40
const MSG_DATA = 0
const MSG_SEND_FD = 1

/** What a message CQE is. */
export const Kind = {
  /** A connection handed over: res is the new fixed slot on this ring. */
  Fd: 1,
  /** A 64-bit notification: payload high word in user_data hi, low word in res. */
  Notify: 2,
  /** A body waits in the mailbox from `from`. */
  Body: 3,
  /**
   * On the sending ring: a data message of kind `hi` to worker `from` (here: the target) failed
   * with res = -errno (postData).
   */
  Undelivered: 4
} as const

/** Most workers a message can name (16 bits of the marker). */
export const MAX_WORKERS = 0xffff

const marker = (kind: number, from: number): number => (0x80000000 | (kind << 24) | from) | 0

export const kindOf = (lo: number): number => (lo >>> 24) & 0x7f
export const fromOf = (lo: number): number => lo & 0xffff

/**
 * Stages a data message, fire and forget: the target ring gets a CQE with user_data (marker, hi)
 * and res `res`. The SQE carries IOSQE_CQE_SKIP_SUCCESS and belongs to no op slot, so a delivery
 * costs this ring no CQE and no resumed fiber; only a failure posts one here, with user_data
 * (marker(Undelivered, to), kind) and res -errno, which the driver routes to onRingMessage.
 */
export const postData = (
  d: Driver,
  targetRingFd: number,
  to: number,
  kind: number,
  from: number,
  hi: number,
  res: number
): void => {
  const w = d.sqeUnowned(OP_MSG_RING, SqeFlag.CQE_SKIP_SUCCESS, targetRingFd, marker(Kind.Undelivered, to), kind)
  const s = d.words
  s[w + W.addr] = MSG_DATA
  s[w + W.off] = marker(kind, from)
  s[w + W.off + 1] = hi | 0
  s[w + W.len] = res | 0
}

/**
 * Stages IORING_MSG_SEND_FD of this ring's fixed slot `fixed` into the target ring (which picks a
 * free slot). The source slot stays open until the caller closes it.
 */
export const stageSendFd = (
  d: Driver,
  owner: OpOwner,
  tag: number,
  targetRingFd: number,
  fixed: number,
  from: number,
  seq: number
): number => {
  const slot = d.alloc(owner, tag)
  const w = d.sqe(OP_MSG_RING, 0, targetRingFd, slot)
  const s = d.words
  s[w + W.addr] = MSG_SEND_FD
  s[w + W.addr3] = fixed
  s[w + W.fileIndex] = FILE_INDEX_ALLOC
  s[w + W.off] = marker(Kind.Fd, from)
  s[w + W.off + 1] = seq | 0
  return slot
}

/** Splits a 64-bit payload into (hi, lo) words and back. */
export const splitU64 = (v: bigint): [number, number] => [Number((v >> 32n) & 0xffffffffn) | 0, Number(v & 0xffffffffn) | 0]
export const joinU64 = (hi: number, lo: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)

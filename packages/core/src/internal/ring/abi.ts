/**
 * The one table of the io_uring ABI as ringline's JS sees it: opcodes, SQE/CQE flags, setup
 * flags, op-specific flag words, the SQE layout (byte offsets, and the 32-bit word offsets the
 * staging area is written through), the layout of the CQEs the addon copies out, and the control
 * words shared with the addon. Every package reads these from here (storage through the public
 * `Ring` module); nothing else may spell an opcode or an offset.
 *
 * The values are the kernel's (uapi <linux/io_uring.h>); test/abi.test.ts compares every entry
 * with what the addon compiled against (packages/native/src/abi.cc: liburing's header, offsetof,
 * the control-word enums of loop_ring.h and ring.h), so a drift on either side fails a test.
 * Entries newer than liburing 2.3's header are spelled in abi.cc once, next to the header's.
 */

/** IORING_OP_* (uapi io_uring.h `enum io_uring_op`). */
export const Op = {
  NOP: 0,
  READV: 1,
  WRITEV: 2,
  FSYNC: 3,
  READ_FIXED: 4,
  WRITE_FIXED: 5,
  POLL_ADD: 6,
  SENDMSG: 9,
  RECVMSG: 10,
  TIMEOUT: 11,
  ACCEPT: 13,
  ASYNC_CANCEL: 14,
  LINK_TIMEOUT: 15,
  CONNECT: 16,
  FALLOCATE: 17,
  OPENAT: 18,
  CLOSE: 19,
  STATX: 21,
  READ: 22,
  WRITE: 23,
  SEND: 26,
  RECV: 27,
  SHUTDOWN: 34,
  RENAMEAT: 35,
  UNLINKAT: 36,
  MKDIRAT: 37,
  SYMLINKAT: 38,
  LINKAT: 39,
  SOCKET: 45,
  URING_CMD: 46,
  SEND_ZC: 47,
  SENDMSG_ZC: 48,
  /** Linux 6.5 */
  WAITID: 50,
  /** Linux 6.8 */
  FIXED_FD_INSTALL: 54,
  /** Linux 6.9 */
  FTRUNCATE: 55
} as const

/** An IORING_OP_* name. */
export type OpName = keyof typeof Op

/** Opcode → name, for messages. */
export const OpName: Record<number, string> = Object.fromEntries(
  Object.entries(Op).map(([name, code]) => [code, name])
)

/** IOSQE_* (sqe->flags). */
export const SqeFlag = {
  FIXED_FILE: 1 << 0,
  IO_DRAIN: 1 << 1,
  IO_LINK: 1 << 2,
  IO_HARDLINK: 1 << 3,
  ASYNC: 1 << 4,
  BUFFER_SELECT: 1 << 5,
  CQE_SKIP_SUCCESS: 1 << 6
} as const

/** IORING_CQE_F_* (cqe->flags). The provided buffer id is `flags >>> CQE_BUFFER_SHIFT`. */
export const CqeFlag = {
  BUFFER: 1 << 0,
  MORE: 1 << 1,
  SOCK_NONEMPTY: 1 << 2,
  NOTIF: 1 << 3
} as const

/** IORING_CQE_BUFFER_SHIFT */
export const CQE_BUFFER_SHIFT = 16

/** IORING_SETUP_* the addon may report in `info().setupFlags`. */
export const SetupFlag = {
  SQPOLL: 1 << 1,
  CQSIZE: 1 << 3,
  SUBMIT_ALL: 1 << 7,
  COOP_TASKRUN: 1 << 8,
  TASKRUN_FLAG: 1 << 9,
  SQE128: 1 << 10,
  CQE32: 1 << 11,
  SINGLE_ISSUER: 1 << 12,
  DEFER_TASKRUN: 1 << 13
} as const

/** sqe->ioprio of ACCEPT / RECV: IORING_ACCEPT_MULTISHOT, IORING_RECV_MULTISHOT. */
export const IOPRIO_ACCEPT_MULTISHOT = 1 << 0
export const IOPRIO_RECV_MULTISHOT = 1 << 1
/**
 * sqe->ioprio of SEND_ZC / SENDMSG_ZC: IORING_SEND_ZC_REPORT_USAGE (Linux 6.2; liburing 2.3's
 * header predates it). The notification CQE's res then carries IORING_NOTIF_USAGE_ZC_COPIED
 * (bit 31) when the kernel copied the data after all (loopback, a device without scatter-gather).
 */
export const SEND_ZC_REPORT_USAGE = 1 << 3
export const NOTIF_USAGE_ZC_COPIED = 1 << 31
/** sqe->file_index asking the kernel to pick a free fixed-file slot (IORING_FILE_INDEX_ALLOC). */
export const FILE_INDEX_ALLOC = 0xffffffff | 0
/** sqe->fsync_flags: IORING_FSYNC_DATASYNC. */
export const FSYNC_DATASYNC = 1
/** sqe->timeout_flags: IORING_TIMEOUT_ABS. */
export const TIMEOUT_ABS = 1 << 0
/** sqe->cmd_op of a socket URING_CMD: SOCKET_URING_OP_SETSOCKOPT (Linux 6.7). */
export const SOCKET_URING_OP_SETSOCKOPT = 3
/**
 * sqe->nop_flags (the op-flags word of a NOP): IORING_NOP_INJECT_RESULT (Linux 6.10), the NOP
 * completes with `len` as its result; used by fault injection (internal/ring/faults.ts).
 */
export const NOP_INJECT_RESULT = 1 << 0
/** sqe->msg_flags bit used on sends (MSG_NOSIGNAL, <sys/socket.h>). */
export const MSG_NOSIGNAL = 0x4000

/** Bytes of one SQE: 64, or 128 on a ring set up with IORING_SETUP_SQE128. */
export const SQE_BYTES = 64
export const SQE128_BYTES = 128

/**
 * Byte offsets of the fields of `struct io_uring_sqe` (little-endian). Unions share an offset:
 * `off` is also addr2 and (u32) cmd_op; `addr` also splice_off_in and, for socket URING_CMDs,
 * level (u32) and optname (u32, at addr + 4); `opFlags` is rw_flags / msg_flags / accept_flags /
 * timeout_flags / fsync_flags / cancel_flags...; `bufIndex` is also buf_group; `fileIndex` also
 * splice_fd_in and optlen; `addr3` also optval and the start of a 128-byte SQE's `cmd` area.
 */
export const SqeOffset = {
  opcode: 0,
  flags: 1,
  ioprio: 2,
  fd: 4,
  off: 8,
  addr: 16,
  len: 24,
  opFlags: 28,
  userData: 32,
  bufIndex: 40,
  personality: 42,
  fileIndex: 44,
  addr3: 48
} as const

/**
 * The same fields as 32-bit word offsets in an SQE, as the staging area is written:
 *   w0  opcode u8 | flags u8 << 8 | ioprio u16 << 16
 *   w1  fd          w2,3  off          w4,5  addr      w6  len      w7  op flags
 *   w8,9 user_data  w10   buf_index u16 | personality u16 << 16
 *   w11 file_index  w12,13 addr3
 */
export const W = {
  head: SqeOffset.opcode >> 2,
  fd: SqeOffset.fd >> 2,
  off: SqeOffset.off >> 2,
  addr: SqeOffset.addr >> 2,
  len: SqeOffset.len >> 2,
  opFlags: SqeOffset.opFlags >> 2,
  userData: SqeOffset.userData >> 2,
  bufGroup: SqeOffset.bufIndex >> 2,
  fileIndex: SqeOffset.fileIndex >> 2,
  addr3: SqeOffset.addr3 >> 2
} as const

/** Byte offsets in the kernel's `struct io_uring_cqe` (big_cqe only with IORING_SETUP_CQE32). */
export const CqeOffset = { userData: 0, res: 8, flags: 12, bigCqe: 16 } as const

/**
 * The CQEs as the addon copies them out for JS (Int32 words per CQE): user_data low and high
 * words, res, flags, and on a CQE32 ring big_cqe[0] and big_cqe[1] as low/high word pairs.
 */
export const CqeWord = { userDataLo: 0, userDataHi: 1, res: 2, flags: 3, big0Lo: 4, big0Hi: 5, big1Lo: 6, big1Hi: 7 } as const
/** Int32 words per copied CQE: 4, or 8 on a CQE32 ring. */
export const CQE_WORDS = 4
export const CQE32_WORDS = 8

/**
 * Words of the control block shared with a native ring (Int32Array `ctl`): LoopCtlWord in
 * loop_ring.h (every ring) and CtlWord in ring.h (`recycled`: the main ring only).
 */
export const Ctl = {
  staged: 0,
  recycled: 1,
  submitted: 2,
  sqFull: 3,
  cqes: 4,
  wakeups: 5,
  submitErr: 6,
  overflow: 7,
  emptyWakeups: 8,
  /** Size of the block in words. */
  words: 16
} as const

/** Splits a value (< 2^53) into the two little-endian words of a u64 field. */
export const putU64 = (words: Int32Array, at: number, value: number): void => {
  words[at] = value >>> 0
  words[at + 1] = Math.floor(value / 4294967296)
}

/**
 * The io_uring ABI as JS sees it: opcodes, flags and the byte layout of a 64-byte SQE.
 *
 * The driver stages complete SQEs in memory shared with the addon (see packages/native/src/ring.h),
 * so each op module fills the fields its opcode uses through the word offsets below.
 * Layout (struct io_uring_sqe, little-endian, as 32-bit words):
 *   w0  opcode u8 | flags u8 << 8 | ioprio u16 << 16
 *   w1  fd
 *   w2,3  off / addr2 / (w2: cmd_op for URING_CMD)
 *   w4,5  addr / (w4: level, w5: optname for socket URING_CMDs)
 *   w6  len
 *   w7  op flags (msg_flags, accept_flags, timeout_flags, cancel_flags, ...)
 *   w8,9  user_data
 *   w10 buf_index / buf_group u16 | personality u16 << 16
 *   w11 file_index / splice_fd_in / optlen
 *   w12,13 addr3 / optval
 */
export const W = {
  head: 0,
  fd: 1,
  off: 2,
  addr: 4,
  len: 6,
  opFlags: 7,
  userData: 8,
  bufGroup: 10,
  fileIndex: 11,
  addr3: 12
} as const

/** IORING_OP_* values (uapi io_uring.h); liburing 2.3 lacks names past SENDMSG_ZC. */
export const Op = {
  NOP: 0,
  POLL_ADD: 6,
  SENDMSG: 9,
  RECVMSG: 10,
  TIMEOUT: 11,
  ACCEPT: 13,
  ASYNC_CANCEL: 14,
  LINK_TIMEOUT: 15,
  CONNECT: 16,
  CLOSE: 19,
  READ: 22,
  WRITE: 23,
  SEND: 26,
  RECV: 27,
  SHUTDOWN: 34,
  SOCKET: 45,
  URING_CMD: 46,
  SEND_ZC: 47,
  SENDMSG_ZC: 48,
  WAITID: 50,
  FIXED_FD_INSTALL: 54
} as const

export const OpName: Record<number, string> = Object.fromEntries(
  Object.entries(Op).map(([name, code]) => [code, name])
)

export const SqeFlag = {
  FIXED_FILE: 1 << 0,
  IO_LINK: 1 << 2,
  IO_HARDLINK: 1 << 3,
  BUFFER_SELECT: 1 << 5
} as const

export const CqeFlag = {
  BUFFER: 1 << 0,
  MORE: 1 << 1,
  SOCK_NONEMPTY: 1 << 2,
  NOTIF: 1 << 3
} as const

export const IOPRIO_ACCEPT_MULTISHOT = 1 << 0
export const IOPRIO_RECV_MULTISHOT = 1 << 1
/** file_index value asking the kernel to pick a free fixed-file slot. */
export const FILE_INDEX_ALLOC = 0xffffffff | 0
export const MSG_NOSIGNAL = 0x4000
export const SOCKET_URING_OP_SETSOCKOPT = 3

/** Splits an address (< 2^53) into the two little-endian words of a u64 field. */
export const putU64 = (words: Int32Array, at: number, value: number): void => {
  words[at] = value >>> 0
  words[at + 1] = Math.floor(value / 4294967296)
}

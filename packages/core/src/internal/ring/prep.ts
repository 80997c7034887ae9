/**
 * liburing-style prep helpers: each stages one SQE for an op slot and fills the fields its opcode
 * uses, by name, so no op module writes raw word offsets. They mirror io_uring_prep_* (same
 * argument order, with the ring and the op slot first and the SQE flags last), return the SQE's
 * word index for the rare field a caller still sets itself, and allocate nothing.
 *
 * Addresses are plain numbers (< 2^53): the caller pins the memory (the slot's argument area, or
 * a view held by the slot) until the op's terminal CQE.
 */
import { FILE_INDEX_ALLOC, FSYNC_DATASYNC, IOPRIO_ACCEPT_MULTISHOT, IOPRIO_RECV_MULTISHOT, Op, putU64, SqeFlag, W } from "./abi.js"

/** Where SQEs are staged: the driver (core's main ring). */
export interface Stager {
  /** Stages a zeroed SQE with opcode, flags, fd and the slot's user_data; returns its word index. */
  sqe(op: number, flags: number, fd: number, slot: number, linkTimeout?: boolean): number
  /** The staging area as 32-bit words. */
  readonly words: Int32Array
}

/** The file's current position (off = -1), for read/write on pipes, sockets and "no position". */
export const CURRENT_POSITION = -1

/** io_uring_prep_rw: the fields shared by most ops. */
export const prepRw = (
  r: Stager,
  slot: number,
  op: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  sqeFlags = 0
): number => {
  const w = r.sqe(op, sqeFlags, fd, slot)
  const s = r.words
  putU64(s, w + W.addr, addr)
  s[w + W.len] = len
  putU64(s, w + W.off, offset)
  return w
}

/** IORING_OP_NOP. */
export const prepNop = (r: Stager, slot: number, sqeFlags = 0): number => r.sqe(Op.NOP, sqeFlags, -1, slot)

/** IORING_OP_READ of `len` bytes into `addr` at `offset` (-1: the current position). */
export const prepRead = (r: Stager, slot: number, fd: number, addr: number, len: number, offset: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.READ, fd, addr, len, offset, sqeFlags)

/** IORING_OP_WRITE of `len` bytes from `addr` at `offset` (-1: the current position). */
export const prepWrite = (r: Stager, slot: number, fd: number, addr: number, len: number, offset: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.WRITE, fd, addr, len, offset, sqeFlags)

/** IORING_OP_READV / WRITEV of `nrVecs` iovecs at `iovecs`. */
export const prepReadv = (r: Stager, slot: number, fd: number, iovecs: number, nrVecs: number, offset: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.READV, fd, iovecs, nrVecs, offset, sqeFlags)
export const prepWritev = (r: Stager, slot: number, fd: number, iovecs: number, nrVecs: number, offset: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.WRITEV, fd, iovecs, nrVecs, offset, sqeFlags)

/** IORING_OP_READ_FIXED / WRITE_FIXED from/into registered buffer `bufIndex`. */
export const prepReadFixed = (
  r: Stager,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  bufIndex: number,
  sqeFlags = 0
): number => {
  const w = prepRw(r, slot, Op.READ_FIXED, fd, addr, len, offset, sqeFlags)
  r.words[w + W.bufGroup] = bufIndex
  return w
}
export const prepWriteFixed = (
  r: Stager,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  bufIndex: number,
  sqeFlags = 0
): number => {
  const w = prepRw(r, slot, Op.WRITE_FIXED, fd, addr, len, offset, sqeFlags)
  r.words[w + W.bufGroup] = bufIndex
  return w
}

/** IORING_OP_FSYNC; `datasync` sets IORING_FSYNC_DATASYNC. */
export const prepFsync = (r: Stager, slot: number, fd: number, datasync: boolean, sqeFlags = 0): number => {
  const w = r.sqe(Op.FSYNC, sqeFlags, fd, slot)
  r.words[w + W.opFlags] = datasync ? FSYNC_DATASYNC : 0
  return w
}

/** IORING_OP_FALLOCATE (fallocate(fd, mode, offset, len)). */
export const prepFallocate = (r: Stager, slot: number, fd: number, mode: number, offset: number, len: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.FALLOCATE, fd, len, mode, offset, sqeFlags)

/** IORING_OP_FTRUNCATE (Linux 6.9). */
export const prepFtruncate = (r: Stager, slot: number, fd: number, len: number, sqeFlags = 0): number => {
  const w = r.sqe(Op.FTRUNCATE, sqeFlags, fd, slot)
  putU64(r.words, w + W.off, len)
  return w
}

/**
 * IORING_OP_OPENAT. `fileIndex` undefined opens a regular fd; a number installs the file in the
 * fixed-file table instead (io_uring_prep_openat_direct), FILE_INDEX_ALLOC letting the kernel pick.
 */
export const prepOpenat = (
  r: Stager,
  slot: number,
  dfd: number,
  path: number,
  flags: number,
  mode: number,
  fileIndex?: number
): number => {
  const w = prepRw(r, slot, Op.OPENAT, dfd, path, mode, 0)
  r.words[w + W.opFlags] = flags
  if (fileIndex !== undefined) r.words[w + W.fileIndex] = fileIndex === FILE_INDEX_ALLOC ? fileIndex : fileIndex + 1
  return w
}

/** IORING_OP_CLOSE of a regular fd. */
export const prepClose = (r: Stager, slot: number, fd: number): number => r.sqe(Op.CLOSE, 0, fd, slot)

/** IORING_OP_CLOSE of fixed-file slot `fileIndex` (io_uring_prep_close_direct). */
export const prepCloseDirect = (r: Stager, slot: number, fileIndex: number): number => {
  const w = r.sqe(Op.CLOSE, 0, 0, slot)
  r.words[w + W.fileIndex] = fileIndex + 1
  return w
}

/** IORING_OP_STATX into the 256-byte struct statx at `statxbuf`. */
export const prepStatx = (
  r: Stager,
  slot: number,
  dfd: number,
  path: number,
  flags: number,
  mask: number,
  statxbuf: number
): number => {
  const w = prepRw(r, slot, Op.STATX, dfd, path, mask, statxbuf)
  r.words[w + W.opFlags] = flags
  return w
}

/** IORING_OP_RENAMEAT. */
export const prepRenameat = (
  r: Stager,
  slot: number,
  oldDfd: number,
  oldPath: number,
  newDfd: number,
  newPath: number,
  flags = 0
): number => {
  const w = prepRw(r, slot, Op.RENAMEAT, oldDfd, oldPath, newDfd, newPath)
  r.words[w + W.opFlags] = flags
  return w
}

/** IORING_OP_UNLINKAT (`flags` AT_REMOVEDIR for a directory). */
export const prepUnlinkat = (r: Stager, slot: number, dfd: number, path: number, flags = 0): number => {
  const w = prepRw(r, slot, Op.UNLINKAT, dfd, path, 0, 0)
  r.words[w + W.opFlags] = flags
  return w
}

/** IORING_OP_MKDIRAT. */
export const prepMkdirat = (r: Stager, slot: number, dfd: number, path: number, mode: number): number =>
  prepRw(r, slot, Op.MKDIRAT, dfd, path, mode, 0)

/** IORING_OP_SYMLINKAT: a link at `linkPath` (relative to `newDfd`) whose content is `target`. */
export const prepSymlinkat = (r: Stager, slot: number, target: number, newDfd: number, linkPath: number): number =>
  prepRw(r, slot, Op.SYMLINKAT, newDfd, target, 0, linkPath)

/** IORING_OP_LINKAT. */
export const prepLinkat = (
  r: Stager,
  slot: number,
  oldDfd: number,
  oldPath: number,
  newDfd: number,
  newPath: number,
  flags = 0
): number => {
  const w = prepRw(r, slot, Op.LINKAT, oldDfd, oldPath, newDfd, newPath)
  r.words[w + W.opFlags] = flags
  return w
}

/**
 * IORING_OP_FIXED_FD_INSTALL (Linux 6.8): a regular O_CLOEXEC fd for fixed-file slot `fileIndex`;
 * the CQE result is the new fd.
 */
export const prepFixedFdInstall = (r: Stager, slot: number, fileIndex: number, flags = 0): number => {
  const w = r.sqe(Op.FIXED_FD_INSTALL, SqeFlag.FIXED_FILE, fileIndex, slot)
  r.words[w + W.opFlags] = flags
  return w
}

/** IORING_OP_TIMEOUT on the `struct __kernel_timespec` at `ts`; `count` 0 is a pure timer. */
export const prepTimeout = (r: Stager, slot: number, ts: number, count: number, flags: number): number => {
  const w = prepRw(r, slot, Op.TIMEOUT, -1, ts, 1, count)
  r.words[w + W.opFlags] = flags
  return w
}

/** IORING_OP_POLL_ADD (single shot) for `pollMask` (POLLIN...). */
export const prepPollAdd = (r: Stager, slot: number, fd: number, pollMask: number): number => {
  const w = r.sqe(Op.POLL_ADD, 0, fd, slot)
  r.words[w + W.opFlags] = pollMask
  return w
}

/** IORING_OP_WAITID (Linux 6.5) writing a siginfo_t at `infop`. */
export const prepWaitid = (r: Stager, slot: number, idtype: number, id: number, infop: number, options: number): number => {
  const w = r.sqe(Op.WAITID, 0, id, slot)
  r.words[w + W.len] = idtype
  r.words[w + W.fileIndex] = options
  putU64(r.words, w + W.off, infop)
  return w
}

/** The socket ops' common shape: io_uring_prep_rw at offset 0, then msg_flags. */
const prepMsg = (
  r: Stager,
  slot: number,
  op: number,
  fd: number,
  addr: number,
  len: number,
  msgFlags: number,
  sqeFlags: number
): number => {
  const w = prepRw(r, slot, op, fd, addr, len, 0, sqeFlags)
  r.words[w + W.opFlags] = msgFlags
  return w
}

/** IORING_OP_SEND of `len` bytes at `addr` with `msgFlags` (MSG_NOSIGNAL, MSG_WAITALL...). */
export const prepSend = (r: Stager, slot: number, fd: number, addr: number, len: number, msgFlags: number, sqeFlags = 0): number =>
  prepMsg(r, slot, Op.SEND, fd, addr, len, msgFlags, sqeFlags)

/** IORING_OP_SEND_ZC: as SEND, then a notification CQE once the kernel released the memory. */
export const prepSendZc = (
  r: Stager,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  msgFlags: number,
  zcFlags = 0,
  sqeFlags = 0
): number => {
  const w = prepMsg(r, slot, Op.SEND_ZC, fd, addr, len, msgFlags, sqeFlags)
  r.words[w] |= zcFlags << 16
  return w
}

/** IORING_OP_SENDMSG of the `struct msghdr` at `msg`. */
export const prepSendmsg = (r: Stager, slot: number, fd: number, msg: number, msgFlags: number, sqeFlags = 0): number =>
  prepMsg(r, slot, Op.SENDMSG, fd, msg, 1, msgFlags, sqeFlags)

/** IORING_OP_SENDMSG_ZC of the `struct msghdr` at `msg` (`zcFlags` as for SEND_ZC). */
export const prepSendmsgZc = (r: Stager, slot: number, fd: number, msg: number, msgFlags: number, zcFlags = 0, sqeFlags = 0): number => {
  const w = prepMsg(r, slot, Op.SENDMSG_ZC, fd, msg, 1, msgFlags, sqeFlags)
  r.words[w] |= zcFlags << 16
  return w
}

/** IORING_OP_RECV of up to `len` bytes into `addr` (with BUFFER_SELECT: 0, 0 and a buffer group). */
export const prepRecv = (r: Stager, slot: number, fd: number, addr: number, len: number, msgFlags: number, sqeFlags = 0): number =>
  prepMsg(r, slot, Op.RECV, fd, addr, len, msgFlags, sqeFlags)

/** Multishot IORING_OP_RECV (IORING_RECV_MULTISHOT): one CQE per chunk, F_MORE until the last. */
export const prepRecvMultishot = (
  r: Stager,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  msgFlags: number,
  sqeFlags = 0
): number => {
  const w = prepRecv(r, slot, fd, addr, len, msgFlags, sqeFlags)
  r.words[w] |= IOPRIO_RECV_MULTISHOT << 16
  return w
}

/** IORING_OP_SHUTDOWN (`how`: SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2). */
export const prepShutdown = (r: Stager, slot: number, fd: number, how: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.SHUTDOWN, fd, 0, how, 0, sqeFlags)

/** IORING_OP_ACCEPT; `addr`/`addrlen` (addresses of a sockaddr and its socklen_t) may be 0. */
export const prepAccept = (r: Stager, slot: number, fd: number, addr: number, addrlen: number, flags: number, sqeFlags = 0): number => {
  const w = prepRw(r, slot, Op.ACCEPT, fd, addr, 0, addrlen, sqeFlags)
  r.words[w + W.opFlags] = flags
  return w
}

/**
 * IORING_OP_ACCEPT into the fixed-file table (io_uring_prep_accept_direct): slot `fileIndex`, or
 * FILE_INDEX_ALLOC to let the kernel pick one (the CQE result is then the slot).
 */
export const prepAcceptDirect = (
  r: Stager,
  slot: number,
  fd: number,
  addr: number,
  addrlen: number,
  flags: number,
  fileIndex: number,
  sqeFlags = 0
): number => {
  const w = prepAccept(r, slot, fd, addr, addrlen, flags, sqeFlags)
  r.words[w + W.fileIndex] = fileIndex === FILE_INDEX_ALLOC ? fileIndex : fileIndex + 1
  return w
}

/** Multishot IORING_OP_ACCEPT into kernel-picked fixed-file slots (io_uring_prep_multishot_accept_direct). */
export const prepMultishotAcceptDirect = (r: Stager, slot: number, fd: number, addr: number, addrlen: number, flags: number): number => {
  const w = prepAcceptDirect(r, slot, fd, addr, addrlen, flags, FILE_INDEX_ALLOC)
  r.words[w] |= IOPRIO_ACCEPT_MULTISHOT << 16
  return w
}

/** IORING_OP_CONNECT to the `addrlen`-byte sockaddr at `addr`. */
export const prepConnect = (r: Stager, slot: number, fd: number, addr: number, addrlen: number, sqeFlags = 0): number =>
  prepRw(r, slot, Op.CONNECT, fd, addr, 0, addrlen, sqeFlags)

/**
 * IORING_OP_SOCKET straight into the fixed-file table (io_uring_prep_socket_direct_alloc): the
 * kernel picks the slot and the CQE result is that slot.
 */
export const prepSocketDirectAlloc = (r: Stager, slot: number, domain: number, type: number, protocol: number, flags = 0): number => {
  const w = prepRw(r, slot, Op.SOCKET, domain, 0, protocol, type)
  r.words[w + W.opFlags] = flags
  r.words[w + W.fileIndex] = FILE_INDEX_ALLOC
  return w
}

/**
 * IORING_OP_LINK_TIMEOUT on the `struct __kernel_timespec` at `ts`, for the SQE staged just before
 * it with IOSQE_IO_LINK. Its CQE shares the linked op's slot, told apart by the link-timeout bit.
 */
export const prepLinkTimeout = (r: Stager, slot: number, ts: number, flags = 0): number => {
  const w = r.sqe(Op.LINK_TIMEOUT, 0, -1, slot, true)
  const s = r.words
  putU64(s, w + W.addr, ts)
  s[w + W.len] = 1
  s[w + W.opFlags] = flags
  return w
}

/**
 * IORING_OP_URING_CMD on a socket (io_uring_prep_cmd_sock, liburing 2.5+; 2.3 has none):
 * `cmdOp` (SOCKET_URING_OP_SETSOCKOPT...) in the `off` union, level and optname in the `addr`
 * union, optlen in file_index's place, optval's address in addr3.
 */
export const prepCmdSock = (
  r: Stager,
  slot: number,
  cmdOp: number,
  fd: number,
  level: number,
  optname: number,
  optval: number,
  optlen: number,
  sqeFlags = 0
): number => {
  const w = r.sqe(Op.URING_CMD, sqeFlags, fd, slot)
  const s = r.words
  s[w + W.off] = cmdOp
  s[w + W.addr] = level
  s[w + W.addr + 1] = optname
  s[w + W.fileIndex] = optlen
  putU64(s, w + W.addr3, optval)
  return w
}

/**
 * What file operations share on top of core's `Ring` module: errno → @effect/platform SystemError
 * mapping (with the syscall each method stands for), STATX into a struct statx, the fixed-file
 * close, and the encodings file SQEs need (open flags, struct statx).
 *
 * Every op runs through `Ring.submit` and friends, so interruption follows core's rule: an
 * interrupted op is cancelled by user_data and the interrupted Effect completes only after the
 * op's terminal CQE, so buffers and paths are never released while the kernel may still touch them.
 */
import { SystemError, type SystemErrorReason } from "@effect/platform/Error"
import type { File as PlatformFile } from "@effect/platform/FileSystem"
import { Size } from "@effect/platform/FileSystem"
import { Ring } from "@ringline/core"
import { Effect, Option } from "effect"
import { constants } from "node:fs"

export const AT_FDCWD = -100
export const AT_REMOVEDIR = 0x200
export const AT_EMPTY_PATH = 0x1000
export const AT_SYMLINK_NOFOLLOW = 0x100
/** STATX_BASIC_STATS | STATX_BTIME */
export const STATX_MASK = 0x7ff | 0x800
/** Bytes of a struct statx. */
export const STATX_BYTES = 256

/**
 * STATX(dirfd, name, flags, mask) into a fresh 256-byte struct statx: the CQE result (a negative
 * errno on failure) and the raw struct, for callers that decode the fields they asked for.
 */
export const statxRaw = (
  ring: Ring.Ring,
  dirfd: number,
  name: string,
  flags: number,
  mask: number
): Effect.Effect<{ readonly res: number; readonly buf: Buffer }> => {
  const buf = Buffer.alloc(STATX_BYTES)
  const p = Ring.cString(name)
  return Effect.map(
    Ring.submitRaw(ring, (slot) => {
      Ring.prepStatx(ring, slot, dirfd, Ring.addressOf(p), flags, mask, Ring.addressOf(buf))
      return [buf, p]
    }),
    (res) => ({ res, buf })
  )
}

// ---- errors ------------------------------------------------------------------------------------

const syscalls: Record<string, string> = {
  open: "openat",
  read: "read",
  readFully: "read",
  readv: "readv",
  write: "write",
  writeAll: "write",
  writev: "writev",
  sync: "fsync",
  datasync: "fdatasync",
  stat: "statx",
  allocate: "fallocate",
  truncate: "ftruncate",
  close: "close",
  rename: "renameat",
  remove: "unlinkat",
  makeDirectory: "mkdirat",
  lstat: "statx",
  link: "linkat",
  symlink: "symlinkat"
}

/** A SystemError for a negative CQE result. */
export const errnoError = (ring: Ring.Ring | undefined, method: string, path: string, res: number): SystemError =>
  Ring.systemError(ring, { res, module: "FileSystem", method, pathOrDescriptor: path, syscall: syscalls[method] ?? method })

export const otherError = (
  method: string,
  path: string,
  reason: SystemErrorReason,
  description: string
): SystemError => new SystemError({ reason, module: "FileSystem", method, pathOrDescriptor: path, description })

// ---- encodings ---------------------------------------------------------------------------------

/** A NUL-terminated copy of `path` (UTF-8). */
export const cString = Ring.cString

/** Open flags as Node spells them ("r", "wx+", ...) → O_* bits. Never O_CLOEXEC: direct opens refuse it. */
export const openFlags = (flag: string): number | undefined => {
  const { O_APPEND, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = constants
  switch (flag) {
    case "r":
      return O_RDONLY
    case "r+":
      return O_RDWR
    case "w":
      return O_WRONLY | O_CREAT | O_TRUNC
    case "wx":
      return O_WRONLY | O_CREAT | O_TRUNC | O_EXCL
    case "w+":
      return O_RDWR | O_CREAT | O_TRUNC
    case "wx+":
      return O_RDWR | O_CREAT | O_TRUNC | O_EXCL
    case "a":
      return O_WRONLY | O_CREAT | O_APPEND
    case "ax":
      return O_WRONLY | O_CREAT | O_APPEND | O_EXCL
    case "a+":
      return O_RDWR | O_CREAT | O_APPEND
    case "ax+":
      return O_RDWR | O_CREAT | O_APPEND | O_EXCL
    default:
      return undefined
  }
}

const S_IFMT = 0o170000
const typeOf = (mode: number): PlatformFile.Type => {
  switch (mode & S_IFMT) {
    case 0o100000:
      return "File"
    case 0o040000:
      return "Directory"
    case 0o120000:
      return "SymbolicLink"
    case 0o060000:
      return "BlockDevice"
    case 0o020000:
      return "CharacterDevice"
    case 0o010000:
      return "FIFO"
    case 0o140000:
      return "Socket"
    default:
      return "Unknown"
  }
}

const STATX_BTIME = 0x800

/** Decodes a struct statx (uapi linux/stat.h) into @effect/platform's File.Info. */
export const decodeStatx = (b: Buffer): PlatformFile.Info => {
  const mask = b.readUInt32LE(0)
  const time = (at: number) => {
    const sec = Number(b.readBigInt64LE(at))
    const nsec = b.readUInt32LE(at + 8)
    return new Date(sec * 1000 + Math.floor(nsec / 1e6))
  }
  const makedev = (major: number, minor: number) => (major & 0xfff) * 256 + (minor & 0xff) + (minor >>> 8) * 0x100000
  return {
    type: typeOf(b.readUInt16LE(28)),
    mode: b.readUInt16LE(28),
    nlink: Option.some(b.readUInt32LE(16)),
    uid: Option.some(b.readUInt32LE(20)),
    gid: Option.some(b.readUInt32LE(24)),
    ino: Option.some(Number(b.readBigUInt64LE(32))),
    size: Size(b.readBigUInt64LE(40)),
    blocks: Option.some(Number(b.readBigUInt64LE(48))),
    blksize: Option.some(Size(b.readUInt32LE(4))),
    atime: Option.some(time(64)),
    birthtime: (mask & STATX_BTIME) !== 0 ? Option.some(time(80)) : Option.none(),
    mtime: Option.some(time(112)),
    rdev: Option.some(makedev(b.readUInt32LE(128), b.readUInt32LE(132))),
    dev: makedev(b.readUInt32LE(136), b.readUInt32LE(140))
  }
}

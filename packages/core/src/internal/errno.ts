/** errno numbers and names, taken from Node's own table so that they match node:net errors. */
import { constants } from "node:os"

const byNumber = new Map<number, string>()
for (const [name, value] of Object.entries(constants.errno)) {
  if (!byNumber.has(value)) byNumber.set(value, name)
}

export const errnoName = (errno: number): string => byNumber.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`

export const Errno = {
  ENOENT: constants.errno.ENOENT,
  EAGAIN: constants.errno.EAGAIN,
  ENOMEM: constants.errno.ENOMEM,
  EPERM: constants.errno.EPERM,
  EINVAL: constants.errno.EINVAL,
  ENFILE: constants.errno.ENFILE,
  EMFILE: constants.errno.EMFILE,
  EPIPE: constants.errno.EPIPE,
  ENOSYS: constants.errno.ENOSYS,
  ENOBUFS: constants.errno.ENOBUFS,
  EALREADY: constants.errno.EALREADY,
  ECANCELED: constants.errno.ECANCELED,
  ETIME: 62,
  ETIMEDOUT: constants.errno.ETIMEDOUT,
  ECONNREFUSED: constants.errno.ECONNREFUSED,
  ECONNRESET: constants.errno.ECONNRESET,
  ENETUNREACH: constants.errno.ENETUNREACH,
  EHOSTUNREACH: constants.errno.EHOSTUNREACH,
  EADDRINUSE: constants.errno.EADDRINUSE,
  ENOTCONN: constants.errno.ENOTCONN
} as const

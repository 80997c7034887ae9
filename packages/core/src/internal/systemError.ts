/**
 * errno → `@effect/platform` SystemError reason, one table for every ringline adapter (FileSystem,
 * CommandExecutor). It is exactly @effect/platform-node's (handleErrnoException), so swapping
 * NodeFileSystem / NodeCommandExecutor for ours never changes which reason a program sees; errnos
 * Node leaves as "Unknown" (EPERM, EINVAL, EPIPE...) stay "Unknown" here too, and the errno code
 * itself is always in the error's description.
 */
import type { SystemErrorReason } from "@effect/platform/Error"

export const reasonOf = (code: string): SystemErrorReason => {
  switch (code) {
    case "ENOENT":
      return "NotFound"
    case "EACCES":
      return "PermissionDenied"
    case "EEXIST":
      return "AlreadyExists"
    case "EISDIR":
    case "ENOTDIR":
    case "ELOOP":
      return "BadResource"
    case "EBUSY":
      return "Busy"
    default:
      return "Unknown"
  }
}

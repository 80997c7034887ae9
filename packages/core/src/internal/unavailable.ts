/**
 * Why a ring could not be set up, in words: turns the errno of a failed io_uring_setup (or of the
 * registrations that follow it) into a `RinglineUnavailable` naming the cause and the fix.
 */
import { readFileSync } from "node:fs"
import type { RinglineConfig } from "../RinglineConfig.js"
import { RinglineUnavailable } from "../RinglineError.js"
import { Errno, errnoName } from "./errno.js"

/** Turns a failed ring set-up into a message that says what is wrong and how to fix it. */
export const unavailable = (
  e: any,
  config: Pick<RinglineConfig, "sqEntries" | "maxConnections">
): RinglineUnavailable => {
  const errno: number | undefined = e?.errno
  const syscall: string = e?.syscall ?? ""
  if (errno === undefined) {
    return new RinglineUnavailable({ reason: "NativeAddon", detail: String(e?.message ?? e) })
  }
  if (syscall === "io_uring_setup") {
    if (errno === Errno.ENOSYS) {
      return new RinglineUnavailable({
        reason: "KernelTooOld",
        errno,
        detail: "io_uring_setup returned ENOSYS: this kernel has no io_uring (ringline needs Linux 6.8+ built with CONFIG_IO_URING=y)"
      })
    }
    if (errno === Errno.EPERM) return new RinglineUnavailable({ reason: "Disabled", errno, detail: refused() })
    if (errno === Errno.ENOMEM) {
      return new RinglineUnavailable({
        reason: "MemoryLimit",
        errno,
        detail: `io_uring_setup returned ENOMEM for ${config.sqEntries} entries: raise the locked-memory limit (ulimit -l / LimitMEMLOCK=) or lower sqEntries`
      })
    }
  }
  if (syscall === "io_uring_register_files_sparse" && (errno === Errno.EMFILE || errno === Errno.ENFILE)) {
    return new RinglineUnavailable({
      reason: "Other",
      errno,
      detail: `cannot register a fixed-file table of maxConnections=${config.maxConnections}: it exceeds the open-file limit (ulimit -n); raise the limit or lower maxConnections`
    })
  }
  if (syscall === "io_uring_register_buf_ring") {
    return new RinglineUnavailable({
      reason: errno === Errno.EINVAL ? "KernelTooOld" : "Other",
      errno,
      detail: `cannot register the provided-buffer ring (${errnoName(errno)}): needs Linux 5.19+; with ENOMEM lower recvBuffer.ringSize or bufferSize`
    })
  }
  return new RinglineUnavailable({ reason: "Other", errno, detail: `${syscall} failed: ${errnoName(errno)} (errno ${errno})` })
}

/** A line of /proc/self/status or /proc/sys, "" when it cannot be read (old kernel, hidden /proc). */
const procValue = (file: string, key?: string): string => {
  try {
    const text = readFileSync(file, "utf8")
    if (key === undefined) return text.trim()
    const line = text.split("\n").find((l) => l.startsWith(`${key}:`))
    return line === undefined ? "" : line.slice(key.length + 1).trim()
  } catch {
    return ""
  }
}

/**
 * io_uring_setup said EPERM: either the sysctl kernel.io_uring_disabled refuses it, or a seccomp
 * filter does (Docker's default profile, systemd's SystemCallFilter, a sandbox). The sysctl is
 * checked first because it is the only one that names itself; "Seccomp: 2" in /proc/self/status
 * says a filter is installed on this process, though not which syscalls it refuses.
 */
export const explainEperm = (sysctl: string, seccompMode: string): string => {
  if (sysctl === "2") {
    return "io_uring_setup returned EPERM because sysctl kernel.io_uring_disabled=2 disables io_uring for every process; run `sysctl -w kernel.io_uring_disabled=0`"
  }
  if (sysctl === "1") {
    return "io_uring_setup returned EPERM because sysctl kernel.io_uring_disabled=1 limits io_uring to root and the group in kernel.io_uring_group; add this user to that group or run `sysctl -w kernel.io_uring_disabled=0`"
  }
  const fix = "allow io_uring_setup, io_uring_enter and io_uring_register in the profile " +
    "(Docker: a seccomp profile that permits them, or `--security-opt seccomp=unconfined`; " +
    "systemd: drop `~@io-uring` from SystemCallFilter=)"
  return seccompMode === "2"
    ? `io_uring_setup returned EPERM: this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status), as Docker's and systemd's default profiles install, and it refuses io_uring; ${fix}`
    : `io_uring_setup returned EPERM, most likely from a seccomp filter (e.g. Docker's or systemd's default profile) refusing io_uring; ${fix}`
}

const refused = (): string =>
  explainEperm(procValue("/proc/sys/kernel/io_uring_disabled"), procValue("/proc/self/status", "Seccomp"))

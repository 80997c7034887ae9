/**
 * Finding and opening NVMe namespaces: generic char device detection, the checks that say
 * exactly why passthrough is unavailable, and {@link open}.
 */
import { Ring } from "@ringline/core"
import { Data, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { identifyNamespace } from "./command.js"
import { alignedBuffer, type Device, execute, makeDevice, NvmeArgumentError, type NvmeError } from "./device.js"
import { namespaceId, parseIdentifyNamespace } from "./identify.js"
import type { NvmeCommandError } from "./status.js"

/**
 * Why NVMe passthrough cannot be used.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnavailableReason =
  | "NoDevice"
  | "NotCharDevice"
  | "KernelTooOld"
  | "RingUnsupported"
  /** A char device that is not an NVMe namespace (no URING_CMD support, or no namespace data). */
  | "NotNvme"
  /** The device exists but this process may not open it. */
  | "PermissionDenied"
  /** A namespace format this module does not drive (per-block metadata). */
  | "UnsupportedFormat"

/**
 * NVMe passthrough is not possible here; `detail` names what is missing.
 *
 * @since 0.1.0
 * @category errors
 */
export class NvmeUnavailable extends Data.TaggedError("NvmeUnavailable")<{
  readonly path: string
  readonly reason: UnavailableReason
  readonly detail: string
}> {
  override get message(): string {
    return `NVMe passthrough unavailable for ${this.path} (${this.reason}): ${this.detail}`
  }
}

const NEEDS = "NVMe passthrough needs an NVMe drive exposed as a generic char device /dev/ngXnY, " +
  "Linux 5.19+, and an io_uring set up with IORING_SETUP_SQE128 | IORING_SETUP_CQE32"

/**
 * NVMe generic char devices (`/dev/ngXnY`) present on this machine, sorted.
 *
 * @since 0.1.0
 * @category devices
 */
export const devices: Effect.Effect<ReadonlyArray<string>> = Effect.promise(async () => {
  let names: Array<string>
  try {
    names = await fs.readdir("/dev")
  } catch {
    return []
  }
  const found: Array<string> = []
  for (const n of names.filter((n) => /^ng\d+n\d+$/.test(n)).sort()) {
    try {
      if ((await fs.stat(`/dev/${n}`)).isCharacterDevice()) found.push(`/dev/${n}`)
    } catch {
      // vanished or unreadable: not usable
    }
  }
  return found
})

/**
 * Whether the running kernel is at least `major.minor` (from os.release()).
 *
 * @since 0.1.0
 * @category devices
 */
export const kernelAtLeast = (major: number, minor: number, release = os.release()): boolean => {
  const m = /^(\d+)\.(\d+)/.exec(release)
  if (m === null) return false
  const [a, b] = [Number(m[1]), Number(m[2])]
  return a > major || (a === major && b >= minor)
}

/**
 * Options of {@link open}.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** Namespace id; by default parsed from the device name (`/dev/ngXnY` → Y). */
  readonly nsid?: number
  /** SQ entries of the passthrough ring (default 32). */
  readonly entries?: number
}

const EACCES = 13
const EPERM = 1
const EROFS = 30
const EOPNOTSUPP = 95

const devNumbers = (rdev: bigint): string => {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)
  return `${major}:${minor}`
}

const readSysfsNumber = (file: string): number | undefined => {
  try {
    const n = Number(fsSync.readFileSync(file, "utf8").trim())
    return Number.isFinite(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * Opens an NVMe namespace through its generic char device (`/dev/ngXnY`) for the current scope:
 * opens the device (O_RDWR, or O_RDONLY when writing is refused), sets up a passthrough ring
 * (IORING_SETUP_SQE128 | IORING_SETUP_CQE32) and runs Identify Namespace to learn the block size
 * and capacity. Closing the scope cancels what is still in flight, closes the ring after the last
 * completion, then the fd.
 *
 * Fails with {@link NvmeUnavailable}: `NoDevice` (no such path), `NotCharDevice`, `KernelTooOld`
 * (before 5.19), `NotNvme` (a char device that is not an NVMe namespace: sysfs names it
 * otherwise, it rejects URING_CMD with EOPNOTSUPP, or its Identify data is empty),
 * `PermissionDenied`, `RingUnsupported` (the SQE128 | CQE32 ring cannot be set up) or
 * `UnsupportedFormat` (formats with per-block metadata). Identify failures other than those are
 * {@link NvmeStatusError} / {@link NvmeCommandError}; a bad `nsid` option is an {@link NvmeArgumentError}.
 *
 * @since 0.1.0
 * @category devices
 */
export const open = (
  devicePath: string,
  options: OpenOptions = {}
): Effect.Effect<Device, NvmeUnavailable | NvmeError, Scope.Scope> =>
  // What open acquired (fd, ring) goes back at once when open itself fails.
  Effect.flatMap(Effect.scope, (outer) =>
    Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (inner) =>
      openIn(devicePath, options).pipe(
        Scope.extend(inner),
        Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(inner, exit) : Effect.void)
      )))

const openIn = (
  devicePath: string,
  options: OpenOptions
): Effect.Effect<Device, NvmeUnavailable | NvmeError, Scope.Scope> =>
  Effect.gen(function*() {
    const unavailable = (reason: UnavailableReason, detail: string) =>
      Effect.fail(new NvmeUnavailable({ path: devicePath, reason, detail }))
    // A NUL byte would end the C string early: refuse it before the path reaches any syscall.
    const badPath = Ring.badCString(devicePath)
    if (badPath !== undefined) {
      return yield* Effect.fail(new NvmeArgumentError({ operation: "open", field: "path", value: JSON.stringify(devicePath), rule: badPath }))
    }
    const stat = yield* Effect.promise(() => fs.stat(devicePath, { bigint: true }).then((s) => s, () => undefined))
    if (stat === undefined) {
      const present = yield* devices
      return yield* unavailable(
        "NoDevice",
        `${devicePath} does not exist: no NVMe generic char device /dev/ngXnY of that name here ` +
          `(NVMe char devices here: ${present.length === 0 ? "none" : present.join(", ")}); ${NEEDS}`
      )
    }
    if (!stat.isCharacterDevice()) {
      return yield* unavailable("NotCharDevice", `${devicePath} is not a character device; ${NEEDS}`)
    }
    if (!kernelAtLeast(5, 19)) {
      return yield* unavailable("KernelTooOld", `kernel ${os.release()} is older than 5.19; ${NEEDS}`)
    }
    // sysfs names the driver's device: an NVMe generic char device is .../ngXnY.
    const sysName = yield* Effect.promise(() =>
      fs.readlink(`/sys/dev/char/${devNumbers(stat.rdev)}`).then((l) => path.basename(l), () => undefined)
    )
    if (sysName !== undefined && !/^ng\d+n\d+$/.test(sysName)) {
      return yield* unavailable(
        "NotNvme",
        `${devicePath} is char device ${devNumbers(stat.rdev)} "${sysName}", not an NVMe generic char device /dev/ngXnY; ${NEEDS}`
      )
    }
    const nsid = options.nsid ?? namespaceId(sysName ?? devicePath)
    if (nsid === undefined) {
      return yield* unavailable(
        "NotNvme",
        `${devicePath} is not named like an NVMe generic char device /dev/ngXnY, so its namespace id is unknown ` +
          `(pass { nsid } to open it anyway); ${NEEDS}`
      )
    }
    if (!Number.isInteger(nsid) || nsid < 1 || nsid > 0xfffffffe) {
      return yield* Effect.fail(
        new NvmeArgumentError({ operation: "open", field: "nsid", value: nsid, rule: "a namespace id is an integer 1..0xfffffffe" })
      )
    }

    // The fd: O_RDWR, or O_RDONLY when writing is refused (read-only use).
    const opened = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          return { fd: fsSync.openSync(devicePath, fsSync.constants.O_RDWR), readOnly: false, errno: 0 }
        } catch (e) {
          const errno = -((e as { errno?: number }).errno ?? -EACCES)
          if (errno !== EACCES && errno !== EPERM && errno !== EROFS) return { fd: -1, readOnly: false, errno }
          try {
            return { fd: fsSync.openSync(devicePath, fsSync.constants.O_RDONLY), readOnly: true, errno: 0 }
          } catch (e2) {
            return { fd: -1, readOnly: false, errno: -((e2 as { errno?: number }).errno ?? -EACCES) }
          }
        }
      }),
      (o) => Effect.sync(() => o.fd >= 0 && fsSync.closeSync(o.fd))
    )
    if (opened.fd < 0) {
      return yield* opened.errno === EACCES || opened.errno === EPERM
        ? unavailable("PermissionDenied", `opening ${devicePath} failed with ${Ring.errnoName(opened.errno)} (NVMe char devices are usually root-only)`)
        : unavailable("NoDevice", `opening ${devicePath} failed with ${Ring.errnoName(opened.errno)}; ${NEEDS}`)
    }
    const { fd, readOnly } = opened

    const ring = yield* Ring.makeWide(options.entries ?? 32).pipe(
      Effect.catchTag("WideRingError", (e) =>
        unavailable(
          "RingUnsupported",
          `${e.message}: ${e.errno === 22 ? "this kernel has no 128-byte SQE / 32-byte CQE rings" : "io_uring is not usable here"}; ${NEEDS}`
        ))
    )

    // Identify Namespace (admin, CNS 0) into a page-aligned 4096-byte buffer.
    const id = alignedBuffer(4096)
    yield* execute(ring, fd, identifyNamespace({ nsid, addr: id.address, dataLen: 4096 }), id.raw).pipe(
      Effect.catchIf(
        (e): e is NvmeCommandError => e._tag === "NvmeCommandError" && (e.errno === EOPNOTSUPP || e.errno === 25 /* ENOTTY */),
        (e) => unavailable("NotNvme", `${devicePath} does not take NVMe passthrough commands (${Ring.errnoName(e.errno)}); ${NEEDS}`)
      )
    )
    const namespace = parseIdentifyNamespace(id.view)
    if (namespace === undefined) {
      return yield* unavailable(
        "NotNvme",
        `Identify Namespace ${nsid} on ${devicePath} completed but returned no usable namespace data ` +
          `(zero size or invalid LBA format); ${NEEDS}`
      )
    }
    if (namespace.metadataSize !== 0) {
      return yield* unavailable(
        "UnsupportedFormat",
        `namespace ${nsid} uses LBA format ${namespace.formatIndex} with ${namespace.metadataSize} metadata bytes per block ` +
          `(${namespace.extendedMetadata ? "interleaved" : "separate buffer"}); only formats without metadata are supported`
      )
    }
    const m = /^ng(\d+)n(\d+)$/.exec(sysName ?? path.basename(devicePath))
    const hwKb = m === null ? undefined : readSysfsNumber(`/sys/block/nvme${m[1]}n${m[2]}/queue/max_hw_sectors_kb`)
    const maxTransferBytes = hwKb === undefined ? 128 * 1024 : hwKb * 1024
    return makeDevice({ ring, fd, path: devicePath, nsid, readOnly, namespace, maxTransferBytes })
  })

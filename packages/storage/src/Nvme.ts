/**
 * NVMe passthrough over io_uring (IORING_OP_URING_CMD on an NVMe generic char device
 * `/dev/ngXnY`, kernel 5.19+): the byte encoding of `struct nvme_uring_cmd`, the 128-byte SQE
 * that carries it, decoding of NVMe completion statuses, and device detection.
 *
 * What exists today is the pure part (encoding and decoding, tested byte for byte against
 * `<linux/nvme_ioctl.h>`) and detection. Submitting needs a ring set up with
 * IORING_SETUP_SQE128 | IORING_SETUP_CQE32, which ringline's driver does not create yet, so
 * {@link open} always fails with {@link NvmeUnavailable} saying which piece is missing.
 *
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"

/**
 * `cmd_op` of an NVMe I/O command: `_IOWR('N', 0x80, struct nvme_uring_cmd)` on x86_64/arm64.
 *
 * @since 0.1.0
 * @category constants
 */
export const NVME_URING_CMD_IO = 0xc0484e80
/**
 * `cmd_op` of an NVMe admin command: `_IOWR('N', 0x82, struct nvme_uring_cmd)`.
 *
 * @since 0.1.0
 * @category constants
 */
export const NVME_URING_CMD_ADMIN = 0xc0484e82
/**
 * Size of `struct nvme_uring_cmd` in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const CMD_BYTES = 72
/**
 * Byte offset of the command area (`sqe->cmd`) in a 128-byte SQE.
 *
 * @since 0.1.0
 * @category constants
 */
export const SQE_CMD_OFFSET = 48

/**
 * NVMe opcodes used here: admin Identify, and the NVM command set's Flush, Write and Read.
 *
 * @since 0.1.0
 * @category constants
 */
export const Opcode = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  ADMIN_IDENTIFY: 0x06
} as const

/**
 * One passthrough command: the fields of `struct nvme_uring_cmd` plus whether it goes to the
 * admin or the I/O queue (which picks `cmd_op`). Numbers are u32 unless noted; `metadata` and
 * `addr` are u64 addresses (numbers below 2^53, or bigints).
 *
 * @since 0.1.0
 * @category models
 */
export interface Command {
  readonly queue: "admin" | "io"
  /** u8 */
  readonly opcode: number
  /** u8 */
  readonly flags?: number
  readonly nsid: number
  readonly cdw2?: number
  readonly cdw3?: number
  readonly metadata?: number | bigint
  readonly addr?: number | bigint
  readonly metadataLen?: number
  readonly dataLen?: number
  readonly cdw10?: number
  readonly cdw11?: number
  readonly cdw12?: number
  readonly cdw13?: number
  readonly cdw14?: number
  readonly cdw15?: number
  readonly timeoutMs?: number
}

/**
 * The `cmd_op` for a command's queue.
 *
 * @since 0.1.0
 * @category encoding
 */
export const cmdOp = (cmd: Command): number => cmd.queue === "admin" ? NVME_URING_CMD_ADMIN : NVME_URING_CMD_IO

const u64 = (v: number | bigint | undefined): bigint => {
  const b = BigInt(v ?? 0)
  if (b < 0n || b > 0xffffffffffffffffn) throw new RangeError(`not a u64: ${v}`)
  return b
}

const u32 = (name: string, v: number | undefined): number => {
  const n = v ?? 0
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${name} is not a u32: ${v}`)
  return n
}

/**
 * Encodes `struct nvme_uring_cmd` (72 bytes, little-endian):
 * opcode u8 @0, flags u8 @1, rsvd1 u16 @2, nsid @4, cdw2 @8, cdw3 @12, metadata u64 @16,
 * addr u64 @24, metadata_len @32, data_len @36, cdw10..cdw15 @40..60, timeout_ms @64, rsvd2 @68.
 * Writes into `into` at `offset` when given (e.g. straight into an SQE), else a new array.
 * Throws RangeError for a field out of range.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (cmd: Command, into?: Uint8Array, offset = 0): Uint8Array => {
  const out = into ?? new Uint8Array(CMD_BYTES)
  if (!Number.isInteger(cmd.opcode) || cmd.opcode < 0 || cmd.opcode > 0xff) throw new RangeError(`opcode is not a u8: ${cmd.opcode}`)
  const flags = cmd.flags ?? 0
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) throw new RangeError(`flags is not a u8: ${flags}`)
  const v = new DataView(out.buffer, out.byteOffset + offset, CMD_BYTES)
  for (let i = 0; i < CMD_BYTES; i += 4) v.setUint32(i, 0, true)
  v.setUint8(0, cmd.opcode)
  v.setUint8(1, flags)
  v.setUint32(4, u32("nsid", cmd.nsid), true)
  v.setUint32(8, u32("cdw2", cmd.cdw2), true)
  v.setUint32(12, u32("cdw3", cmd.cdw3), true)
  v.setBigUint64(16, u64(cmd.metadata), true)
  v.setBigUint64(24, u64(cmd.addr), true)
  v.setUint32(32, u32("metadataLen", cmd.metadataLen), true)
  v.setUint32(36, u32("dataLen", cmd.dataLen), true)
  v.setUint32(40, u32("cdw10", cmd.cdw10), true)
  v.setUint32(44, u32("cdw11", cmd.cdw11), true)
  v.setUint32(48, u32("cdw12", cmd.cdw12), true)
  v.setUint32(52, u32("cdw13", cmd.cdw13), true)
  v.setUint32(56, u32("cdw14", cmd.cdw14), true)
  v.setUint32(60, u32("cdw15", cmd.cdw15), true)
  v.setUint32(64, u32("timeoutMs", cmd.timeoutMs), true)
  return out
}

/**
 * Identify (admin 0x06) with CNS 0: the Identify Namespace data structure of `nsid` (4096 bytes)
 * into the buffer at `addr`.
 *
 * @since 0.1.0
 * @category commands
 */
export const identifyNamespace = (options: { readonly nsid: number; readonly addr: number | bigint; readonly dataLen?: number }): Command => ({
  queue: "admin",
  opcode: Opcode.ADMIN_IDENTIFY,
  nsid: options.nsid,
  addr: options.addr,
  dataLen: options.dataLen ?? 4096,
  cdw10: 0 // CNS 0: Identify Namespace
})

/**
 * Options of {@link read} and {@link write}: `blocks` logical blocks (1..65536) starting at
 * logical block `slba`, to or from `dataLen` bytes at `addr`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RwOptions {
  readonly nsid: number
  readonly slba: number | bigint
  readonly blocks: number
  readonly addr: number | bigint
  readonly dataLen: number
}

const rw = (opcode: number, o: RwOptions): Command => {
  const slba = u64(o.slba)
  if (!Number.isInteger(o.blocks) || o.blocks < 1 || o.blocks > 65536) {
    throw new RangeError(`blocks must be 1..65536 (NLB is block count - 1 in 16 bits): ${o.blocks}`)
  }
  return {
    queue: "io",
    opcode,
    nsid: o.nsid,
    addr: o.addr,
    dataLen: o.dataLen,
    cdw10: Number(slba & 0xffffffffn),
    cdw11: Number(slba >> 32n),
    cdw12: (o.blocks - 1) & 0xffff
  }
}

/**
 * NVM Read (0x02): SLBA in cdw10 (low 32 bits) and cdw11 (high 32), NLB = blocks - 1 in the low
 * 16 bits of cdw12.
 *
 * @since 0.1.0
 * @category commands
 */
export const read = (options: RwOptions): Command => rw(Opcode.READ, options)

/**
 * NVM Write (0x01), laid out like {@link read}.
 *
 * @since 0.1.0
 * @category commands
 */
export const write = (options: RwOptions): Command => rw(Opcode.WRITE, options)

/**
 * NVM Flush (0x00) of namespace `nsid`.
 *
 * @since 0.1.0
 * @category commands
 */
export const flush = (options: { readonly nsid: number }): Command => ({ queue: "io", opcode: Opcode.FLUSH, nsid: options.nsid })

/**
 * A complete 128-byte SQE (IORING_SETUP_SQE128 ring) for `cmd`: IORING_OP_URING_CMD (46) @0,
 * flags @1 (IOSQE_FIXED_FILE when `fixed`), fd or fixed index @4, cmd_op @8, user_data @32, and
 * the command at {@link SQE_CMD_OFFSET}.
 *
 * @since 0.1.0
 * @category encoding
 */
export const sqe128 = (cmd: Command, options: { readonly fd: number; readonly fixed?: boolean; readonly userData?: bigint }): Uint8Array => {
  const out = new Uint8Array(128)
  const v = new DataView(out.buffer)
  v.setUint8(0, 46)
  v.setUint8(1, options.fixed ? 1 : 0)
  v.setInt32(4, options.fd, true)
  v.setUint32(8, cmdOp(cmd), true)
  v.setBigUint64(32, options.userData ?? 0n, true)
  encode(cmd, out, SQE_CMD_OFFSET)
  return out
}

// ---- completion status ------------------------------------------------------------------------

/**
 * Status code types (SCT) of the NVMe completion status field.
 *
 * @since 0.1.0
 * @category status
 */
export type StatusCodeType = "Generic" | "CommandSpecific" | "MediaAndDataIntegrity" | "PathRelated" | "VendorSpecific" | "Reserved"

const SCT_NAMES: ReadonlyArray<StatusCodeType> = [
  "Generic",
  "CommandSpecific",
  "MediaAndDataIntegrity",
  "PathRelated",
  "Reserved",
  "Reserved",
  "Reserved",
  "VendorSpecific"
]

const GENERIC: Record<number, string> = {
  0x00: "Successful Completion",
  0x01: "Invalid Command Opcode",
  0x02: "Invalid Field in Command",
  0x03: "Command ID Conflict",
  0x04: "Data Transfer Error",
  0x05: "Commands Aborted due to Power Loss Notification",
  0x06: "Internal Error",
  0x07: "Command Abort Requested",
  0x08: "Command Aborted due to SQ Deletion",
  0x09: "Command Aborted due to Failed Fused Command",
  0x0a: "Command Aborted due to Missing Fused Command",
  0x0b: "Invalid Namespace or Format",
  0x0c: "Command Sequence Error",
  0x0d: "Invalid SGL Segment Descriptor",
  0x0f: "Invalid Data SGL Length",
  0x15: "Operation Denied",
  0x80: "LBA Out of Range",
  0x81: "Capacity Exceeded",
  0x82: "Namespace Not Ready",
  0x83: "Reservation Conflict",
  0x84: "Format In Progress"
}

const COMMAND_SPECIFIC: Record<number, string> = {
  0x00: "Completion Queue Invalid",
  0x01: "Invalid Queue Identifier",
  0x02: "Invalid Queue Size",
  0x0b: "Invalid Namespace or Format",
  0x80: "Conflicting Attributes",
  0x81: "Invalid Protection Information",
  0x82: "Attempted Write to Read Only Range"
}

const MEDIA: Record<number, string> = {
  0x80: "Write Fault",
  0x81: "Unrecovered Read Error",
  0x82: "End-to-end Guard Check Error",
  0x83: "End-to-end Application Tag Check Error",
  0x84: "End-to-end Reference Tag Check Error",
  0x85: "Compare Failure",
  0x86: "Access Denied",
  0x87: "Deallocated or Unwritten Logical Block"
}

const PATH: Record<number, string> = {
  0x00: "Internal Path Error",
  0x01: "Asymmetric Access Persistent Loss",
  0x02: "Asymmetric Access Inaccessible",
  0x03: "Asymmetric Access Transition",
  0x60: "Controller Pathing Error",
  0x70: "Host Pathing Error",
  0x71: "Command Aborted By Host"
}

/**
 * A decoded NVMe status field (the 15 bits the kernel returns as a positive CQE `res`):
 * SC bits 0-7, SCT bits 8-10, CRD bits 11-12, More bit 13, DNR bit 14.
 *
 * @since 0.1.0
 * @category status
 */
export interface Status {
  readonly raw: number
  readonly statusCodeType: number
  readonly statusCodeTypeName: StatusCodeType
  readonly statusCode: number
  /** The specification's name for the code, or "Unknown (SCT x, SC 0xNN)". */
  readonly description: string
  readonly commandRetryDelay: number
  readonly more: boolean
  readonly doNotRetry: boolean
}

/**
 * Decodes a status field.
 *
 * @since 0.1.0
 * @category status
 */
export const decodeStatus = (raw: number): Status => {
  const statusCode = raw & 0xff
  const statusCodeType = (raw >>> 8) & 0x7
  const table = statusCodeType === 0 ? GENERIC : statusCodeType === 1 ? COMMAND_SPECIFIC : statusCodeType === 2 ? MEDIA : statusCodeType === 3 ? PATH : undefined
  const name = table?.[statusCode]
  return {
    raw,
    statusCodeType,
    statusCodeTypeName: SCT_NAMES[statusCodeType]!,
    statusCode,
    description: name ?? `Unknown (SCT ${statusCodeType}, SC 0x${statusCode.toString(16).padStart(2, "0")})`,
    commandRetryDelay: (raw >>> 11) & 0x3,
    more: ((raw >>> 13) & 1) === 1,
    doNotRetry: ((raw >>> 14) & 1) === 1
  }
}

/**
 * The device completed the command with a non-zero NVMe status (a positive CQE result).
 *
 * @since 0.1.0
 * @category errors
 */
export class NvmeStatusError extends Data.TaggedError("NvmeStatusError")<{
  readonly opcode: number
  readonly status: Status
}> {
  override get message(): string {
    const s = this.status
    return `NVMe command 0x${this.opcode.toString(16).padStart(2, "0")} failed: ${s.description} ` +
      `(SCT ${s.statusCodeType} ${s.statusCodeTypeName}, SC 0x${s.statusCode.toString(16).padStart(2, "0")}` +
      `${s.doNotRetry ? ", do not retry" : ""})`
  }
}

/**
 * The kernel failed the passthrough itself (a negative CQE result: EINVAL, EOPNOTSUPP, EACCES...).
 *
 * @since 0.1.0
 * @category errors
 */
export class NvmeCommandError extends Data.TaggedError("NvmeCommandError")<{
  readonly opcode: number
  readonly errno: number
}> {
  override get message(): string {
    return `NVMe passthrough of command 0x${this.opcode.toString(16).padStart(2, "0")} failed in the kernel: errno ${this.errno}`
  }
}

/**
 * Interprets the CQE result of a passthrough command: 0 succeeds, a positive value is an NVMe
 * status ({@link NvmeStatusError}), a negative one an errno ({@link NvmeCommandError}).
 *
 * @since 0.1.0
 * @category status
 */
export const checkResult = (opcode: number, res: number): Effect.Effect<void, NvmeStatusError | NvmeCommandError> =>
  res === 0
    ? Effect.void
    : res > 0
    ? Effect.fail(new NvmeStatusError({ opcode, status: decodeStatus(res) }))
    : Effect.fail(new NvmeCommandError({ opcode, errno: -res }))

// ---- devices ------------------------------------------------------------------------------------

/**
 * Why NVMe passthrough cannot be used.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnavailableReason = "NoDevice" | "NotCharDevice" | "KernelTooOld" | "RingUnsupported"

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
 * Opens an NVMe generic char device for passthrough. Today this always fails with
 * {@link NvmeUnavailable}: `NoDevice` / `NotCharDevice` when `path` is not an NVMe char device,
 * `KernelTooOld` before 5.19, and otherwise `RingUnsupported`, because ringline's rings use
 * 64-byte SQEs and 16-byte CQEs while NVMe passthrough needs SQE128 | CQE32.
 *
 * @since 0.1.0
 * @category devices
 */
export const open = (path: string): Effect.Effect<never, NvmeUnavailable> =>
  Effect.gen(function*() {
    const stat = yield* Effect.promise(() => fs.stat(path).then((s) => s, () => undefined))
    if (stat === undefined) {
      const present = yield* devices
      return yield* Effect.fail(
        new NvmeUnavailable({
          path,
          reason: "NoDevice",
          detail: `${path} does not exist (NVMe char devices here: ${present.length === 0 ? "none" : present.join(", ")}); ${NEEDS}`
        })
      )
    }
    if (!stat.isCharacterDevice()) {
      return yield* Effect.fail(
        new NvmeUnavailable({ path, reason: "NotCharDevice", detail: `${path} is not a character device; ${NEEDS}` })
      )
    }
    if (!kernelAtLeast(5, 19)) {
      return yield* Effect.fail(
        new NvmeUnavailable({ path, reason: "KernelTooOld", detail: `kernel ${os.release()} is older than 5.19; ${NEEDS}` })
      )
    }
    return yield* Effect.fail(
      new NvmeUnavailable({
        path,
        reason: "RingUnsupported",
        detail: "ringline's rings use 64-byte SQEs and 16-byte CQEs; passthrough needs a ring set up with " +
          "IORING_SETUP_SQE128 | IORING_SETUP_CQE32, which is not implemented yet"
      })
    )
  })

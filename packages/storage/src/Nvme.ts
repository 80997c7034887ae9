/**
 * NVMe passthrough over io_uring (IORING_OP_URING_CMD on an NVMe generic char device
 * `/dev/ngXnY`, kernel 5.19+): the byte encoding of `struct nvme_uring_cmd`, the 128-byte SQE
 * that carries it, decoding of NVMe completion statuses, device detection, and {@link open},
 * which submits Identify / Read / Write / Flush on a ring of its own.
 *
 * Passthrough needs IORING_SETUP_SQE128 | IORING_SETUP_CQE32, which ringline's main ring (64-byte
 * SQEs) does not use, so {@link open} sets up a small dedicated ring (`Ring.makeWide`) for
 * the lifetime of its scope, driven by the same event loop. Without a device, or on an older
 * kernel, {@link open} fails with {@link NvmeUnavailable} saying what is missing.
 *
 * @since 0.1.0
 */
import { Ring } from "@ringline/core"
import { Data, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

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
export const SQE_CMD_OFFSET = Ring.SqeOffset.addr3

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
  v.setUint8(Ring.SqeOffset.opcode, Ring.Op.URING_CMD)
  v.setUint8(Ring.SqeOffset.flags, options.fixed ? Ring.SqeFlag.FIXED_FILE : 0)
  v.setInt32(Ring.SqeOffset.fd, options.fd, true)
  v.setUint32(Ring.SqeOffset.off, cmdOp(cmd), true) // cmd_op shares the `off` union
  v.setBigUint64(Ring.SqeOffset.userData, options.userData ?? 0n, true)
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
    return `NVMe passthrough of command 0x${this.opcode.toString(16).padStart(2, "0")} failed in the kernel: ${Ring.errnoName(this.errno)} (errno ${this.errno})`
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
 * An argument of a device operation is out of range; `field` names it and `rule` states the rule.
 *
 * @since 0.1.0
 * @category errors
 */
export class NvmeArgumentError extends Data.TaggedError("NvmeArgumentError")<{
  readonly operation: "open" | "read" | "write"
  readonly field: string
  readonly value: unknown
  readonly rule: string
}> {
  override get message(): string {
    return `invalid ${this.field} for NVMe ${this.operation}: ${String(this.value)} (${this.rule})`
  }
}

/**
 * What a device operation can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type NvmeError = NvmeStatusError | NvmeCommandError | NvmeArgumentError

// ---- identify ---------------------------------------------------------------------------------

/**
 * What ringline uses of the Identify Namespace data structure (CNS 0).
 *
 * @since 0.1.0
 * @category models
 */
export interface NamespaceInfo {
  /** NSZE: size of the namespace in logical blocks. */
  readonly blocks: number
  /** NCAP: blocks that may be allocated at once. */
  readonly capacity: number
  /** The LBA format in use (FLBAS bits 0-3, plus bits 5-6 as the high bits when NLBAF > 16). */
  readonly formatIndex: number
  /** 2^LBADS bytes. */
  readonly blockSize: number
  /** MS: metadata bytes per block (0 for plain formats). */
  readonly metadataSize: number
  /** FLBAS bit 4: metadata is interleaved with the data. */
  readonly extendedMetadata: boolean
}

/**
 * Parses an Identify Namespace data structure (4096 bytes): NSZE @0, NCAP @8 (u64), NLBAF @25
 * (0-based count of formats), FLBAS @26, LBA format i at 128 + 4·i (MS bits 0-15, LBADS bits
 * 16-23). Returns undefined when the data does not describe a usable namespace (NSZE 0, an LBA
 * format index beyond NLBAF, or LBADS outside 9..31): e.g. the all-zero buffer a device that
 * ignores the command leaves behind.
 *
 * @since 0.1.0
 * @category identify
 */
export const parseIdentifyNamespace = (data: Uint8Array): NamespaceInfo | undefined => {
  if (data.byteLength < 4096) return undefined
  const v = new DataView(data.buffer, data.byteOffset, 4096)
  const blocks = Number(v.getBigUint64(0, true))
  const capacity = Number(v.getBigUint64(8, true))
  const nlbaf = v.getUint8(25)
  const flbas = v.getUint8(26)
  const formatIndex = (flbas & 0xf) | (nlbaf >= 16 ? ((flbas >> 5) & 0x3) << 4 : 0)
  if (blocks === 0 || formatIndex > nlbaf) return undefined
  const lbaf = v.getUint32(128 + 4 * formatIndex, true)
  const lbads = (lbaf >>> 16) & 0xff
  if (lbads < 9 || lbads > 31) return undefined
  return {
    blocks,
    capacity,
    formatIndex,
    blockSize: 2 ** lbads,
    metadataSize: lbaf & 0xffff,
    extendedMetadata: (flbas & 0x10) !== 0
  }
}

/**
 * The namespace id in an NVMe generic char device name: `/dev/ngXnY` → Y; undefined for other names.
 *
 * @since 0.1.0
 * @category devices
 */
export const namespaceId = (devicePath: string): number | undefined => {
  const m = /^ng\d+n(\d+)$/.exec(path.basename(devicePath))
  if (m === null) return undefined
  const n = Number(m[1])
  return n >= 1 && n <= 0xfffffffe ? n : undefined
}

// ---- open ---------------------------------------------------------------------------------------

/**
 * An open NVMe namespace. Operations go through the passthrough ring of the scope that opened
 * it; blocks are `blockSize` bytes, logical block addresses run from 0 to `blocks - 1`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Device {
  readonly path: string
  readonly nsid: number
  readonly blockSize: number
  readonly blocks: number
  /** Opened O_RDONLY (O_RDWR was refused): writes fail with EBADF. */
  readonly readOnly: boolean
  /** Largest transfer of one command (the queue's max_hw_sectors_kb, else 128 KiB). */
  readonly maxTransferBytes: number
  /** ring setup mode of the passthrough ring ("defer-taskrun", "coop-taskrun" or "plain"). */
  readonly ringMode: string
  /** The namespace's Identify data as read at open. */
  readonly namespace: NamespaceInfo
  /** Reads `blockCount` (1..65536) blocks starting at `lba`. */
  read(lba: number | bigint, blockCount: number): Effect.Effect<Uint8Array, NvmeError>
  /** Writes `data` (a non-empty multiple of blockSize, at most 65536 blocks) starting at `lba`. */
  write(lba: number | bigint, data: Uint8Array): Effect.Effect<void, NvmeError>
  /** NVM Flush: makes completed writes durable. */
  readonly flush: Effect.Effect<void, NvmeError>
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

const EBADF = 9
const EACCES = 13
const EPERM = 1
const EROFS = 30
const EOPNOTSUPP = 95
const PAGE = 4096
const MAX_BLOCKS = 65536

/** A page-aligned view of `bytes` bytes (device DMA is then never bounced); `raw` must stay alive. */
const alignedBuffer = (bytes: number) => {
  const raw = new Uint8Array(bytes + PAGE)
  const base = Ring.addressOf(raw)
  const pad = (PAGE - (base % PAGE)) % PAGE
  return { raw, view: raw.subarray(pad, pad + bytes), address: base + pad }
}

/** Submits one passthrough command and checks its CQE result. */
const execute = (
  ring: Ring.WideRing,
  fd: number,
  cmd: Command,
  hold: Ring.Hold
): Effect.Effect<Ring.Completion, NvmeStatusError | NvmeCommandError> =>
  ring.submit(sqe128(cmd, { fd }), hold).pipe(
    // The ring's scope is over: the device is closed, as a read(2) on a closed fd would say.
    Effect.catchTag("WideRingClosed", () => Effect.fail(new NvmeCommandError({ opcode: cmd.opcode, errno: EBADF }))),
    Effect.tap((c) => checkResult(cmd.opcode, c.res))
  )

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

/**
 * Builds the {@link Device} handle over an fd already open on a namespace whose Identify data is
 * known, submitting through `ring`. {@link open} uses it after detection and Identify; exported
 * for tests (which drive it over /dev/null, whose URING_CMD handler completes every command with 0).
 *
 * @since 0.1.0
 * @category internal
 */
export const makeDevice = (options: {
  readonly ring: Ring.WideRing
  readonly fd: number
  readonly path: string
  readonly nsid: number
  readonly readOnly: boolean
  readonly namespace: NamespaceInfo
  readonly maxTransferBytes: number
}): Device => {
  const { fd, namespace, nsid, readOnly, ring } = options
  const devicePath = options.path
  const { blockSize, blocks } = namespace
  const maxTransferBytes = Math.max(blockSize, Math.min(options.maxTransferBytes, MAX_BLOCKS * blockSize))
  const chunkBlocks = Math.max(1, Math.floor(maxTransferBytes / blockSize))

  const checkRange = (operation: "read" | "write", lba: number | bigint, count: number, countField: string) => {
    if (typeof lba === "number" ? !Number.isSafeInteger(lba) || lba < 0 : typeof lba !== "bigint" || lba < 0n) {
      return Effect.fail(new NvmeArgumentError({ operation, field: "lba", value: lba, rule: "a non-negative integer" }))
    }
    if (!Number.isInteger(count) || count < 1 || count > MAX_BLOCKS) {
      return Effect.fail(
        new NvmeArgumentError({ operation, field: countField, value: count, rule: `1..${MAX_BLOCKS} blocks of ${blockSize} bytes` })
      )
    }
    const start = BigInt(lba)
    if (start + BigInt(count) > BigInt(blocks)) {
      return Effect.fail(
        new NvmeArgumentError({ operation, field: "lba", value: lba, rule: `lba + ${count} blocks must not exceed the namespace's ${blocks} blocks` })
      )
    }
    return Effect.succeed(start)
  }

  // Splits [start, start + count) into commands of at most chunkBlocks blocks.
  const transfer = (op: typeof read, start: bigint, count: number, buf: ReturnType<typeof alignedBuffer>) => {
    const parts: Array<number> = []
    for (let first = 0; first < count; first += chunkBlocks) parts.push(first)
    return Effect.forEach(
      parts,
      (first) => {
        const n = Math.min(chunkBlocks, count - first)
        return execute(
          ring,
          fd,
          op({ nsid, slba: start + BigInt(first), blocks: n, addr: buf.address + first * blockSize, dataLen: n * blockSize }),
          buf.raw
        )
      },
      { concurrency: 4, discard: true }
    )
  }

  const device: Device = {
    path: devicePath,
    nsid,
    blockSize,
    blocks,
    readOnly,
    maxTransferBytes,
    ringMode: ring.mode,
    namespace,
    read: (lba, blockCount) =>
      Effect.suspend(() =>
        Effect.flatMap(checkRange("read", lba, blockCount, "blockCount"), (start) => {
          const buf = alignedBuffer(blockCount * blockSize)
          return transfer(read, start, blockCount, buf).pipe(Effect.as(buf.view))
        })
      ),
    write: (lba, data) =>
      Effect.suspend(() => {
        if (!(data instanceof Uint8Array) || data.byteLength === 0 || data.byteLength % blockSize !== 0) {
          return Effect.fail(
            new NvmeArgumentError({
              operation: "write",
              field: "data",
              value: data instanceof Uint8Array ? `${data.byteLength} bytes` : typeof data,
              rule: `a non-empty Uint8Array whose length is a multiple of the block size ${blockSize}`
            })
          )
        }
        // Root may pass writes through a read-only fd; refuse as write(2) would.
        if (readOnly) return Effect.fail(new NvmeCommandError({ opcode: Opcode.WRITE, errno: EBADF }))
        const count = data.byteLength / blockSize
        return Effect.flatMap(checkRange("write", lba, count, "data"), (start) => {
          const buf = alignedBuffer(data.byteLength)
          buf.view.set(data)
          return transfer(write, start, count, buf)
        })
      }),
    flush: Effect.suspend(() => execute(ring, fd, flush({ nsid }), undefined)).pipe(Effect.asVoid)
  }
  return device
}

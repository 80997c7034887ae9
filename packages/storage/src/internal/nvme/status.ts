/**
 * NVMe completion statuses: decoding the status field a passthrough CQE carries, and the typed
 * errors a command fails with.
 */
import { Ring } from "@ringline/core"
import { Data, Effect } from "effect"

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

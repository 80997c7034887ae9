/**
 * The byte encoding of an NVMe passthrough command: `struct nvme_uring_cmd`, the commands
 * ringline issues (Identify, Read, Write, Flush) and the 128-byte SQE that carries one.
 */
import { Ring } from "@ringline/core"

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

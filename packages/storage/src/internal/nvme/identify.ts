/**
 * Namespace facts: the Identify Namespace data structure and the namespace id in a generic
 * char device's name.
 */
import * as path from "node:path"

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

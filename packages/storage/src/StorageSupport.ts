/**
 * Which storage operations the running kernel supports on the ring.
 *
 * @since 0.1.0
 */
import { Ring } from "@ringline/core"
import type { RinglineUnavailable } from "@ringline/core/RinglineError"
import { Effect } from "effect"

const FILE_OPS = [
  "OPENAT",
  "CLOSE",
  "STATX",
  "READ",
  "WRITE",
  "FSYNC",
  "FALLOCATE",
  "RENAMEAT",
  "UNLINKAT",
  "MKDIRAT",
  "READ_FIXED",
  "WRITE_FIXED",
  "URING_CMD",
  "FTRUNCATE"
] as const satisfies ReadonlyArray<Ring.OpName>

/**
 * @since 0.1.0
 * @category models
 */
export type FileOp = typeof FILE_OPS[number]

/**
 * For every storage opcode, whether this kernel supports it (IORING_REGISTER_PROBE on a small
 * throwaway ring, see `Ring.probeOpcodes`).
 *
 * @since 0.1.0
 * @category probes
 */
export const probe: Effect.Effect<Record<FileOp, boolean>, RinglineUnavailable> = Effect.map(
  Ring.probeOpcodes,
  (supported) => Object.fromEntries(FILE_OPS.map((name) => [name, supported[Ring.Op[name]] === 1])) as Record<FileOp, boolean>
)

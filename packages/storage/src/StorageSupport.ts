/**
 * Which storage operations the running kernel supports on the ring.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { load } from "@ringline/core/internal/native"

const FILE_OPS = {
  OPENAT: 18,
  CLOSE: 19,
  STATX: 21,
  READ: 22,
  WRITE: 23,
  FSYNC: 3,
  FALLOCATE: 17,
  RENAMEAT: 35,
  UNLINKAT: 36,
  MKDIRAT: 37,
  READ_FIXED: 4,
  WRITE_FIXED: 5,
  URING_CMD: 46,
  FTRUNCATE: 55
} as const

/**
 * @since 0.1.0
 * @category models
 */
export type FileOp = keyof typeof FILE_OPS

/**
 * The smallest ring the addon accepts: enough to probe opcodes or register a pool, nothing more.
 *
 * @since 0.1.0
 * @category constants
 */
export const probeRingOptions = {
  sqEntries: 2,
  cqEntries: 8,
  bufferCount: 1,
  bufferSize: 1,
  files: 0,
  sendPoolBytes: 1,
  argBytes: 1,
  sqpoll: false,
  sqpollIdleMs: 0
} as const

/**
 * For every storage opcode, whether this kernel supports it (IORING_REGISTER_PROBE on a small
 * throwaway ring).
 *
 * @since 0.1.0
 * @category probes
 */
export const probe = Effect.gen(function*() {
  const native = load()
  const ring = yield* Effect.acquireRelease(
    Effect.try(() => new native.Ring(probeRingOptions, () => {})),
    (r) => Effect.sync(() => r.close())
  )
  const ops = ring.info().opcodes
  return Object.fromEntries(Object.entries(FILE_OPS).map(([name, op]) => [name, ops[op] === 1])) as Record<FileOp, boolean>
}).pipe(Effect.scoped)


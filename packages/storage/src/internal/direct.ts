/**
 * O_DIRECT files on the ring: OPENAT straight into the fixed-file table, STATX for the direct I/O
 * alignment, READ_FIXED / WRITE_FIXED through one registered, page-aligned pool per ring, FSYNC,
 * and CLOSE of the fixed slot.
 *
 * The pool (Ring.registerDirectPool, fixed buffer 0) is cut into equal page-aligned chunks; an op
 * borrows one chunk from submission until its terminal CQE, so an interrupted read can never
 * have the kernel write into a chunk someone else already reuses. Requests larger than a chunk
 * are done chunk by chunk. Callers with no free chunk wait in FIFO order.
 */
import { Ring } from "@ringline/core"
import { Data, Effect } from "effect"
import { constants } from "node:fs"
import { AT_FDCWD, cString, statxRaw } from "./ops.js"

export const { O_CREAT, O_DIRECT, O_EXCL, O_RDWR, O_TRUNC, O_WRONLY } = constants
export const STATX_DIOALIGN = 0x2000
export const STATX_SIZE = 0x200
/** Offsets in struct statx, checked against <linux/stat.h> with offsetof. */
export const STX_MASK = 0
export const STX_BLKSIZE = 4
export const STX_SIZE = 40
export const STX_DIO_MEM_ALIGN = 152
export const STX_DIO_OFFSET_ALIGN = 156

const EINVAL = 22

// ---- errors -------------------------------------------------------------------------------------

/**
 * A direct I/O request broke the alignment rule of the file's filesystem: the file offset and the
 * length must be multiples of `offsetAlign` (stx_dio_offset_align) and the memory address of
 * `memoryAlign` (stx_dio_mem_align).
 */
export class AlignmentError extends Data.TaggedError("AlignmentError")<{
  readonly path: string
  readonly operation: "read" | "write"
  readonly field: "offset" | "length" | "memory"
  readonly value: number
  readonly required: number
  readonly offsetAlign: number
  readonly memoryAlign: number
}> {
  override get message(): string {
    return `${this.operation} on ${this.path}: ${this.field} ${this.value} is not a multiple of ${this.required}; ` +
      `with O_DIRECT the file offset and the length must be multiples of ${this.offsetAlign} ` +
      `and the buffer address a multiple of ${this.memoryAlign} (statx stx_dio_offset_align / stx_dio_mem_align)`
  }
}

/**
 * The file (its filesystem) does not do direct I/O: open with O_DIRECT failed with EINVAL, or the
 * filesystem reports no direct I/O alignment (tmpfs, for one, accepts O_DIRECT but is page cache).
 */
export class DirectIoUnsupported extends Data.TaggedError("DirectIoUnsupported")<{
  readonly path: string
  readonly reason: "OpenRefused" | "NoAlignment" | "NoRing"
  readonly detail: string
}> {
  override get message(): string {
    return `direct I/O is unavailable for ${this.path} (${this.reason}): ${this.detail}`
  }
}

/** A direct file operation failed in the kernel (`res < 0`). */
export class DirectFileError extends Data.TaggedError("DirectFileError")<{
  readonly operation: string
  readonly path: string
  readonly errno: number
  readonly code: string
}> {
  override get message(): string {
    return `${this.operation} ${this.path} failed: ${this.code} (errno ${this.errno})`
  }
}

export const fileError = (operation: string, path: string, res: number): DirectFileError =>
  new DirectFileError({ operation, path, errno: Math.abs(res), code: Ring.errnoName(res) })

// ---- the registered pool ----------------------------------------------------------------------

export const DEFAULT_CHUNK = 256 * 1024
export const DEFAULT_CHUNKS = 16

export class DirectPool {
  readonly bytes: Uint8Array
  readonly base: number
  private readonly free: Array<number> = []
  private readonly waiters: Array<(chunk: number) => void> = []

  constructor(readonly ring: Ring.Ring, readonly chunkSize: number, readonly chunks: number) {
    const r = ring.registerBuffers(chunkSize * chunks)
    this.bytes = new Uint8Array(r.buffer)
    this.base = r.base
    for (let i = chunks - 1; i >= 0; i--) this.free.push(i)
  }

  /** A free chunk index, waiting (interruptibly) for one if all are lent. */
  take: Effect.Effect<number> = Effect.suspend(() => {
    const c = this.free.pop()
    if (c !== undefined) return Effect.succeed(c)
    return Effect.async<number>((resume) => {
      const w = (chunk: number) => resume(Effect.succeed(chunk))
      this.waiters.push(w)
      return Effect.sync(() => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) this.waiters.splice(i, 1)
      })
    })
  })

  /** A free chunk index, or -1 if all are lent (no waiting). */
  tryTake(): number {
    return this.free.pop() ?? -1
  }

  give(chunk: number): void {
    const w = this.waiters.shift()
    if (w !== undefined) w(chunk)
    else this.free.push(chunk)
  }

  view(chunk: number, length: number): Uint8Array {
    return this.bytes.subarray(chunk * this.chunkSize, chunk * this.chunkSize + length)
  }

  /** Per chunk, the view `copyOut` used last: reads of one size copy out without a new view. */
  private readonly views: Array<Uint8Array | undefined> = []

  /** Copies the first `length` bytes of `chunk` to the start of `into`. */
  copyOut(chunk: number, into: Uint8Array, length: number): void {
    let v = this.views[chunk]
    if (v === undefined || v.length !== length) v = this.views[chunk] = this.view(chunk, length)
    into.set(v)
  }

  address(chunk: number): number {
    return this.base + chunk * this.chunkSize
  }

  get available(): number {
    return this.free.length
  }
}

const pools = new WeakMap<Ring.Ring, DirectPool>()

/** The ring's pool, registered on first use with the given geometry. */
export const poolFor = (d: Ring.Ring, chunkSize = DEFAULT_CHUNK, chunks = DEFAULT_CHUNKS): DirectPool => {
  let p = pools.get(d)
  if (p === undefined) {
    p = new DirectPool(d, chunkSize, chunks)
    pools.set(d, p)
  }
  return p
}

export const hasPool = (d: Ring.Ring): boolean => pools.has(d)

// ---- open / stat ----------------------------------------------------------------------------------

export interface Alignment {
  readonly memory: number
  readonly offset: number
}

/** STATX(path, STATX_DIOALIGN | STATX_SIZE): the raw struct statx, or a negative errno. */
export const statx = (d: Ring.Ring, path: string) => statxRaw(d, AT_FDCWD, path, 0, STATX_DIOALIGN | STATX_SIZE)

/** OPENAT(path, flags | O_DIRECT) into a kernel-chosen fixed slot; returns the slot or -errno. */
export const openFixed = (d: Ring.Ring, path: string, flags: number, mode: number): Effect.Effect<number> => {
  const name = cString(path)
  return Ring.submitOwned(
    d,
    (slot) => {
      // No O_CLOEXEC: the kernel refuses it (EINVAL) for a fixed-table install, which no exec sees.
      Ring.prepOpenat(d, slot, AT_FDCWD, Ring.addressOf(name), flags | O_DIRECT, mode, Ring.FILE_INDEX_ALLOC)
      return name
    },
    // Opened although the caller was interrupted: nobody will own that slot, so close it now.
    (index) => Ring.closeFixed(d, index),
    () => Effect.void
  )
}

/**
 * Staged device reads/writes are submitted once this many SQEs wait, instead of the driver's
 * `submitBatch` (16 by default) or the end of the loop turn: a device op's latency is what limits
 * IOPS at a fixed queue depth (O_DIRECT, QD 32: about +25 % IOPS against 16, for a few more
 * io_uring_enter calls; sockets keep the larger batch, where it is cheaper and latency is not
 * bound by a device). Used by `forEachRead`, whose next reads are staged from the completions
 * themselves, and by the chunk-by-chunk paths.
 */
export const DEVICE_SUBMIT_BATCH = 4

/**
 * The submit batch of reads that are one Effect each (`readInto`, `read` within a chunk): their
 * fibers, woken by a completion batch, stage their next reads one after another at the end of
 * that batch, and every io_uring_enter that submits device I/O costs a virtio notification (a
 * VM exit on a virtual machine: `iowrite16` was 13.6 % of the process's samples with one submit
 * per read, 4.9 % with 16). Submitting every 4 cost 0.26 enters per read, every 16 about 0.11
 * (the addon also submits what is left with the enter that fetches the next completions).
 * 8, not 16: the host is the bound on this path (block-layer tracepoints, bench/device-depth.mjs:
 * the device sat empty 56-66 % of the time at 16, mean depth 6-8 of the 32 reads in flight), and
 * at 16 a completion batch's first reads wait for the batch's first 16 fibers to run before any
 * of them reaches the device, so the device drains while the host works. At 8 the first half
 * goes out after 8 fibers: device empty 28-54 % of the time, device latency p50 about 125 us
 * instead of 165, for 0.146 enters per read instead of 0.11. Interleaved A/B with
 * storage-cost.mjs (QD 32, five sets of 4-6 pairs at load 2-11): 8 ÷ 16 IOPS per adjacent pair,
 * medians 1.12, 1.44, 0.95, 1.34, 1.07; CPU per read 0.97, 1.05, 1.12, 0.93, 0.98. 4 ÷ 8: IOPS
 * 0.95, CPU per read 1.17 (the extra enters cost system time).
 */
export const EFFECT_SUBMIT_BATCH = 8

/** READ_FIXED or WRITE_FIXED. */
export type FixedRw = typeof Ring.prepReadFixed

/**
 * Stages one READ_FIXED / WRITE_FIXED of `len` bytes at file `offset` from/into pool `chunk`
 * (buf_index 0: the whole pool is one registered iovec), and submits once `submitAt` SQEs wait.
 */
export const stageRw = (
  d: Ring.Ring,
  pool: DirectPool,
  prep: FixedRw,
  slot: number,
  index: number,
  chunk: number,
  offset: number,
  len: number,
  submitAt: number = DEVICE_SUBMIT_BATCH
): void => {
  prep(d, slot, index, pool.address(chunk), len, offset, 0, Ring.SqeFlag.FIXED_FILE)
  if (d.staged >= submitAt) d.submitNow()
}

/** What a direct file's ops need: its ring, the ring's pool, its fixed slot and its path. */
export interface DirectTarget {
  readonly d: Ring.Ring
  readonly pool: DirectPool
  readonly index: number
  readonly path: string
}

/**
 * One READ_FIXED into a pool chunk the caller took, copied out to `out` at the CQE; the chunk
 * goes back at the CQE, also after an interruption (the kernel may write it until then). The
 * read path of `DirectFile.readInto` / `read` when the request fits one chunk: one object per
 * read, see `Ring.Operation`.
 */
export class ReadFixed extends Ring.Operation<number, DirectFileError> {
  constructor(
    readonly target: DirectTarget,
    readonly chunk: number,
    readonly offset: number,
    readonly out: Uint8Array
  ) {
    super()
  }
  prepare(slot: number): void {
    const t = this.target
    stageRw(t.d, t.pool, Ring.prepReadFixed, slot, t.index, this.chunk, this.offset, this.out.length, EFFECT_SUBMIT_BATCH)
  }
  finish(res: number): Effect.Effect<number, DirectFileError> {
    if (res < 0) return Effect.fail(fileError("read", this.target.path, res))
    this.target.pool.copyOut(this.chunk, this.out, res)
    return Effect.succeed(res)
  }
  override always(): void {
    this.target.pool.give(this.chunk)
  }
}

/** One READ_FIXED / WRITE_FIXED as an Effect with the raw CQE result. */
export const rw = (
  d: Ring.Ring,
  pool: DirectPool,
  prep: FixedRw,
  index: number,
  chunk: number,
  offset: number,
  len: number
): Effect.Effect<number> => Ring.submitRaw(d, (slot) => stageRw(d, pool, prep, slot, index, chunk, offset, len))

export const fsync = (d: Ring.Ring, index: number, dataOnly: boolean): Effect.Effect<number> =>
  Ring.submitRaw(d, (slot) => {
    Ring.prepFsync(d, slot, index, dataOnly, Ring.SqeFlag.FIXED_FILE)
  })

export const isEinval = (res: number): boolean => res === -EINVAL

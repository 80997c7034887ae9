/**
 * Files opened with O_DIRECT, read and written through a registered, page-aligned buffer pool
 * with IORING_OP_READ_FIXED / WRITE_FIXED: no page cache, no per-op page pinning.
 *
 * Direct I/O has an alignment rule, which this module reads from the kernel (statx
 * `stx_dio_offset_align` / `stx_dio_mem_align`, STATX_DIOALIGN) and checks before submitting: the
 * file offset and the length of every read and write must be multiples of `alignment.offset`
 * (typically the device's logical block size, 512 or 4096), and the memory of
 * `alignment.memory`. The memory rule always holds here, since the pool is page-aligned; breaking
 * the offset or length rule fails with {@link AlignmentError} before anything reaches the kernel.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DirectFile } from "@ringline/storage"
 *
 * const program = Effect.gen(function*() {
 *   const f = yield* DirectFile.open("/var/lib/app/data.bin", { create: true })
 *   const block = new Uint8Array(f.alignment.offset * 8).fill(7)
 *   yield* f.write(0, block)
 *   yield* f.sync
 *   const back = yield* f.read(0, block.length)
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Ring, type Ringline } from "@ringline/core"
import { Effect, type Scope } from "effect"
import * as internal from "./internal/direct.js"
import * as pipeline from "./internal/pipeline.js"

/**
 * @since 0.1.0
 * @category errors
 */
export const AlignmentError = internal.AlignmentError
/**
 * @since 0.1.0
 * @category errors
 */
export type AlignmentError = internal.AlignmentError

/**
 * @since 0.1.0
 * @category errors
 */
export const DirectIoUnsupported = internal.DirectIoUnsupported
/**
 * @since 0.1.0
 * @category errors
 */
export type DirectIoUnsupported = internal.DirectIoUnsupported

/**
 * @since 0.1.0
 * @category errors
 */
export const DirectFileError = internal.DirectFileError
/**
 * @since 0.1.0
 * @category errors
 */
export type DirectFileError = internal.DirectFileError

/**
 * Direct I/O alignment of a file, in bytes: `offset` for file offsets and lengths, `memory` for
 * buffer addresses.
 *
 * @since 0.1.0
 * @category models
 */
export interface Alignment {
  readonly memory: number
  readonly offset: number
}

/**
 * Options of {@link open}.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** Create the file if missing (default false). */
  readonly create?: boolean
  /** Fail if it exists (with `create`; default false). */
  readonly exclusive?: boolean
  /** Truncate to zero length on open (default false). */
  readonly truncate?: boolean
  /** Permission bits for a created file (default 0o644). */
  readonly mode?: number
  /** Open read-only (default false: read-write). */
  readonly readOnly?: boolean
  /**
   * Geometry of the ring's registered pool, used only when this is the first direct file of the
   * ring (the pool is shared by all direct files of a ring). Default 16 chunks of 256 KiB.
   */
  readonly pool?: { readonly chunkSize?: number; readonly chunks?: number }
}

/**
 * An open O_DIRECT file. Its fixed-file slot is closed with the scope it was opened in.
 *
 * @since 0.1.0
 * @category models
 */
export interface DirectFile {
  readonly path: string
  readonly alignment: Alignment
  /** Size in bytes when opened (statx). */
  readonly sizeAtOpen: number
  /**
   * Reads `length` bytes at `offset` (both multiples of `alignment.offset`). The result is
   * shorter only at end of file.
   */
  readonly read: (offset: number, length: number) => Effect.Effect<Uint8Array, AlignmentError | DirectFileError>
  /**
   * Reads `into.length` bytes at `offset` into `into` (offset and length multiples of
   * `alignment.offset`; `into` itself needs no alignment): the bytes read, fewer only at end of
   * file. Allocates nothing, so prefer it over `read` on hot paths: a fresh 4 KiB result per
   * read costs more than the read itself (external array buffers are malloc'd and GC-swept).
   */
  readonly readInto: (offset: number, into: Uint8Array) => Effect.Effect<number, AlignmentError | DirectFileError>
  /**
   * Writes all of `data` at `offset` (offset and `data.length` multiples of `alignment.offset`);
   * returns the bytes written (less than `data.length` only if the kernel wrote short).
   */
  readonly write: (offset: number, data: Uint8Array) => Effect.Effect<number, AlignmentError | DirectFileError>
  /**
   * Reads `length` bytes at every offset that `offsets` yields, keeping up to `concurrency` reads
   * in flight (default 32, bounded by the pool's chunks), and calls `onRead(bytes, offset)` as
   * each one completes (completion order, not offset order). `bytes` is a view of the registered
   * pool chunk, valid only during the call: copy what you keep. It is shorter only at end of
   * file. The next read is submitted from the completion itself, with no fiber resumed per read,
   * which is what keeps a device busy at high IOPS (the benchmark's O_DIRECT case). Succeeds
   * with the number of reads; stops at the first failed read (after the reads in flight
   * complete) or misaligned offset. Interruption cancels the reads in flight and completes after
   * their CQEs. `offsets` may be endless (a generator); the run ends when it returns.
   */
  readonly forEachRead: (
    offsets: Iterable<number>,
    options: { readonly length: number; readonly concurrency?: number },
    onRead: (bytes: Uint8Array, offset: number) => void
  ) => Effect.Effect<number, AlignmentError | DirectFileError>
  /** fsync: data and metadata are on stable storage. */
  readonly sync: Effect.Effect<void, DirectFileError>
  /** fdatasync. */
  readonly dataSync: Effect.Effect<void, DirectFileError>
}

/**
 * The ring, after checking the path (a NUL byte would end the C string early: `EINVAL`, nothing
 * submitted). After the Ringline layer was released: `ESHUTDOWN`, nothing submitted.
 */
const ringOf = (path: string): Effect.Effect<Ring.Ring, internal.DirectIoUnsupported | internal.DirectFileError, Ringline.Ringline> => {
  if (Ring.badCString(path) !== undefined) {
    return Effect.fail(internal.fileError("open", typeof path === "string" ? path : String(path), -EINVAL))
  }
  return Effect.flatMap(
    Effect.mapError(Ring.current, (e) =>
      new internal.DirectIoUnsupported({
        path,
        reason: "NoRing",
        detail: `direct files need the io_uring Ringline: ${e.detail}`
      })),
    (ring) =>
      ring.closed
        ? Effect.fail(new internal.DirectFileError({ operation: "open", path, errno: ESHUTDOWN, code: "ESHUTDOWN" }))
        : Effect.succeed(ring)
  )
}

const EINVAL = 22
const ESHUTDOWN = 108

/**
 * Opens `path` with O_DIRECT into the ring's fixed-file table and reads its direct I/O alignment.
 *
 * Fails with {@link DirectIoUnsupported} when the filesystem refuses O_DIRECT (EINVAL at open) or
 * reports no direct I/O alignment (tmpfs accepts O_DIRECT but is memory, not a disk), and with
 * {@link DirectFileError} for any other errno (ENOENT, EACCES...).
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (
  path: string,
  options: OpenOptions = {}
): Effect.Effect<DirectFile, DirectIoUnsupported | DirectFileError, Ringline.Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const d = yield* ringOf(path)
    const flags = (options.readOnly ? 0 : internal.O_RDWR) |
      (options.create ? internal.O_CREAT : 0) |
      (options.exclusive ? internal.O_EXCL : 0) |
      (options.truncate ? internal.O_TRUNC : 0)
    const index = yield* Effect.acquireRelease(
      Effect.flatMap(internal.openFixed(d, path, flags, options.mode ?? 0o644), (res): Effect.Effect<number, DirectIoUnsupported | DirectFileError> => {
        if (res >= 0) return Effect.succeed(res)
        if (internal.isEinval(res)) {
          return Effect.fail(
            new internal.DirectIoUnsupported({
              path,
              reason: "OpenRefused",
              detail: "open with O_DIRECT failed with EINVAL: this filesystem does not support direct I/O; " +
                "use a file on a block-device filesystem such as ext4 or xfs"
            })
          )
        }
        return Effect.fail(internal.fileError("open", path, res))
      }),
      (i) => Ring.closeFixed(d, i)
    )
    const st = yield* internal.statx(d, path)
    if (st.res < 0) return yield* Effect.fail(internal.fileError("statx", path, st.res))
    const mask = st.buf.readUInt32LE(internal.STX_MASK)
    const memory = st.buf.readUInt32LE(internal.STX_DIO_MEM_ALIGN)
    const offset = st.buf.readUInt32LE(internal.STX_DIO_OFFSET_ALIGN)
    if ((mask & internal.STATX_DIOALIGN) === 0 || offset === 0 || memory === 0) {
      return yield* Effect.fail(
        new internal.DirectIoUnsupported({
          path,
          reason: "NoAlignment",
          detail: "the filesystem reports no direct I/O alignment (statx STATX_DIOALIGN): it does not do real " +
            "direct I/O (tmpfs and other memory filesystems accept O_DIRECT but go through memory); " +
            "use a file on a block-device filesystem such as ext4 or xfs (kernel 6.1+)"
        })
      )
    }
    const sizeAtOpen = Number(st.buf.readBigUInt64LE(internal.STX_SIZE))
    const pool = yield* Effect.try({
      try: () => internal.poolFor(d, options.pool?.chunkSize, options.pool?.chunks),
      catch: (e) => internal.fileError("io_uring_register_buffers", path, -((e as { errno?: number }).errno ?? 12))
    })
    const alignment: Alignment = { memory, offset }
    if (pool.chunkSize % Math.max(offset, memory) !== 0 || pool.base % memory !== 0) {
      // Only possible with a custom pool.chunkSize that is not a multiple of the alignment.
      return yield* Effect.die(
        new RangeError(`direct pool chunks of ${pool.chunkSize} bytes break ${path}'s alignment (offset ${offset}, memory ${memory})`)
      )
    }

    const alignmentError = (operation: "read" | "write", field: "offset" | "length", value: number) =>
      new internal.AlignmentError({ path, operation, field, value, required: offset, offsetAlign: offset, memoryAlign: memory })
    const misaligned = (operation: "read" | "write", off: number, length: number) => {
      if (!Number.isSafeInteger(off) || off < 0 || off % offset !== 0) return alignmentError(operation, "offset", off)
      if (!Number.isSafeInteger(length) || length < 0 || length % offset !== 0) return alignmentError(operation, "length", length)
      return undefined
    }
    const check = (operation: "read" | "write", off: number, length: number) => {
      const bad = misaligned(operation, off, length)
      return bad === undefined ? Effect.void : Effect.fail(bad)
    }

    const chunked = <A>(f: (chunk: number) => Effect.Effect<A, DirectFileError>) =>
      Effect.acquireUseRelease(pool.take, f, (c) => Effect.sync(() => pool.give(c)))

    /** Reads into `out` chunk by chunk: any size, and waits for free chunks. */
    const readChunked = (off: number, out: Uint8Array) =>
      Effect.gen(function*() {
        const length = out.length
        let done = 0
        while (done < length) {
          const n = Math.min(pool.chunkSize, length - done)
          const got = yield* chunked((c) =>
            Effect.flatMap(internal.rw(d, pool, Ring.prepReadFixed, index, c, off + done, n), (res): Effect.Effect<number, DirectFileError> => {
              if (res < 0) return Effect.fail(internal.fileError("read", path, res))
              out.set(pool.view(c, res), done)
              return Effect.succeed(res)
            })
          )
          done += got
          if (got < n) break // end of file
        }
        return done
      })

    const target: internal.DirectTarget = { d, pool, index, path }

    /**
     * The common case as one submission: a request that fits one chunk while a chunk is free.
     * Everything else (larger requests, an exhausted pool) takes the chunk-by-chunk path. The
     * chunk is taken when the Effect runs (it may run more than once).
     */
    const readOne = (off: number, out: Uint8Array): Effect.Effect<number, DirectFileError> =>
      Effect.uninterruptibleMask((restore) => {
        const c = pool.tryTake()
        if (c < 0) return restore(readChunked(off, out))
        return Ring.awaitOperation(d, new internal.ReadFixed(target, c, off, out), restore)
      })

    const readAny = (off: number, out: Uint8Array) =>
      out.length === 0 ? Effect.succeed(0) : out.length <= pool.chunkSize ? readOne(off, out) : readChunked(off, out)

    const readInto = (off: number, out: Uint8Array) => {
      const bad = misaligned("read", off, out.length)
      return bad === undefined ? readAny(off, out) : Effect.fail(bad)
    }

    const read = (off: number, length: number) =>
      Effect.flatMap(check("read", off, length), () => {
        const out = new Uint8Array(length)
        return Effect.map(readAny(off, out), (n) => n === length ? out : out.subarray(0, n))
      })

    const write = (off: number, data: Uint8Array) =>
      Effect.flatMap(check("write", off, data.length), () =>
        Effect.gen(function*() {
          let done = 0
          while (done < data.length) {
            const n = Math.min(pool.chunkSize, data.length - done)
            const put = yield* chunked((c) =>
              Effect.suspend(() => {
                pool.view(c, n).set(data.subarray(done, done + n))
                return Effect.flatMap(
                  internal.rw(d, pool, Ring.prepWriteFixed, index, c, off + done, n),
                  (res): Effect.Effect<number, DirectFileError> =>
                    res < 0 ? Effect.fail(internal.fileError("write", path, res)) : Effect.succeed(res)
                )
              })
            )
            done += put
            if (put < n) break
          }
          return done
        }))

    const forEachRead = (
      offsets: Iterable<number>,
      options: { readonly length: number; readonly concurrency?: number },
      onRead: (bytes: Uint8Array, offset: number) => void
    ) =>
      Effect.suspend(() => {
        const { length } = options
        const concurrency = options.concurrency ?? 32
        if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
          return Effect.die(new RangeError(`forEachRead: concurrency must be a positive integer, got ${concurrency}`))
        }
        const badLength = misaligned("read", 0, length)
        if (badLength !== undefined) return Effect.fail(badLength)
        if (length === 0 || length > pool.chunkSize) {
          return Effect.die(new RangeError(`forEachRead: length must be 1..${pool.chunkSize} (one pool chunk), got ${length}`))
        }
        return pipeline.forEachRead(d, pool, index, path, offsets, { length, concurrency }, (off) => misaligned("read", off, length), onRead)
      })

    const syncWith = (dataOnly: boolean) =>
      Effect.flatMap(internal.fsync(d, index, dataOnly), (res): Effect.Effect<void, DirectFileError> =>
        res < 0 ? Effect.fail(internal.fileError(dataOnly ? "fdatasync" : "fsync", path, res)) : Effect.void)

    return {
      path,
      alignment,
      sizeAtOpen,
      read,
      readInto,
      forEachRead,
      write,
      sync: syncWith(false),
      dataSync: syncWith(true)
    } satisfies DirectFile
  })

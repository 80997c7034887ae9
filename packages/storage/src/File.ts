/**
 * Files on the ring, one SQE per operation: files are opened straight into the ring's fixed-file
 * table (IORING_OP_OPENAT with IORING_FILE_INDEX_ALLOC), so they never exist as ordinary fds, and
 * every read, write, sync, stat, allocate and truncate is a single io_uring op. Path operations
 * (stat, rename, remove, makeDirectory) are single ops too.
 *
 * Errors are `@effect/platform` `SystemError`s (module "FileSystem") with the same reasons as
 * `@effect/platform-node`'s FileSystem.
 *
 * @since 0.1.0
 */
import type { SystemError } from "@effect/platform/Error"
import type { File as PlatformFile, OpenFlag } from "@effect/platform/FileSystem"
import { Ring, type Ringline } from "@ringline/core"
import { Effect, type Scope } from "effect"
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  cString,
  decodeStatx,
  errnoError,
  openFlags,
  otherError,
  STATX_MASK,
  statxRaw
} from "./internal/ops.js"

/** Largest count one read/write SQE transfers (Linux MAX_RW_COUNT). */
const MAX_RW = 0x7ffff000
/** iovecs that fit in a slot's argument area. */
const ARG_IOVECS = Ring.ARG_BYTES / 16
/** An omitted position: the file's current one, which the op advances. */
const at = (position: number | undefined): number => position === undefined ? Ring.CURRENT_POSITION : position

/**
 * An open file in the ring's fixed-file table. Positions are byte offsets; an omitted position
 * means "the file's current position" (which the op then advances, as read(2)/write(2) do).
 *
 * @since 0.1.0
 * @category models
 */
export interface File {
  /** The path the file was opened with. */
  readonly path: string
  /** Index in the ring's fixed-file table (not an fd). */
  readonly fixedIndex: number
  /** One READ: the bytes read into `buffer` (0 at end of file; may be fewer than asked). */
  readonly read: (buffer: Uint8Array, position?: number) => Effect.Effect<number, SystemError>
  /** Reads until `buffer` is full, continuing short reads; fails with `UnexpectedEof` at end of file. */
  readonly readFully: (buffer: Uint8Array, position?: number) => Effect.Effect<void, SystemError>
  /** One WRITE: the bytes written (may be fewer than given). */
  readonly write: (bytes: Uint8Array, position?: number) => Effect.Effect<number, SystemError>
  /** Writes all of `bytes`, continuing short writes. */
  readonly writeAll: (bytes: Uint8Array, position?: number) => Effect.Effect<void, SystemError>
  /** One READV into `buffers` in order: the total bytes read. */
  readonly readv: (buffers: ReadonlyArray<Uint8Array>, position?: number) => Effect.Effect<number, SystemError>
  /** One WRITEV of `buffers` in order: the total bytes written. */
  readonly writev: (buffers: ReadonlyArray<Uint8Array>, position?: number) => Effect.Effect<number, SystemError>
  /** fsync(2) through the ring. */
  readonly sync: Effect.Effect<void, SystemError>
  /** fdatasync(2) through the ring. */
  readonly datasync: Effect.Effect<void, SystemError>
  /** statx(2) of the open file (installs a transient fd: statx takes no fixed files). */
  readonly stat: Effect.Effect<PlatformFile.Info, SystemError>
  /** fallocate(2): reserves `length` bytes from `offset` (mode 0 extends the file size). */
  readonly allocate: (length: number, offset?: number, mode?: number) => Effect.Effect<void, SystemError>
  /** ftruncate(2) to `length` (default 0). Needs Linux 6.9. */
  readonly truncate: (length?: number) => Effect.Effect<void, SystemError>
  /**
   * Closes the file after its in-flight operations completed (a direct close of the fixed slot).
   * Idempotent; the scope that opened the file runs it too.
   */
  readonly close: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** Node-style open flag; default "r". */
  readonly flags?: OpenFlag
  /** Permission bits for a created file; default 0o666 (before umask). */
  readonly mode?: number
}

/**
 * The ring for a path operation, after checking every path: a NUL byte would end the C string
 * early (`open("a\0.png")` opening `a`), so such a path fails with `InvalidData` before any SQE.
 * After the Ringline layer was released the ring is refused (`BadResource`), nothing submitted.
 */
const ringOf = (method: string, path: string, ...more: ReadonlyArray<readonly [string, string]>): Effect.Effect<Ring.Ring, SystemError, Ringline.Ringline> => {
  for (const [argument, value] of [["path", path] as const, ...more]) {
    const problem = Ring.badCString(value)
    if (problem !== undefined) return Effect.fail(invalid(method, path, `${argument} ${problem}`))
  }
  return Effect.flatMap(
    Effect.mapError(Ring.current, (e) => otherError(method, path, "Unknown", e.detail)),
    (ring) => (ring.closed ? Effect.fail(otherError(method, path, "BadResource", RELEASED)) : Effect.succeed(ring))
  )
}

const RELEASED = "the Ringline layer was released (its scope is closed); build a new one"

/** A bad argument, rejected before anything was submitted. */
const invalid = (method: string, path: unknown, what: string): SystemError =>
  otherError(method, typeof path === "string" ? path : Ring.show(path), "InvalidData", what)

/** A file offset or length: a non-negative safe integer (what the kernel reads as a u64/s64). */
const badOffset = (value: unknown): string | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? undefined
    : `must be an integer of at least 0, got ${Ring.show(value)}`

/** A Uint8Array as is, another ArrayBufferView as its bytes; anything else throws (a defect). */
const viewOf = (value: unknown, where: string): Uint8Array => value instanceof Uint8Array ? value : Ring.bytesOf(value, where)

const bytesError = (value: unknown, where: string): TypeError =>
  new TypeError(`${where} must be a Uint8Array or another ArrayBufferView, got ${Ring.show(value)}`)

/**
 * One READ or WRITE of a file: its arguments as fields, one object per op (see
 * `Ring.Operation`). The file counts it in flight from submission to its CQE.
 */
class FileRw extends Ring.Operation<number, SystemError> {
  constructor(
    readonly file: FileImpl,
    readonly prep: typeof Ring.prepRead,
    readonly method: string,
    readonly view: Uint8Array,
    readonly position: number | undefined
  ) {
    super()
  }
  prepare(slot: number): Uint8Array {
    const { file, view } = this
    this.prep(file.d, slot, file.fixedIndex, Ring.addressOf(view), Math.min(view.byteLength, MAX_RW), at(this.position), Ring.SqeFlag.FIXED_FILE)
    return view
  }
  finish(res: number): Effect.Effect<number, SystemError> {
    return this.file.check(this.method, res)
  }
  override always(): void {
    this.file.leave()
  }
}

class FileImpl implements File {
  private inflight = 0
  private closed = false
  private closeStarted = false
  private closeFinished = false
  private readonly closeWaiters: Array<() => void> = []

  constructor(readonly d: Ring.Ring, readonly path: string, readonly fixedIndex: number) {}

  /** Runs `f` as an op of this file: refused after close; close waits for it. */
  private op<A>(method: string, f: () => Effect.Effect<A, SystemError>): Effect.Effect<A, SystemError> {
    return Effect.suspend(() => {
      if (this.closed) return this.closedError(method)
      this.inflight++
      let body: Effect.Effect<A, SystemError>
      try {
        body = f()
      } catch (e) {
        // A throw while building the op (a bad argument) must not leave it counted: close
        // would wait for it forever.
        this.leave()
        return Effect.die(e)
      }
      return Effect.ensuring(body, Effect.sync(() => this.leave()))
    })
  }

  /** An op of this file ended (its CQE is in): close may proceed once none is left. */
  leave(): void {
    this.inflight--
    if (this.closed) this.maybeClose()
  }

  check(method: string, res: number): Effect.Effect<number, SystemError> {
    return res < 0 ? Effect.fail(errnoError(this.d, method, this.path, res)) : Effect.succeed(res)
  }

  private closedError(method: string) {
    return Effect.fail(otherError(method, this.path, "BadResource", "the file is closed"))
  }

  /**
   * One READ or WRITE. The hot path: the closed check, in-flight accounting and errno mapping
   * all happen inside the op's single submission instead of as separate Effect steps.
   */
  private rw(
    prep: typeof Ring.prepRead,
    method: string,
    view: Uint8Array,
    position: number | undefined,
    insideOp = false
  ): Effect.Effect<number, SystemError> {
    if (!(view instanceof Uint8Array)) {
      if (!ArrayBuffer.isView(view)) return Effect.die(bytesError(view, `${method}: buffer`))
      view = viewOf(view, method)
    }
    if (position !== undefined) {
      const bad = badOffset(position)
      if (bad !== undefined) return Effect.fail(invalid(method, this.path, `position ${bad}`))
    }
    if (view.byteLength === 0) return Effect.succeed(0)
    return Effect.uninterruptibleMask((restore) => {
      // Inside readFully/writeAll the file is already held open by that op.
      if (this.closed && !insideOp) return this.closedError(method)
      this.inflight++
      return Ring.awaitOperation(this.d, new FileRw(this, prep, method, view, position), restore)
    })
  }

  readonly read = (buffer: Uint8Array, position?: number) => this.rw(Ring.prepRead, "read", buffer, position)

  readonly write = (bytes: Uint8Array, position?: number) => this.rw(Ring.prepWrite, "write", bytes, position)

  readonly readFully = (buffer: Uint8Array, position?: number) =>
    this.op("readFully", () => {
      buffer = viewOf(buffer, "readFully: buffer")
      const bad = position === undefined ? undefined : badOffset(position)
      if (bad !== undefined) return Effect.fail(invalid("readFully", this.path, `position ${bad}`))
      const loop = (done: number): Effect.Effect<void, SystemError> =>
        done >= buffer.byteLength
          ? Effect.void
          : Effect.flatMap(
            this.rw(Ring.prepRead, "readFully", buffer.subarray(done), position === undefined ? undefined : position + done, true),
            (n) =>
              n === 0
                ? Effect.fail(otherError("readFully", this.path, "UnexpectedEof", `end of file after ${done} of ${buffer.byteLength} bytes`))
                : loop(done + n)
          )
      return loop(0)
    })

  readonly writeAll = (bytes: Uint8Array, position?: number) =>
    this.op("writeAll", () => {
      bytes = viewOf(bytes, "writeAll: bytes")
      const bad = position === undefined ? undefined : badOffset(position)
      if (bad !== undefined) return Effect.fail(invalid("writeAll", this.path, `position ${bad}`))
      const loop = (done: number): Effect.Effect<void, SystemError> =>
        done >= bytes.byteLength
          ? Effect.void
          : Effect.flatMap(
            this.rw(Ring.prepWrite, "writeAll", bytes.subarray(done), position === undefined ? undefined : position + done, true),
            (n) =>
              n === 0
                ? Effect.fail(otherError("writeAll", this.path, "WriteZero", `wrote 0 bytes after ${done} of ${bytes.byteLength}`))
                : loop(done + n)
          )
      return loop(0)
    })

  private vectored(prep: typeof Ring.prepReadv, method: string, views: ReadonlyArray<Uint8Array>, position: number | undefined) {
    // Checked before the op is entered: a throw inside it would leave it counted in flight.
    if (!Array.isArray(views)) return Effect.die(new TypeError(`${method}: buffers must be an array of Uint8Arrays, got ${Ring.show(views)}`))
    try {
      views = views.map((v, i) => viewOf(v, `${method}: buffers[${i}]`))
    } catch (e) {
      return Effect.die(e)
    }
    if (position !== undefined) {
      const bad = badOffset(position)
      if (bad !== undefined) return Effect.fail(invalid(method, this.path, `position ${bad}`))
    }
    return this.op(method, () => {
      const d = this.d
      const fixed = this.fixedIndex
      return Effect.flatMap(
        Ring.submitRaw(d, (slot) => {
          // The iovec array: in the slot's argument memory when it fits, else in a pinned buffer.
          const mem = views.length <= ARG_IOVECS ? d.argView(slot) : Buffer.alloc(views.length * 16)
          const iov = new DataView(mem.buffer, mem.byteOffset, mem.byteLength)
          for (let i = 0; i < views.length; i++) {
            const v = views[i]!
            iov.setBigUint64(i * 16, BigInt(v.byteLength === 0 ? 0 : Ring.addressOf(v)), true)
            iov.setBigUint64(i * 16 + 8, BigInt(v.byteLength), true)
          }
          prep(d, slot, fixed, Ring.addressOf(mem), views.length, at(position), Ring.SqeFlag.FIXED_FILE)
          return [views, mem]
        }),
        (res) => this.check(method, res)
      )
    })
  }

  readonly readv = (buffers: ReadonlyArray<Uint8Array>, position?: number) =>
    this.vectored(Ring.prepReadv, "readv", buffers, position)

  readonly writev = (buffers: ReadonlyArray<Uint8Array>, position?: number) =>
    this.vectored(Ring.prepWritev, "writev", buffers, position)

  /**
   * A single op on the fixed file that yields nothing, after checking its numeric arguments;
   * `prep` stages it for (slot, fixed index).
   */
  private simple(
    method: string,
    prep: (slot: number, index: number) => void,
    numbers: ReadonlyArray<readonly [string, unknown]> = []
  ): Effect.Effect<void, SystemError> {
    return this.op(method, () => {
      for (const [argument, value] of numbers) {
        const bad = badOffset(value)
        if (bad !== undefined) return Effect.fail(invalid(method, this.path, `${argument} ${bad}`))
      }
      return Effect.flatMap(
        Ring.submitRaw(this.d, (slot) => prep(slot, this.fixedIndex)),
        (res) => Effect.asVoid(this.check(method, res))
      )
    })
  }

  readonly sync = this.simple("sync", (slot, i) => Ring.prepFsync(this.d, slot, i, false, Ring.SqeFlag.FIXED_FILE))

  readonly datasync = this.simple("datasync", (slot, i) => Ring.prepFsync(this.d, slot, i, true, Ring.SqeFlag.FIXED_FILE))

  readonly allocate = (length: number, offset = 0, mode = 0) =>
    this.simple(
      "allocate",
      (slot, i) => Ring.prepFallocate(this.d, slot, i, mode, offset, length, Ring.SqeFlag.FIXED_FILE),
      [["length", length], ["offset", offset], ["mode", mode]]
    )

  readonly truncate = (length = 0) =>
    this.simple("truncate", (slot, i) => Ring.prepFtruncate(this.d, slot, i, length, Ring.SqeFlag.FIXED_FILE), [["length", length]])

  readonly stat: Effect.Effect<PlatformFile.Info, SystemError> = this.op("stat", () => {
    // STATX refuses fixed files: install the slot as a transient O_CLOEXEC fd, statx it, close it.
    const d = this.d
    let info: PlatformFile.Info | undefined
    return Effect.flatMap(
      Ring.submitOwned(
        d,
        (slot) => {
          Ring.prepFixedFdInstall(d, slot, this.fixedIndex)
        },
        (fd) => Ring.closeFd(d, fd),
        (fd) =>
          Effect.flatMap(
            Effect.ensuring(statx(d, "stat", this.path, fd, "", AT_EMPTY_PATH), Ring.closeFd(d, fd)),
            (i) => Effect.sync(() => void (info = i))
          )
      ),
      (res) => (res < 0 ? Effect.fail(errnoError(d, "stat", this.path, res)) : Effect.succeed(info!))
    )
  })

  /** The direct close, once nothing of this file is in flight any more. */
  private maybeClose(): void {
    if (this.closeStarted || this.inflight > 0) return
    this.closeStarted = true
    Ring.closeFixedThen(this.d, this.fixedIndex, () => {
      this.closeFinished = true
      for (const w of this.closeWaiters.splice(0)) w()
    })
  }

  readonly close: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.closeFinished) return resume(Effect.void)
    this.closeWaiters.push(() => resume(Effect.void))
    this.closed = true
    this.maybeClose()
  })
}

const statx = (
  d: Ring.Ring,
  method: string,
  path: string,
  dirfd: number,
  name: string,
  flags: number
): Effect.Effect<PlatformFile.Info, SystemError> =>
  Effect.flatMap(
    statxRaw(d, dirfd, name, flags, STATX_MASK),
    ({ buf, res }) => (res < 0 ? Effect.fail(errnoError(d, method, path, res)) : Effect.succeed(decodeStatx(buf)))
  )

/**
 * Opens `path` straight into the ring's fixed-file table. The file is closed (after its in-flight
 * operations) when the scope closes. Opening is interruptible: if the kernel opened the file
 * anyway, the slot is closed before the interruption completes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (
  path: string,
  options: OpenOptions = {}
): Effect.Effect<File, SystemError, Ringline.Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const d = yield* ringOf("open", path)
    const flags = openFlags(options.flags ?? "r")
    if (flags === undefined) return yield* Effect.fail(otherError("open", path, "InvalidData", `unknown open flag ${options.flags}`))
    if (options.mode !== undefined && !(Number.isInteger(options.mode) && options.mode >= 0 && options.mode <= 0o7777)) {
      return yield* Effect.fail(invalid("open", path, `mode must be permission bits from 0 to 0o7777, got ${Ring.show(options.mode)}`))
    }
    const p = cString(path)
    let file: FileImpl | undefined
    const res = yield* Ring.submitOwned(
      d,
      (slot) => {
        Ring.prepOpenat(d, slot, AT_FDCWD, Ring.addressOf(p), flags, options.mode ?? 0o666, Ring.FILE_INDEX_ALLOC)
        return p
      },
      (index) => Ring.closeFixed(d, index),
      (index) =>
        Effect.sync(() => {
          file = new FileImpl(d, path, index)
        }).pipe(Effect.zipRight(Effect.addFinalizer(() => file!.close)))
    )
    if (res < 0) return yield* Effect.fail(errnoError(d, "open", path, res))
    return file!
  })

/**
 * statx(2) of `path` (following symlinks).
 *
 * @since 0.1.0
 * @category path operations
 */
export const stat = (path: string): Effect.Effect<PlatformFile.Info, SystemError, Ringline.Ringline> =>
  Effect.flatMap(ringOf("stat", path), (d) => statx(d, "stat", path, AT_FDCWD, path, 0))

const pathOp = (
  method: string,
  path: string,
  prepare: (d: Ring.Ring, slot: number, p: Buffer) => Ring.Hold,
  ...more: ReadonlyArray<readonly [string, string]>
): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  Effect.flatMap(ringOf(method, path, ...more), (d) => {
    const p = cString(path)
    return Effect.flatMap(
      Ring.submitRaw(d, (slot) => prepare(d, slot, p)),
      (res) => (res < 0 ? Effect.fail(errnoError(d, method, path, res)) : Effect.void)
    )
  })

/**
 * renameat(2): moves `from` to `to` (replacing `to` if it exists, as rename(2) does).
 *
 * @since 0.1.0
 * @category path operations
 */
export const rename = (from: string, to: string): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  pathOp("rename", from, (d, slot, p) => {
    const q = cString(to)
    Ring.prepRenameat(d, slot, AT_FDCWD, Ring.addressOf(p), AT_FDCWD, Ring.addressOf(q))
    return [p, q]
  }, ["to", to])

/**
 * unlinkat(2): removes a file, or an empty directory with `{ directory: true }`.
 *
 * @since 0.1.0
 * @category path operations
 */
export const remove = (
  path: string,
  options: { readonly directory?: boolean } = {}
): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  pathOp("remove", path, (d, slot, p) => {
    Ring.prepUnlinkat(d, slot, AT_FDCWD, Ring.addressOf(p), options.directory === true ? AT_REMOVEDIR : 0)
    return p
  })

/**
 * mkdirat(2) with `mode` (default 0o777, before umask).
 *
 * @since 0.1.0
 * @category path operations
 */
export const makeDirectory = (path: string, mode = 0o777): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  !(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777)
    ? Effect.fail(invalid("makeDirectory", path, `mode must be permission bits from 0 to 0o7777, got ${Ring.show(mode)}`))
    : pathOp("makeDirectory", path, (d, slot, p) => {
      Ring.prepMkdirat(d, slot, AT_FDCWD, Ring.addressOf(p), mode)
      return p
  })

/**
 * statx(2) of `path` without following a final symlink (lstat semantics).
 *
 * @since 0.1.0
 * @category path operations
 */
export const lstat = (path: string): Effect.Effect<PlatformFile.Info, SystemError, Ringline.Ringline> =>
  Effect.flatMap(ringOf("lstat", path), (d) => statx(d, "lstat", path, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))

/**
 * linkat(2): a hard link `to` naming the file at `from` (IORING_OP_LINKAT).
 *
 * @since 0.1.0
 * @category path operations
 */
export const link = (from: string, to: string): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  pathOp("link", from, (d, slot, p) => {
    const q = cString(to)
    Ring.prepLinkat(d, slot, AT_FDCWD, Ring.addressOf(p), AT_FDCWD, Ring.addressOf(q))
    return [p, q]
  }, ["to", to])

/**
 * symlinkat(2): a symbolic link at `path` whose content is `target` (IORING_OP_SYMLINKAT).
 *
 * @since 0.1.0
 * @category path operations
 */
export const symlink = (target: string, path: string): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  pathOp("symlink", path, (d, slot, p) => {
    const t = cString(target)
    Ring.prepSymlinkat(d, slot, Ring.addressOf(t), AT_FDCWD, Ring.addressOf(p))
    return [p, t]
  }, ["target", target])

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
import { Ringline } from "@ringline/core"
import type { Driver } from "@ringline/core/internal/driver"
import { load } from "@ringline/core/internal/native"
import { FILE_INDEX_ALLOC, SqeFlag, W } from "@ringline/core/internal/sqe"
import { badCString, bytesOf, show } from "@ringline/core/internal/validate"
import { Effect, type Scope } from "effect"
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  closeFdEffect,
  closeFixed,
  closeFixedEffect,
  cString,
  decodeStatx,
  errnoError,
  FileOp,
  IORING_FSYNC_DATASYNC,
  openFlags,
  otherError,
  STATX_MASK,
  statxRaw,
  submit,
  submitOwned,
  submitWith
} from "./internal/ops.js"

/** Largest count one read/write SQE transfers (Linux MAX_RW_COUNT). */
const MAX_RW = 0x7ffff000
/** iovecs that fit in a slot's 128-byte argument area. */
const ARG_IOVECS = 8

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
 * The driver for a path operation, after checking every path: a NUL byte would end the C string
 * early (`open("a\0.png")` opening `a`), so such a path fails with `InvalidData` before any SQE.
 * After the Ringline layer was released the driver is refused (`BadResource`), nothing submitted.
 */
const driverOf = (method: string, path: string, ...more: ReadonlyArray<readonly [string, string]>): Effect.Effect<Driver, SystemError, Ringline.Ringline> =>
  Effect.flatMap(Ringline.Ringline, (ring) => {
    for (const [argument, value] of [["path", path] as const, ...more]) {
      const problem = badCString(value)
      if (problem !== undefined) return Effect.fail(invalid(method, path, `${argument} ${problem}`))
    }
    const d = ring.driver
    if (d === undefined) return Effect.fail(otherError(method, path, "Unknown", `the ${ring.mode} Ringline implementation has no io_uring`))
    if (d.released || d.closed) return Effect.fail(otherError(method, path, "BadResource", RELEASED))
    return Effect.succeed(d)
  })

const RELEASED = "the Ringline layer was released (its scope is closed); build a new one"

/** A bad argument, rejected before anything was submitted. */
const invalid = (method: string, path: unknown, what: string): SystemError =>
  otherError(method, typeof path === "string" ? path : show(path), "InvalidData", what)

/** A file offset or length: a non-negative safe integer (what the kernel reads as a u64/s64). */
const badOffset = (value: unknown): string | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? undefined
    : `must be an integer of at least 0, got ${show(value)}`

/** A Uint8Array as is, another ArrayBufferView as its bytes; anything else throws (a defect). */
const viewOf = (value: unknown, where: string): Uint8Array => value instanceof Uint8Array ? value : bytesOf(value, where)

const bytesError = (value: unknown, where: string): TypeError =>
  new TypeError(`${where} must be a Uint8Array or another ArrayBufferView, got ${show(value)}`)

const setPosition = (d: Driver, w: number, position: number | undefined) =>
  d.setAddr(w, W.off, position === undefined ? -1 : position)

class FileImpl implements File {
  private inflight = 0
  private closed = false
  private closeStarted = false
  private closeFinished = false
  private readonly closeWaiters: Array<() => void> = []

  constructor(private readonly d: Driver, readonly path: string, readonly fixedIndex: number) {}

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

  private leave(): void {
    this.inflight--
    if (this.closed) this.maybeClose()
  }

  private check(method: string, res: number): Effect.Effect<number, SystemError> {
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
    op: number,
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
    const d = this.d
    return submitWith(
      d,
      (slot) => {
        d.holds[slot] = view
        const w = d.sqe(op, SqeFlag.FIXED_FILE, this.fixedIndex, slot)
        d.setAddr(w, W.addr, load().addressOf(view))
        d.words[w + W.len] = Math.min(view.byteLength, MAX_RW)
        setPosition(d, w, position)
      },
      (res) => this.check(method, res),
      this.leaveOp,
      () => {
        // Inside readFully/writeAll the file is already held open by that op.
        if (this.closed && !insideOp) return this.closedError(method)
        this.inflight++
        return undefined
      }
    )
  }

  private readonly leaveOp = () => this.leave()

  readonly read = (buffer: Uint8Array, position?: number) => this.rw(FileOp.READ, "read", buffer, position)

  readonly write = (bytes: Uint8Array, position?: number) => this.rw(FileOp.WRITE, "write", bytes, position)

  readonly readFully = (buffer: Uint8Array, position?: number) =>
    this.op("readFully", () => {
      buffer = viewOf(buffer, "readFully: buffer")
      const bad = position === undefined ? undefined : badOffset(position)
      if (bad !== undefined) return Effect.fail(invalid("readFully", this.path, `position ${bad}`))
      const loop = (done: number): Effect.Effect<void, SystemError> =>
        done >= buffer.byteLength
          ? Effect.void
          : Effect.flatMap(
            this.rw(FileOp.READ, "readFully", buffer.subarray(done), position === undefined ? undefined : position + done, true),
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
            this.rw(FileOp.WRITE, "writeAll", bytes.subarray(done), position === undefined ? undefined : position + done, true),
            (n) =>
              n === 0
                ? Effect.fail(otherError("writeAll", this.path, "WriteZero", `wrote 0 bytes after ${done} of ${bytes.byteLength}`))
                : loop(done + n)
          )
      return loop(0)
    })

  private vectored(op: number, method: string, views: ReadonlyArray<Uint8Array>, position: number | undefined) {
    // Checked before the op is entered: a throw inside it would leave it counted in flight.
    if (!Array.isArray(views)) return Effect.die(new TypeError(`${method}: buffers must be an array of Uint8Arrays, got ${show(views)}`))
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
      const native = load()
      return Effect.flatMap(
        submit(d, (slot) => {
          let iov: DataView
          let iovAddr: number
          let iovMem: Buffer | undefined
          if (views.length <= ARG_IOVECS) {
            iov = new DataView(d.args.buffer, d.args.byteOffset + slot * 128, 128)
            iovAddr = d.argAddress(slot)
          } else {
            iovMem = Buffer.alloc(views.length * 16)
            iov = new DataView(iovMem.buffer, iovMem.byteOffset, iovMem.byteLength)
            iovAddr = native.addressOf(iovMem)
          }
          for (let i = 0; i < views.length; i++) {
            const v = views[i]!
            iov.setBigUint64(i * 16, BigInt(v.byteLength === 0 ? 0 : native.addressOf(v)), true)
            iov.setBigUint64(i * 16 + 8, BigInt(v.byteLength), true)
          }
          d.holds[slot] = [views, iovMem]
          const w = d.sqe(op, SqeFlag.FIXED_FILE, fixed, slot)
          d.setAddr(w, W.addr, iovAddr)
          d.words[w + W.len] = views.length
          setPosition(d, w, position)
        }),
        (res) => this.check(method, res)
      )
    })
  }

  readonly readv = (buffers: ReadonlyArray<Uint8Array>, position?: number) =>
    this.vectored(FileOp.READV, "readv", buffers, position)

  readonly writev = (buffers: ReadonlyArray<Uint8Array>, position?: number) =>
    this.vectored(FileOp.WRITEV, "writev", buffers, position)

  /** A single op on the fixed file that yields nothing, after checking its numeric arguments. */
  private simple(
    method: string,
    prepare: (w: number) => void,
    op: number,
    numbers: ReadonlyArray<readonly [string, unknown]> = []
  ): Effect.Effect<void, SystemError> {
    return this.op(method, () => {
      for (const [argument, value] of numbers) {
        const bad = badOffset(value)
        if (bad !== undefined) return Effect.fail(invalid(method, this.path, `${argument} ${bad}`))
      }
      const d = this.d
      return Effect.flatMap(
        submit(d, (slot) => prepare(d.sqe(op, SqeFlag.FIXED_FILE, this.fixedIndex, slot))),
        (res) => Effect.asVoid(this.check(method, res))
      )
    })
  }

  readonly sync = this.simple("sync", () => {}, FileOp.FSYNC)

  readonly datasync = this.simple("datasync", (w) => {
    this.d.words[w + W.opFlags] = IORING_FSYNC_DATASYNC
  }, FileOp.FSYNC)

  readonly allocate = (length: number, offset = 0, mode = 0) =>
    this.simple("allocate", (w) => {
      this.d.setAddr(w, W.off, offset)
      this.d.setAddr(w, W.addr, length)
      this.d.words[w + W.len] = mode
    }, FileOp.FALLOCATE, [["length", length], ["offset", offset], ["mode", mode]])

  readonly truncate = (length = 0) =>
    this.simple("truncate", (w) => {
      this.d.setAddr(w, W.off, length)
    }, FileOp.FTRUNCATE, [["length", length]])

  readonly stat: Effect.Effect<PlatformFile.Info, SystemError> = this.op("stat", () => {
    // STATX refuses fixed files: install the slot as a transient O_CLOEXEC fd, statx it, close it.
    const d = this.d
    let info: PlatformFile.Info | undefined
    return Effect.flatMap(
      submitOwned(
        d,
        (slot) => {
          d.sqe(FileOp.FIXED_FD_INSTALL, SqeFlag.FIXED_FILE, this.fixedIndex, slot)
        },
        (fd) => closeFdEffect(d, fd),
        (fd) =>
          Effect.flatMap(
            Effect.ensuring(statx(d, "stat", this.path, fd, "", AT_EMPTY_PATH), closeFdEffect(d, fd)),
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
    closeFixed(this.d, this.fixedIndex, () => {
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
  d: Driver,
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
    const d = yield* driverOf("open", path)
    const flags = openFlags(options.flags ?? "r")
    if (flags === undefined) return yield* Effect.fail(otherError("open", path, "InvalidData", `unknown open flag ${options.flags}`))
    if (options.mode !== undefined && !(Number.isInteger(options.mode) && options.mode >= 0 && options.mode <= 0o7777)) {
      return yield* Effect.fail(invalid("open", path, `mode must be permission bits from 0 to 0o7777, got ${show(options.mode)}`))
    }
    const p = cString(path)
    let file: FileImpl | undefined
    const res = yield* submitOwned(
      d,
      (slot) => {
        d.holds[slot] = p
        const w = d.sqe(FileOp.OPENAT, 0, AT_FDCWD, slot)
        d.setAddr(w, W.addr, load().addressOf(p))
        d.words[w + W.len] = options.mode ?? 0o666
        d.words[w + W.opFlags] = flags
        d.words[w + W.fileIndex] = FILE_INDEX_ALLOC
      },
      (index) => closeFixedEffect(d, index),
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
  Effect.flatMap(driverOf("stat", path), (d) => statx(d, "stat", path, AT_FDCWD, path, 0))

const pathOp = (
  method: string,
  path: string,
  prepare: (d: Driver, slot: number, p: Buffer) => void,
  ...more: ReadonlyArray<readonly [string, string]>
): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  Effect.flatMap(driverOf(method, path, ...more), (d) => {
    const p = cString(path)
    return Effect.flatMap(
      submit(d, (slot) => prepare(d, slot, p)),
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
    d.holds[slot] = [p, q]
    const native = load()
    const w = d.sqe(FileOp.RENAMEAT, 0, AT_FDCWD, slot)
    d.setAddr(w, W.addr, native.addressOf(p))
    d.words[w + W.len] = AT_FDCWD
    d.setAddr(w, W.off, native.addressOf(q))
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
    d.holds[slot] = p
    const w = d.sqe(FileOp.UNLINKAT, 0, AT_FDCWD, slot)
    d.setAddr(w, W.addr, load().addressOf(p))
    d.words[w + W.opFlags] = options.directory === true ? AT_REMOVEDIR : 0
  })

/**
 * mkdirat(2) with `mode` (default 0o777, before umask).
 *
 * @since 0.1.0
 * @category path operations
 */
export const makeDirectory = (path: string, mode = 0o777): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  !(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777)
    ? Effect.fail(invalid("makeDirectory", path, `mode must be permission bits from 0 to 0o7777, got ${show(mode)}`))
    : pathOp("makeDirectory", path, (d, slot, p) => {
    d.holds[slot] = p
    const w = d.sqe(FileOp.MKDIRAT, 0, AT_FDCWD, slot)
    d.setAddr(w, W.addr, load().addressOf(p))
    d.words[w + W.len] = mode
  })

/**
 * statx(2) of `path` without following a final symlink (lstat semantics).
 *
 * @since 0.1.0
 * @category path operations
 */
export const lstat = (path: string): Effect.Effect<PlatformFile.Info, SystemError, Ringline.Ringline> =>
  Effect.flatMap(driverOf("lstat", path), (d) => statx(d, "lstat", path, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))

/**
 * linkat(2): a hard link `to` naming the file at `from` (IORING_OP_LINKAT).
 *
 * @since 0.1.0
 * @category path operations
 */
export const link = (from: string, to: string): Effect.Effect<void, SystemError, Ringline.Ringline> =>
  pathOp("link", from, (d, slot, p) => {
    const q = cString(to)
    d.holds[slot] = [p, q]
    const native = load()
    const w = d.sqe(FileOp.LINKAT, 0, AT_FDCWD, slot)
    d.setAddr(w, W.addr, native.addressOf(p))
    d.words[w + W.len] = AT_FDCWD
    d.setAddr(w, W.off, native.addressOf(q))
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
    d.holds[slot] = [p, t]
    const native = load()
    const w = d.sqe(FileOp.SYMLINKAT, 0, AT_FDCWD, slot)
    d.setAddr(w, W.addr, native.addressOf(t))
    d.setAddr(w, W.off, native.addressOf(p))
   }, ["target", target])

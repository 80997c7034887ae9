/**
 * `@effect/platform` `FileSystem` on the ring: a drop-in replacement for `NodeFileSystem.layer`
 * whose file and path operations are io_uring ops (built on `File`: OPENAT into the fixed-file
 * table, READ, WRITE, FSYNC, FTRUNCATE, STATX, RENAMEAT, UNLINKAT, MKDIRAT, LINKAT, SYMLINKAT).
 * Operations io_uring has no opcode for (readdir, readlink, realpath, chmod, chown, utimes,
 * access permission checks, watch) use Node's `fs`; each method's JSDoc says which it is.
 *
 * @since 0.1.0
 */
import { BadArgument, type PlatformError, SystemError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { Ring, Ringline } from "@ringline/core"
import { Effect, Layer, Option, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as Path from "node:path"
import * as File from "./File.js"

/** Chunk size of copies and of whole-file reads beyond the size statx reported. */
const COPY_CHUNK = 256 * 1024
/** Parallel entries while walking a directory tree (remove, copy). */
const WALK_CONCURRENCY = 8

// ---- errors ------------------------------------------------------------------------------------

/** The same SystemError under the FileSystem method the caller used (File's ops name their own). */
const as = (method: string, path?: string) => (e: SystemError): SystemError =>
  e.method === method && path === undefined ? e : new SystemError({
    reason: e.reason,
    module: e.module,
    method,
    pathOrDescriptor: path ?? e.pathOrDescriptor,
    syscall: e.syscall,
    description: e.description,
    cause: e.cause
  })

const withMethod = <A, R>(method: string, effect: Effect.Effect<A, SystemError, R>): Effect.Effect<A, SystemError, R> =>
  Effect.mapError(effect, as(method))

/** A Node fs error as NodeFileSystem reports it (same reasons as the ring's errno mapping). */
const nodeError = (method: string, path: string) => (err: unknown): PlatformError => {
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code !== "string" || e.code.startsWith("ERR_INVALID")) {
    return new BadArgument({ module: "FileSystem", method, cause: err })
  }
  return new SystemError({
    reason: e.code.startsWith("ERR_") ? "Unknown" : Ring.reasonOf(e.code),
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    syscall: e.syscall,
    description: e.message,
    cause: err
  })
}

const viaNode = <A>(method: string, path: string, f: () => Promise<A>): Effect.Effect<A, PlatformError> =>
  Effect.tryPromise({ try: f, catch: nodeError(method, path) })

const isErrno = (e: SystemError, code: string) => e.description?.startsWith(`${code}:`) === true

// ---- the File handle ---------------------------------------------------------------------------

/**
 * `FileSystem.File` over a ring `File`, with NodeFileSystem's position semantics: the handle keeps
 * its own position (moved by `seek`, advanced by reads and writes) and every read/write is a
 * positioned READ/WRITE at it; in append mode writes go to the end (O_APPEND) and leave the
 * position alone. `fd` is the fixed-file index in the ring's table, not a process fd.
 */
class FileHandle implements FileSystem.File {
  readonly [FileSystem.FileTypeId]: FileSystem.FileTypeId = FileSystem.FileTypeId
  readonly fd: FileSystem.File.Descriptor
  private readonly semaphore = Effect.unsafeMakeSemaphore(1)
  private position = 0n

  constructor(private readonly file: File.File, private readonly append: boolean) {
    this.fd = FileSystem.FileDescriptor(file.fixedIndex)
  }

  get stat() {
    return withMethod("stat", this.file.stat)
  }

  get sync() {
    return withMethod("sync", this.file.sync)
  }

  seek(offset: FileSystem.SizeInput, from: FileSystem.SeekMode): Effect.Effect<void> {
    const size = FileSystem.Size(offset)
    return this.semaphore.withPermits(1)(Effect.sync(() => {
      this.position = from === "start" ? size : this.position + size
    }))
  }

  read(buffer: Uint8Array) {
    return this.semaphore.withPermits(1)(Effect.suspend(() =>
      Effect.map(withMethod("read", this.file.read(buffer, Number(this.position))), (n) => {
        this.position += BigInt(n)
        return FileSystem.Size(n)
      })
    ))
  }

  readAlloc(size: FileSystem.SizeInput) {
    const length = Number(size)
    return this.semaphore.withPermits(1)(Effect.suspend(() => {
      const buffer = Buffer.allocUnsafeSlow(length)
      return Effect.map(withMethod("readAlloc", this.file.read(buffer, Number(this.position))), (n) => {
        if (n === 0) return Option.none<Uint8Array>()
        this.position += BigInt(n)
        return Option.some<Uint8Array>(n === length ? buffer : Buffer.from(buffer.subarray(0, n)))
      })
    }))
  }

  truncate(length?: FileSystem.SizeInput) {
    return this.semaphore.withPermits(1)(Effect.suspend(() => {
      const len = length === undefined ? 0n : BigInt(length)
      return Effect.map(withMethod("truncate", this.file.truncate(Number(len))), () => {
        if (!this.append && this.position > len) this.position = len
      })
    }))
  }

  write(buffer: Uint8Array) {
    return this.semaphore.withPermits(1)(Effect.suspend(() =>
      Effect.map(
        withMethod("write", this.file.write(buffer, this.append ? undefined : Number(this.position))),
        (n) => {
          if (!this.append) this.position += BigInt(n)
          return FileSystem.Size(n)
        }
      )
    ))
  }

  writeAll(buffer: Uint8Array) {
    return this.semaphore.withPermits(1)(Effect.suspend(() =>
      Effect.map(
        withMethod("writeAll", this.file.writeAll(buffer, this.append ? undefined : Number(this.position))),
        () => {
          if (!this.append) this.position += BigInt(buffer.byteLength)
        }
      )
    ))
  }
}

// ---- the FileSystem ----------------------------------------------------------------------------

const randomName = (length: number) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  const bytes = Crypto.randomBytes(length)
  let s = ""
  for (const b of bytes) s += alphabet[b % alphabet.length]
  return s
}

/** Reads `file` from `position` to its end, starting with a buffer of `hint` bytes. */
const readToEnd = (file: File.File, hint: number, method: string): Effect.Effect<Uint8Array, SystemError> => {
  let buffer = Buffer.allocUnsafeSlow(Math.max(hint, 1))
  const loop = (done: number): Effect.Effect<Uint8Array, SystemError> => {
    if (done === buffer.byteLength) {
      const bigger = Buffer.allocUnsafeSlow(buffer.byteLength + Math.max(COPY_CHUNK, buffer.byteLength >>> 1))
      buffer.copy(bigger, 0, 0, done)
      buffer = bigger
    }
    return Effect.flatMap(
      withMethod(method, file.read(buffer.subarray(done), done)),
      (n) => (n === 0 ? Effect.succeed(buffer.byteLength === done ? buffer : Buffer.from(buffer.subarray(0, done))) : loop(done + n))
    )
  }
  return loop(0)
}

/**
 * Builds the ring-backed FileSystem for the given Ringline service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  ring: Ringline.Ringline["Type"],
  watchBackend: Option.Option<FileSystem.WatchBackend["Type"]> = Option.none()
): FileSystem.FileSystem => {
  const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Ringline.Ringline>> =>
    Effect.provideService(effect, Ringline.Ringline, ring)

  const stat = (path: string) => run(withMethod("stat", File.stat(path)))

  const access = (path: string, options?: FileSystem.AccessFileOptions): Effect.Effect<void, PlatformError> =>
    Effect.zipRight(
      run(withMethod("access", File.stat(path))),
      options?.readable || options?.writable
        ? viaNode("access", path, () =>
          NFS.promises.access(
            path,
            (options.readable ? NFS.constants.R_OK : 0) | (options.writable ? NFS.constants.W_OK : 0)
          ))
        : Effect.void
    )

  const open = (method: string) => (path: string, options?: FileSystem.OpenFileOptions) =>
    run(Effect.map(
      withMethod(method, File.open(path, { flags: options?.flag ?? "r", mode: options?.mode })),
      (file): FileSystem.File => new FileHandle(file, options?.flag?.startsWith("a") ?? false)
    ))

  const readFile = (path: string): Effect.Effect<Uint8Array, PlatformError> =>
    run(Effect.scoped(Effect.gen(function*() {
      const file = yield* withMethod("readFile", File.open(path, { flags: "r" }))
      const info = yield* withMethod("readFile", File.stat(path))
      return yield* readToEnd(file, Number(info.size), "readFile")
    })))

  const writeFile = (path: string, data: Uint8Array, options?: FileSystem.WriteFileOptions) =>
    run(Effect.scoped(Effect.flatMap(
      withMethod("writeFile", File.open(path, { flags: options?.flag ?? "w", mode: options?.mode })),
      (file) => withMethod("writeFile", file.writeAll(data))
    )))

  const removeTree = (path: string, method: string): Effect.Effect<void, PlatformError> =>
    Effect.flatMap(
      viaNode(method, path, () => NFS.promises.readdir(path, { withFileTypes: true })),
      (entries) =>
        Effect.zipRight(
          Effect.forEach(entries, (entry) => {
            const child = Path.join(path, entry.name)
            return entry.isDirectory()
              ? removeTree(child, method)
              : run(withMethod(method, File.remove(child)))
          }, { concurrency: WALK_CONCURRENCY, discard: true }),
          run(withMethod(method, File.remove(path, { directory: true })))
        )
    )

  const removeFactory = (method: string) => (path: string, options?: FileSystem.RemoveOptions): Effect.Effect<void, PlatformError> =>
    run(withMethod(method, File.remove(path))).pipe(
      Effect.catchIf(
        (e) => isErrno(e, "EISDIR"),
        (e) =>
          options?.recursive
            ? removeTree(path, method)
            : Effect.fail(new SystemError({
              reason: "Unknown",
              module: "FileSystem",
              method,
              pathOrDescriptor: path,
              syscall: "rm",
              description: `Path is a directory: ${path}`,
              cause: e
            }))
      ),
      Effect.catchIf(
        (e) => options?.force === true && e._tag === "SystemError" && e.reason === "NotFound",
        () => Effect.void
      )
    )
  const remove = removeFactory("remove")

  const mkdir = (path: string, mode: number | undefined, method: string) =>
    run(withMethod(method, File.makeDirectory(path, mode)))

  const makeDirectoryRecursive = (path: string, mode: number | undefined): Effect.Effect<void, SystemError> =>
    mkdir(path, mode, "makeDirectory").pipe(
      Effect.catchIf((e) => e.reason === "NotFound" && Path.dirname(path) !== path, () =>
        Effect.zipRight(
          makeDirectoryRecursive(Path.dirname(path), mode),
          mkdir(path, mode, "makeDirectory")
        )),
      Effect.catchIf((e) => e.reason === "AlreadyExists", (e) =>
        Effect.flatMap(
          run(File.stat(path)).pipe(Effect.orElseSucceed(() => undefined)),
          (info) => (info?.type === "Directory" ? Effect.void : Effect.fail(e))
        ))
    )

  const makeDirectory = (path: string, options?: FileSystem.MakeDirectoryOptions) =>
    options?.recursive
      ? makeDirectoryRecursive(Path.resolve(path), options.mode)
      : mkdir(path, options?.mode, "makeDirectory")

  const makeTempDirectoryFactory = (method: string) => (options?: FileSystem.MakeTempDirectoryOptions) =>
    Effect.suspend(() => {
      const prefix = options?.prefix ?? ""
      const directory = typeof options?.directory === "string" ? Path.join(options.directory, ".") : OS.tmpdir()
      const base = prefix ? Path.join(directory, prefix) : directory + "/"
      const attempt = (tries: number): Effect.Effect<string, SystemError> => {
        const path = base + randomName(6)
        // As mkdtemp(3) failures, errors name the template, not the random name.
        return Effect.as(Effect.mapError(mkdir(path, 0o700, method), as(method, base)), path).pipe(
          Effect.catchIf((e) => e.reason === "AlreadyExists" && tries < 100, () => attempt(tries + 1))
        )
      }
      return attempt(0)
    })
  const makeTempDirectory = makeTempDirectoryFactory("makeTempDirectory")

  const makeTempDirectoryScoped = (options?: FileSystem.MakeTempDirectoryOptions) =>
    Effect.acquireRelease(
      makeTempDirectoryFactory("makeTempDirectoryScoped")(options),
      (directory) => Effect.orDie(removeFactory("makeTempDirectoryScoped")(directory, { recursive: true }))
    )

  const makeTempFileFactory = (method: string) => (options?: FileSystem.MakeTempFileOptions) =>
    Effect.flatMap(makeTempDirectoryFactory(method)(options), (directory) => {
      const path = Path.join(directory, Crypto.randomBytes(6).toString("hex") + (options?.suffix ?? ""))
      return Effect.as(Effect.scoped(open(method)(path, { flag: "w+" })), path)
    })
  const makeTempFile = makeTempFileFactory("makeTempFile")

  const makeTempFileScoped = (options?: FileSystem.MakeTempFileOptions) =>
    Effect.acquireRelease(
      makeTempFileFactory("makeTempFileScoped")(options),
      (file) => Effect.orDie(removeFactory("makeTempFileScoped")(Path.dirname(file), { recursive: true }))
    )

  const copyFileImpl = (from: string, to: string, method: string, flags: "w" | "wx" = "w"): Effect.Effect<void, PlatformError> =>
    run(Effect.scoped(Effect.gen(function*() {
      const src = yield* withMethod(method, File.open(from, { flags: "r" }))
      const info = yield* withMethod(method, File.stat(from))
      const mode = info.mode & 0o7777
      const dst = yield* withMethod(method, File.open(to, { flags, mode }))
      const buffer = Buffer.allocUnsafeSlow(Math.min(COPY_CHUNK, Math.max(Number(info.size), 1)))
      let position = 0
      while (true) {
        const n = yield* withMethod(method, src.read(buffer, position))
        if (n === 0) break
        yield* withMethod(method, dst.writeAll(buffer.subarray(0, n), position))
        position += n
      }
      // No fchmod opcode: the created file's mode went through the umask; set it as copyfile(3) does.
      yield* viaNode(method, to, () => NFS.promises.chmod(to, mode))
    })))

  const copyFile = (from: string, to: string) => copyFileImpl(from, to, "copyFile")

  const copy = (from: string, to: string, options?: FileSystem.CopyOptions): Effect.Effect<void, PlatformError> => {
    const overwrite = options?.overwrite ?? false
    const preserve = options?.preserveTimestamps ?? false
    const exists = (path: string) =>
      run(File.lstat(path)).pipe(Effect.as(true), Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false)))
    const times = (src: string, dst: string, info: FileSystem.File.Info) =>
      preserve
        ? viaNode("copy", dst, () =>
          NFS.promises.utimes(dst, Option.getOrElse(info.atime, () => new Date()), Option.getOrElse(info.mtime, () => new Date())))
        : Effect.void
    const one = (src: string, dst: string): Effect.Effect<void, PlatformError> =>
      Effect.flatMap(run(withMethod("copy", File.lstat(src))), (info) => {
        switch (info.type) {
          case "Directory":
            return Effect.gen(function*() {
              yield* makeDirectoryRecursive(Path.resolve(dst), info.mode & 0o7777).pipe(Effect.mapError(as("copy")))
              const entries = yield* viaNode("copy", src, () => NFS.promises.readdir(src))
              yield* Effect.forEach(entries, (name) => one(Path.join(src, name), Path.join(dst, name)), {
                concurrency: WALK_CONCURRENCY,
                discard: true
              })
              yield* times(src, dst, info)
            })
          case "SymbolicLink":
            return Effect.gen(function*() {
              if (yield* exists(dst)) {
                if (!overwrite) return
                yield* run(withMethod("copy", File.remove(dst)))
              }
              const target = yield* viaNode("copy", src, () => NFS.promises.readlink(src))
              yield* run(withMethod("copy", File.symlink(target, dst)))
            })
          default:
            return Effect.gen(function*() {
              if (!overwrite && (yield* exists(dst))) return
              yield* copyFileImpl(src, dst, "copy")
              yield* times(src, dst, info)
            })
        }
      })
    return one(from, to)
  }

  const truncate = (path: string, length?: FileSystem.SizeInput) =>
    run(Effect.scoped(Effect.flatMap(
      withMethod("truncate", File.open(path, { flags: "r+" })),
      (file) => withMethod("truncate", file.truncate(length === undefined ? 0 : Number(length)))
    )))

  const watchNode = (path: string, options?: FileSystem.WatchOptions) =>
    Stream.asyncScoped<FileSystem.WatchEvent, PlatformError>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const watcher = NFS.watch(path, { recursive: options?.recursive }, (event, name) => {
            if (!name) return
            if (event === "rename") {
              emit.fromEffect(Effect.matchEffect(stat(name), {
                onSuccess: () => Effect.succeed(FileSystem.WatchEventCreate({ path: name })),
                onFailure: (err) =>
                  err.reason === "NotFound" ? Effect.succeed(FileSystem.WatchEventRemove({ path: name })) : Effect.fail(err)
              }))
            } else if (event === "change") {
              emit.single(FileSystem.WatchEventUpdate({ path: name }))
            }
          })
          watcher.on("error", (error) => {
            emit.fail(new SystemError({ module: "FileSystem", reason: "Unknown", method: "watch", pathOrDescriptor: path, cause: error }))
          })
          watcher.on("close", () => emit.end())
          return watcher
        }),
        (watcher) => Effect.sync(() => watcher.close())
      )
    )

  return FileSystem.make(refusingNul({
    access,
    chmod: (path, mode) => viaNode("chmod", path, () => NFS.promises.chmod(path, mode)),
    chown: (path, uid, gid) => viaNode("chown", path, () => NFS.promises.chown(path, uid, gid)),
    copy,
    copyFile,
    link: (from, to) => run(File.link(from, to)),
    makeDirectory,
    makeTempDirectory,
    makeTempDirectoryScoped,
    makeTempFile,
    makeTempFileScoped,
    open: open("open"),
    readDirectory: (path, options) =>
      viaNode("readDirectory", path, () => NFS.promises.readdir(path, { recursive: options?.recursive ?? false })),
    readFile,
    readLink: (path) => viaNode("readLink", path, () => NFS.promises.readlink(path)),
    realPath: (path) => viaNode("realPath", path, () => NFS.promises.realpath(path)),
    remove,
    rename: (from, to) => run(File.rename(from, to)),
    stat,
    // NodeFileSystem's symlink errors name the target (its first argument).
    symlink: (target, path) => run(Effect.mapError(File.symlink(target, path), as("symlink", target))),
    truncate,
    utimes: (path, atime, mtime) => viaNode("utimes", path, () => NFS.promises.utimes(path, atime, mtime)),
    watch: (path, options) =>
      stat(path).pipe(
        Effect.map((info) =>
          watchBackend.pipe(
            Option.flatMap((backend) => backend.register(path, info, options)),
            Option.getOrElse(() => watchNode(path, options))
          )
        ),
        Stream.unwrap
      ),
    writeFile
  }))
}

/** NodeFileSystem's method names where they differ from the key (`utimes` fails as `utime`). */
const nodeMethod: Record<string, string> = { utimes: "utime" }

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/**
 * Every method with a NUL byte in a path (a string argument, or an options object's `directory`,
 * `prefix` or `suffix`) fails before any op is submitted, with the error NodeFileSystem gives
 * (Node's fs throws ERR_INVALID_ARG_VALUE for it): `BadArgument` naming the method, except
 * `readDirectory`, which NodeFileSystem reports as a `SystemError` (reason `Unknown`). Without
 * this the kernel would read the C string up to the NUL: `remove("victim\0zzz")` deleting `victim`.
 * The derived methods (`exists`, `readFileString`, `stream`, `sink`, ...) call these.
 */
const refusingNul = <A extends object>(impl: A): A => {
  const out: Record<string, unknown> = {}
  for (const [key, f] of Object.entries(impl)) {
    if (typeof f !== "function") {
      out[key] = f
      continue
    }
    const method = nodeMethod[key] ?? key
    out[key] = (...args: Array<unknown>) => {
      for (const arg of args) {
        const candidates = typeof arg === "string" ? [arg] : isRecord(arg) ? [arg.directory, arg.prefix, arg.suffix] : []
        for (const path of candidates) {
          if (typeof path !== "string" || !path.includes("\0")) continue
          const cause = new TypeError(
            `The argument 'path' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(path)}`
          )
          const error: PlatformError = key === "readDirectory"
            ? new SystemError({ reason: "Unknown", module: "FileSystem", method, pathOrDescriptor: path, description: cause.message, cause })
            : new BadArgument({ module: "FileSystem", method, description: cause.message, cause })
          return key === "watch" ? Stream.fail(error) : Effect.fail(error)
        }
      }
      return f(...args)
    }
  }
  return out as A
}

/**
 * `FileSystem.FileSystem` on the ring; swap it in for `NodeFileSystem.layer`.
 *
 * | method | how |
 * | --- | --- |
 * | `open` → File (`read`, `readAlloc`, `write`, `writeAll`, `seek`, `sync`, `stat`, `truncate`) | `OPENAT` (fixed file), positioned `READ`/`WRITE`, `FSYNC`, `STATX`, `FTRUNCATE`; `seek` moves the handle's position (no syscall, as NodeFileSystem) |
 * | `readFile` / `writeFile` | `OPENAT` + `STATX` + `READ`s / `OPENAT` + `WRITE`s |
 * | `stat`, `exists`, `access` | `STATX` (`access` with `readable`/`writable`: then Node `fs.access`, no faccessat opcode) |
 * | `rename`, `link`, `symlink`, `makeDirectory` | `RENAMEAT`, `LINKAT`, `SYMLINKAT`, `MKDIRAT` (recursive: one per missing level) |
 * | `remove` | `UNLINKAT`; recursive: Node `fs.readdir` (no opcode) + `UNLINKAT` / `UNLINKAT(AT_REMOVEDIR)` |
 * | `makeTempDirectory(Scoped)` / `makeTempFile(Scoped)` | random name + `MKDIRAT` (0o700) / + `OPENAT` |
 * | `copyFile`, `copy` | `READ`/`WRITE` loop; then Node `fs.chmod` (no fchmod opcode); `copy` walks with Node `fs.readdir`/`fs.readlink` |
 * | `truncate` | `OPENAT` + `FTRUNCATE` (Linux 6.9) |
 * | `readDirectory`, `readLink`, `realPath`, `chmod`, `chown`, `utimes`, `watch` | Node `fs` (no opcode) |
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<FileSystem.FileSystem, never, Ringline.Ringline> = Layer.effect(
  FileSystem.FileSystem,
  Effect.gen(function*() {
    const ring = yield* Ringline.Ringline
    const backend = yield* Effect.serviceOption(FileSystem.WatchBackend)
    return make(ring, backend)
  })
)

/**
 * What `require("@ringline/native")` throws when neither a local build nor the shipped prebuilt
 * binary loads; the message lists what was tried and how to build from source.
 */
export interface NativeAddonError extends Error {
  readonly name: "NativeAddonError"
  readonly code: "ERR_RINGLINE_NATIVE_ADDON"
  readonly platform: string
  readonly arch: string
  /** "glibc", "musl", or "" off Linux. */
  readonly libc: string
  readonly tried: ReadonlyArray<{ readonly path: string; readonly reason: string }>
}

/** Options of a native ring. All sizes are validated by @ringline/core before they reach here. */
export interface RingOptions {
  readonly sqEntries: number
  readonly cqEntries: number
  readonly bufferCount: number
  readonly bufferSize: number
  readonly files: number
  readonly sendPoolBytes: number
  readonly argBytes: number
  readonly sqpoll: boolean
  readonly sqpollIdleMs: number
}

/** Memory shared between JS and the ring (see packages/native/src/ring.h). */
export interface RingRegions {
  readonly ctl: ArrayBuffer
  readonly stage: ArrayBuffer
  readonly cqes: ArrayBuffer
  readonly recycle: ArrayBuffer
  readonly recvBuffers: ArrayBuffer
  readonly sendPool: ArrayBuffer
  readonly args: ArrayBuffer
  readonly sendPoolBase: number
  readonly argsBase: number
  readonly recvBuffersBase: number
}

export interface RingInfo {
  readonly mode: "defer-taskrun" | "coop-taskrun" | "sqpoll" | "plain"
  readonly setupFlags: number
  readonly features: number
  readonly sqEntries: number
  readonly cqEntries: number
  readonly files: number
  /** The ring's fd: other threads name this ring with it in IORING_OP_MSG_RING SQEs. */
  readonly ringFd: number
  readonly regions: RingRegions
  /** opcodes[op] === 1 when the kernel supports that IORING_OP_*. */
  readonly opcodes: Uint8Array
}

export declare class Ring {
  constructor(options: RingOptions, onCompletions: (count: number) => void)
  /** Copies staged SQEs into the SQ and submits now (normally done once per loop turn). */
  flush(): void
  ref(): void
  unref(): void
  close(): void
  info(): RingInfo
  bufferStatus(): { head: number; tail: number; available: number }
  /** The ring closes `fd` when it is torn down (e.g. worker termination) unless disowned first. */
  own(fd: number): void
  disown(fd: number): void
  /**
   * Maps a page-aligned pool of `bytes` (rounded up to pages, at most 1 GiB) and registers it as
   * fixed buffer 0 (io_uring_register_buffers, one iovec) for READ_FIXED/WRITE_FIXED, e.g. with
   * O_DIRECT. One pool per ring: a second call throws with errno EBUSY. Unregistered at teardown.
   */
  registerDirectPool(bytes: number): { readonly buffer: ArrayBuffer; readonly base: number }
  /** Drops the registration made by registerDirectPool (no fixed-buffer op may be in flight). */
  unregisterDirectPool(): void
}

/** Memory shared between JS and a WideRing (see packages/native/src/wide_ring.h). */
export interface WideRingRegions {
  /** Int32 control words: [0] staged SQEs, [2] submitted, [4] CQEs, [5] wake-ups, [6] last submit errno. */
  readonly ctl: ArrayBuffer
  /** sqEntries × 128-byte SQEs, filled by JS. */
  readonly stage: ArrayBuffer
  /** cqEntries × 8 Int32: user_data lo, hi, res, flags, big_cqe[0] lo, hi, big_cqe[1] lo, hi. */
  readonly cqes: ArrayBuffer
}

export interface WideRingInfo {
  readonly mode: "defer-taskrun" | "coop-taskrun" | "plain"
  /** Includes IORING_SETUP_SQE128 (1 << 10) and IORING_SETUP_CQE32 (1 << 11). */
  readonly setupFlags: number
  readonly features: number
  readonly sqEntries: number
  readonly cqEntries: number
  readonly regions: WideRingRegions
  /** opcodes[op] === 1 when the kernel supports that IORING_OP_*. */
  readonly opcodes: Uint8Array
}

/**
 * An io_uring with 128-byte SQEs and 32-byte CQEs (IORING_SETUP_SQE128 | IORING_SETUP_CQE32) for
 * IORING_OP_URING_CMD passthrough. Setup failure throws an Error with `errno` and `syscall`
 * (EINVAL on kernels before 5.19). Plain fds only; the ring owns none.
 */
export declare class WideRing {
  constructor(options: { readonly entries: number }, onCompletions: (count: number) => void)
  /** Copies staged SQEs into the SQ and submits now (normally done once per loop turn). */
  flush(): void
  ref(): void
  unref(): void
  /** Idempotent; exiting the ring cancels whatever is still in flight. */
  close(): void
  info(): WideRingInfo
}

export declare function listen(sockaddr: Uint8Array, backlog: number, reusePort: boolean, type?: number, noDelay?: boolean): number
export declare function sockName(fd: number, peer: boolean): Uint8Array
export declare function getIntOpt(fd: number, level: number, name: number): number
export declare function setIntOpt(fd: number, level: number, name: number, value: number): void
export declare function closeFd(fd: number): void
export declare function addressOf(view: Uint8Array): number
/**
 * Fixes glibc's mmap and trim thresholds (mallopt): true when applied, false without glibc.
 * Throws a RangeError outside 0..32 MiB (mmap) or 0..1 GiB (trim). With `deferred` the
 * thresholds are only kept (true) and the first {@link mallocLargeRun} of any thread applies them.
 */
export declare function tuneMalloc(mmapThreshold: number, trimThreshold: number, deferred?: boolean): boolean

/**
 * Applies the thresholds a deferred {@link tuneMalloc} kept, once per process: call it when a
 * reader is first handed a large run. True when this call applied them.
 */
export declare function mallocLargeRun(): boolean

/**
 * For tests only, and irreversible: installs on every thread of this process (seccomp
 * SECCOMP_FILTER_FLAG_TSYNC, after PR_SET_NO_NEW_PRIVS) a filter that makes io_uring_setup,
 * io_uring_enter and io_uring_register fail with EPERM, as Docker's default seccomp profile does;
 * every other syscall of the native ABI is allowed (syscalls of another ABI, e.g. i386 compat or
 * x32, fail with EPERM too). Call it before any ring exists, in a process made for that purpose.
 * Throws an errno error (`syscall` names prctl or seccomp) when the kernel refuses the filter.
 */
export declare function blockIoUringForTesting(): void

/** What a child's stdio stream is connected to: a new pipe, this process's fd, /dev/null, or a given fd. */
export type StdioMode = "pipe" | "inherit" | "ignore" | number

/** A started child: its pid, a pidfd (O_CLOEXEC) and the parent's pipe ends (-1 when not piped). */
export interface Spawned {
  readonly pid: number
  readonly pidfd: number
  readonly stdin: number
  readonly stdout: number
  readonly stderr: number
}

/**
 * Starts `file` (searched in PATH of `env`, or of this process when `env` is null, unless it has a
 * slash) with the full argv `args` (args[0] is the program name), the environment `env`
 * ("K=V" strings; null inherits) and working directory `cwd` (null: this process's).
 * Failures before or in execve (ENOENT, EACCES, a bad cwd...) throw an Error with `errno` and
 * `syscall` ("execve", "chdir", "dup2", "clone3", "pipe2"); the failed child is already reaped.
 */
export declare function spawn(
  file: string,
  args: ReadonlyArray<string>,
  env: ReadonlyArray<string> | null,
  cwd: string | null,
  stdio: readonly [StdioMode, StdioMode, StdioMode]
): Spawned
/** pidfd_send_signal(pidfd, signal). Throws with errno ESRCH once the child was reaped. */
export declare function kill(pidfd: number, signal: number): void
/**
 * waitid(P_PIDFD, WEXITED | WNOHANG): null while the child runs, else its siginfo `code`
 * (CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3) and `status` (exit code or signal number).
 */
export declare function reap(pidfd: number): { code: number; status: number } | null

/** Pins the calling thread (only it, not the process) to exactly these CPUs (sched_setaffinity(0, ...)). */
export declare function setAffinity(cpus: ReadonlyArray<number>): void
/** The CPUs the calling thread may run on (sched_getaffinity(0, ...)). */
export declare function getAffinity(): Array<number>
/** The calling thread's kernel thread id (gettid), as in /proc/self/task/<tid>. */
export declare function threadId(): number
/** TLS (tls.cc), on the OpenSSL that Node exports. See packages/tls/src/internal/engine.ts. */
export interface TlsContextOptions {
  readonly server: boolean
  readonly cert?: string
  readonly key?: string
  readonly ca?: ReadonlyArray<string>
  readonly alpn?: ReadonlyArray<string>
  readonly minVersion?: number
  readonly maxVersion?: number
  /** 0: no verification; 1: verify the peer's certificate; 2: also require one. */
  readonly verify?: 0 | 1 | 2
  readonly sni?: ReadonlyArray<readonly [string, TlsContext]>
  readonly tickets?: boolean
}
export declare class TlsContext {
  constructor(options: TlsContextOptions)
  /** Session-ticket keys, 80 bytes each (16 name, 32 HMAC, 32 AES), newest first. */
  setTicketKeys(keys: Uint8Array): void
}
export interface TlsSessionInfo {
  readonly protocol: string
  readonly cipher?: string
  readonly alpn?: string
  readonly servername?: string
  readonly resumed: boolean
  readonly verifyError: string | null
  readonly peerCertificate?: string
}
/** Every call writes its results into `io` (layout: TlsIo in tls.h) and returns the event bits. */
export declare class TlsSession {
  constructor(
    context: TlsContext,
    io: Float64Array,
    options?: { servername?: string; verifyHost?: string; verifyIp?: string; sessionKey?: string }
  )
  handshake(): number
  feed(input: Uint8Array | null, plain: Uint8Array): number
  write(plain: Uint8Array): number
  /**
   * `write` of the first `len` bytes of the scratch that follows the io area in its ArrayBuffer
   * (`io` made as a view of a larger buffer); RangeError beyond it. For small writes.
   */
  writeScratch(len: number): number
  shutdown(): number
  keyUpdate(requestPeer: boolean): number
  release(): void
  /** A copy of the reported span (chunk id, address, length); RangeError outside the chunk. */
  copy(chunk: number, addr: number, len: number): Uint8Array
  info(): TlsSessionInfo
  error(): string | null
  free(): void
}
/** The OpenSSL the addon runs on (Node's) was built with kernel TLS support (no OPENSSL_NO_KTLS). */
export declare const tlsOpensslKtls: boolean
/** OpenSSL_version(OPENSSL_VERSION) of that OpenSSL, e.g. "OpenSSL 3.0.15+quic 3 Sep 2024". */
export declare const tlsOpensslVersion: string
// ---- HTTP/1.1 request parser (llhttp), used by @ringline/http ----------------------------------

/**
 * The record array shared with the parser: word 0 = words used by the last `httpParse`, records
 * from word 2 (layout in src/http_parser.cc).
 */
export declare const httpRecords: Int32Array
/** A new request parser; returns its id. */
export declare function httpParserCreate(maxHeadBytes: number, maxHeaders: number): number
export declare function httpParserFree(id: number): void
/** Parses `view` (at most `maxHeads` new request heads); returns the bytes consumed. */
export declare function httpParse(id: number, view: Uint8Array, maxHeads: number): number
/** llhttp's name of an errno (HPE_*). */
export declare function httpErrorName(errno: number): string
/** HTTP method names indexed by llhttp's method code. */
export declare const httpMethods: ReadonlyArray<string>

/**
 * The io_uring ABI this addon was compiled against (liburing's header, offsetof on its structs,
 * the control-word enums): compared entry by entry with @ringline/core's table by a test.
 */
export declare const abi: {
  readonly op: Readonly<Record<string, number>>
  readonly sqeFlag: Readonly<Record<string, number>>
  readonly cqeFlag: Readonly<Record<string, number>>
  readonly setupFlag: Readonly<Record<string, number>>
  readonly values: Readonly<Record<string, number>>
  readonly sqeOffset: Readonly<Record<string, number>>
  readonly cqeOffset: Readonly<Record<string, number>>
  readonly ctl: Readonly<Record<string, number>>
  /** A zeroed 64-byte SQE filled by liburing's `io_uring_prep_<name>(sqe, ...args)` (for tests). */
  readonly prepSqe: (name: string, args: ReadonlyArray<number>) => ArrayBuffer
}

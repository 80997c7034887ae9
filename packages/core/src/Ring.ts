/**
 * The low-level layer, for libraries that build their own operations on ringline's io_uring
 * (`@ringline/storage`, the TLS and HTTP packages): the current thread's ring, liburing-style
 * prep helpers over named SQE fields, per-slot argument memory, fixed files and registered
 * buffers, one helper that runs an SQE as an interruptible Effect, errno → typed errors, and the
 * io_uring ABI table (opcodes, flags, layouts) shared with the addon.
 *
 * Applications should not need this module: `Tcp`, `Udp`, `Process`, the storage package... are
 * built on it.
 *
 * The rules every op keeps (and {@link submit} keeps for you):
 * - an op owns a slot from submission until its terminal CQE (no `IORING_CQE_F_MORE`); its
 *   user_data is (slot, generation), so a late CQE can never reach the slot's next owner;
 * - the memory an op points at is pinned by its slot ({@link Hold}) until that CQE, even if its
 *   ArrayBuffer is detached meanwhile (a transfer): the memory then stays until that CQE;
 * - interruption cancels the op by user_data and completes only after the op's terminal CQE and
 *   the cancel's own CQE: a buffer is never reused while the kernel may still write it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Ring, Ringline } from "@ringline/core"
 * import { openSync } from "node:fs"
 *
 * // pread(2) through the ring, as one interruptible Effect.
 * const pread = (fd: number, into: Uint8Array, position: number) =>
 *   Effect.flatMap(Ring.current, (ring) =>
 *     Ring.run(ring, "read", (slot) => {
 *       Ring.prepRead(ring, slot, fd, Ring.addressOf(into), into.byteLength, position)
 *       return into // pinned until the CQE
 *     }))
 *
 * const program = Effect.gen(function*() {
 *   const buf = new Uint8Array(16)
 *   const n = yield* pread(openSync("/etc/hostname", "r"), buf, 0)
 *   console.log(n, new TextDecoder().decode(buf.subarray(0, n)))
 * })
 * Effect.runPromise(program.pipe(Effect.provide(Ringline.layer())))
 * ```
 *
 * @since 0.1.0
 */
import type { SystemError, SystemErrorReason } from "@effect/platform/Error"
import { Effect } from "effect"
import type { Scope } from "effect"
import { ARG_BYTES as DRIVER_ARG_BYTES } from "./internal/driver.js"
import { errnoName as errnoNameInternal } from "./internal/errno.js"
import { load } from "./internal/native.js"
import * as abi from "./internal/ring/abi.js"
import * as close from "./internal/ring/close.js"
import * as errors from "./internal/ring/errors.js"
import * as handle from "./internal/ring/handle.js"
import * as op from "./internal/ring/op.js"
import * as prep from "./internal/ring/prep.js"
import * as probe from "./internal/ring/probe.js"
import * as wide from "./internal/ring/wide.js"
import { reasonOf as reasonOfInternal } from "./internal/systemError.js"
import * as validate from "./internal/validate.js"
import { Ringline } from "./Ringline.js"
import { notAvailable, RinglineUnavailable } from "./RinglineError.js"

// ---- the ABI ------------------------------------------------------------------------------------

/**
 * IORING_OP_* values (uapi `<linux/io_uring.h>`), checked against the addon's build by a test.
 *
 * @since 0.1.0
 * @category abi
 */
export const Op = abi.Op
/**
 * @since 0.1.0
 * @category abi
 */
export type OpName = abi.OpName
/**
 * IOSQE_* flags (the `flags` argument of {@link Ring.sqe} and of every prep helper).
 *
 * @since 0.1.0
 * @category abi
 */
export const SqeFlag = abi.SqeFlag
/**
 * IORING_CQE_F_* flags; the provided buffer id is `flags >>> CQE_BUFFER_SHIFT`.
 *
 * @since 0.1.0
 * @category abi
 */
export const CqeFlag = abi.CqeFlag
/**
 * @since 0.1.0
 * @category abi
 */
export const CQE_BUFFER_SHIFT = abi.CQE_BUFFER_SHIFT
/**
 * IORING_SETUP_* flags, as reported by a ring's `setupFlags`.
 *
 * @since 0.1.0
 * @category abi
 */
export const SetupFlag = abi.SetupFlag
/**
 * Byte offsets of the fields of `struct io_uring_sqe` (for building 128-byte SQEs by hand).
 *
 * @since 0.1.0
 * @category abi
 */
export const SqeOffset = abi.SqeOffset
/**
 * The SQE fields as 32-bit word offsets from the word index {@link Ring.sqe} returns, for
 * `ring.words[w + SqeWord.len] = ...` (u64 fields: {@link setU64}).
 *
 * @since 0.1.0
 * @category abi
 */
export const SqeWord = abi.W
/**
 * Control words shared with a native ring (staged, submitted, cqes, ...).
 *
 * @since 0.1.0
 * @category abi
 */
export const Ctl = abi.Ctl
/**
 * `file_index` asking the kernel to pick a free fixed-file slot (IORING_FILE_INDEX_ALLOC); the
 * CQE result is then the slot.
 *
 * @since 0.1.0
 * @category abi
 */
export const FILE_INDEX_ALLOC = abi.FILE_INDEX_ALLOC
/**
 * Offset -1: "the file's current position" (read/write on pipes, or advancing the position).
 *
 * @since 0.1.0
 * @category abi
 */
export const CURRENT_POSITION = prep.CURRENT_POSITION
/**
 * Bytes of argument memory each op slot owns ({@link Ring.argView}): room for a sockaddr, a
 * timespec, a few iovecs. Valid until the slot's terminal CQE.
 *
 * @since 0.1.0
 * @category abi
 */
export const ARG_BYTES = DRIVER_ARG_BYTES

/**
 * Writes a u64 SQE field (`off`, `addr`, `addr3`) from a number below 2^53; -1 writes all ones.
 *
 * @since 0.1.0
 * @category submission
 */
export const setU64 = (ring: Ring, w: number, field: number, value: number): void => abi.putU64(ring.words, w + field, value)

// ---- the ring -----------------------------------------------------------------------------------

/**
 * Receives the CQEs of ops it submitted with {@link Ring.alloc}: `tag` is what it passed there.
 * Called synchronously from the completion batch; must not throw.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpOwner extends op.OpOwner {}

/**
 * Memory an op points at, pinned by its slot until the terminal CQE (views and ArrayBuffers
 * keep their memory even if detached meanwhile; anything else in it is only kept reachable).
 *
 * @since 0.1.0
 * @category models
 */
export type Hold = op.Hold

/**
 * The current thread's io_uring, as seen by code that submits its own SQEs. Plain methods, no
 * Effect: they run inside `prepare` callbacks and completion handlers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ring extends handle.RingHandle {}

/**
 * The ring of the `Ringline` service in context. Fails with `RinglineUnavailable` when that
 * service is not the io_uring one (another implementation has no ring).
 *
 * @since 0.1.0
 * @category accessors
 */
export const current: Effect.Effect<Ring, RinglineUnavailable, Ringline> = Effect.flatMap(Ringline, (service) =>
  service.driver === undefined
    ? Effect.fail(notAvailable("Ring (io_uring operations)", service.mode))
    : Effect.succeed(handle.ringOf(service.driver)))

/**
 * The address of a view's first byte, for SQE address fields. The view must stay reachable
 * (pinned with {@link Ring.hold} or returned from `prepare`) until the op's CQE.
 *
 * @since 0.1.0
 * @category submission
 */
export const addressOf = (view: Uint8Array): number => load().addressOf(view)

/**
 * A NUL-terminated UTF-8 copy of `s` (a path argument).
 *
 * @since 0.1.0
 * @category submission
 */
export const cString = (s: string): Buffer => {
  const b = Buffer.allocUnsafe(Buffer.byteLength(s) + 1)
  b[b.write(s)] = 0
  return b
}

// ---- arguments ----------------------------------------------------------------------------------

/**
 * Why `value` cannot be passed to the kernel as a C string (not a string, or a NUL byte that
 * would cut it short), or undefined when it can. Check paths before staging an op.
 *
 * @since 0.1.0
 * @category arguments
 */
export const badCString: (value: unknown) => string | undefined = validate.badCString

/**
 * `value`'s bytes: a Uint8Array as is, another ArrayBufferView over the same memory; anything
 * else throws a TypeError naming `where` (a defect: the type said bytes).
 *
 * @since 0.1.0
 * @category arguments
 */
export const bytesOf: (value: unknown, where: string) => Uint8Array = validate.bytesOf

/**
 * A short, bounded description of any value, for argument error messages.
 *
 * @since 0.1.0
 * @category arguments
 */
export const show: (value: unknown) => string = validate.show

// ---- prep helpers -------------------------------------------------------------------------------

/**
 * io_uring_prep_rw: opcode, fd, addr, len and offset of one SQE for `slot`; returns its word index.
 *
 * @since 0.1.0
 * @category prep
 */
export const prepRw: (
  ring: Ring,
  slot: number,
  op: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  sqeFlags?: number
) => number = prep.prepRw
/**
 * @since 0.1.0
 * @category prep
 */
export const prepNop: (ring: Ring, slot: number, sqeFlags?: number) => number = prep.prepNop
/**
 * IORING_OP_READ into `addr` at `offset` ({@link CURRENT_POSITION} for the current position).
 *
 * @since 0.1.0
 * @category prep
 */
export const prepRead: (ring: Ring, slot: number, fd: number, addr: number, len: number, offset: number, sqeFlags?: number) => number =
  prep.prepRead
/**
 * @since 0.1.0
 * @category prep
 */
export const prepWrite: (ring: Ring, slot: number, fd: number, addr: number, len: number, offset: number, sqeFlags?: number) => number =
  prep.prepWrite
/**
 * @since 0.1.0
 * @category prep
 */
export const prepReadv: (ring: Ring, slot: number, fd: number, iovecs: number, nrVecs: number, offset: number, sqeFlags?: number) => number =
  prep.prepReadv
/**
 * @since 0.1.0
 * @category prep
 */
export const prepWritev: (ring: Ring, slot: number, fd: number, iovecs: number, nrVecs: number, offset: number, sqeFlags?: number) => number =
  prep.prepWritev
/**
 * IORING_OP_READ_FIXED from registered buffer `bufIndex` ({@link Ring.registerBuffers}: 0).
 *
 * @since 0.1.0
 * @category prep
 */
export const prepReadFixed: (
  ring: Ring,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  bufIndex: number,
  sqeFlags?: number
) => number = prep.prepReadFixed
/**
 * @since 0.1.0
 * @category prep
 */
export const prepWriteFixed: (
  ring: Ring,
  slot: number,
  fd: number,
  addr: number,
  len: number,
  offset: number,
  bufIndex: number,
  sqeFlags?: number
) => number = prep.prepWriteFixed
/**
 * @since 0.1.0
 * @category prep
 */
export const prepFsync: (ring: Ring, slot: number, fd: number, datasync: boolean, sqeFlags?: number) => number = prep.prepFsync
/**
 * @since 0.1.0
 * @category prep
 */
export const prepFallocate: (ring: Ring, slot: number, fd: number, mode: number, offset: number, len: number, sqeFlags?: number) => number =
  prep.prepFallocate
/**
 * IORING_OP_FTRUNCATE (Linux 6.9).
 *
 * @since 0.1.0
 * @category prep
 */
export const prepFtruncate: (ring: Ring, slot: number, fd: number, len: number, sqeFlags?: number) => number = prep.prepFtruncate
/**
 * IORING_OP_OPENAT; with `fileIndex` the file goes into the fixed-file table instead of an fd
 * ({@link FILE_INDEX_ALLOC}: the kernel picks the slot and returns it).
 *
 * @since 0.1.0
 * @category prep
 */
export const prepOpenat: (ring: Ring, slot: number, dfd: number, path: number, flags: number, mode: number, fileIndex?: number) => number =
  prep.prepOpenat
/**
 * @since 0.1.0
 * @category prep
 */
export const prepClose: (ring: Ring, slot: number, fd: number) => number = prep.prepClose
/**
 * IORING_OP_CLOSE of a fixed-file slot.
 *
 * @since 0.1.0
 * @category prep
 */
export const prepCloseDirect: (ring: Ring, slot: number, fileIndex: number) => number = prep.prepCloseDirect
/**
 * IORING_OP_STATX into a 256-byte `struct statx` at `statxbuf`.
 *
 * @since 0.1.0
 * @category prep
 */
export const prepStatx: (ring: Ring, slot: number, dfd: number, path: number, flags: number, mask: number, statxbuf: number) => number =
  prep.prepStatx
/**
 * @since 0.1.0
 * @category prep
 */
export const prepRenameat: (
  ring: Ring,
  slot: number,
  oldDfd: number,
  oldPath: number,
  newDfd: number,
  newPath: number,
  flags?: number
) => number = prep.prepRenameat
/**
 * @since 0.1.0
 * @category prep
 */
export const prepUnlinkat: (ring: Ring, slot: number, dfd: number, path: number, flags?: number) => number = prep.prepUnlinkat
/**
 * @since 0.1.0
 * @category prep
 */
export const prepMkdirat: (ring: Ring, slot: number, dfd: number, path: number, mode: number) => number = prep.prepMkdirat
/**
 * @since 0.1.0
 * @category prep
 */
export const prepSymlinkat: (ring: Ring, slot: number, target: number, newDfd: number, linkPath: number) => number = prep.prepSymlinkat
/**
 * @since 0.1.0
 * @category prep
 */
export const prepLinkat: (
  ring: Ring,
  slot: number,
  oldDfd: number,
  oldPath: number,
  newDfd: number,
  newPath: number,
  flags?: number
) => number = prep.prepLinkat
/**
 * IORING_OP_FIXED_FD_INSTALL (Linux 6.8): a regular O_CLOEXEC fd for a fixed-file slot (the CQE
 * result), for syscalls that take no fixed files.
 *
 * @since 0.1.0
 * @category prep
 */
export const prepFixedFdInstall: (ring: Ring, slot: number, fileIndex: number, flags?: number) => number = prep.prepFixedFdInstall

// ---- ops as Effects -----------------------------------------------------------------------------

/**
 * One op: `prepare(slot)` stages its SQE and returns the memory it points at (pinned until the
 * terminal CQE); `finish` turns the CQE result (negative errno on failure) into the outcome;
 * `always` sees the result at the CQE even when the caller was interrupted (to give back what the
 * op used); `guard` runs first, uninterruptibly, and may return an Effect to run instead of the op.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpSpec<A, E> extends op.OpSpec<A, E> {}

/**
 * Runs one SQE as an Effect (see {@link OpSpec}). Interruption cancels the op and completes after
 * its terminal CQE and the cancel's CQE.
 *
 * @since 0.1.0
 * @category ops
 */
export const submit = <A, E>(ring: Ring, spec: OpSpec<A, E>): Effect.Effect<A, E> => op.submitWith(handle.driverOf(ring), spec)

/**
 * Runs one SQE and succeeds with the raw CQE result (a negative errno on failure).
 *
 * @since 0.1.0
 * @category ops
 */
export const submitRaw = (ring: Ring, prepare: (slot: number) => Hold | void, always?: (res: number) => void): Effect.Effect<number> =>
  op.submit(handle.driverOf(ring), prepare, always)

/**
 * For ops whose result is a resource (an fd, a fixed-file slot): if the caller is interrupted
 * after the kernel produced it, `dispose(res)` releases it before the interruption completes;
 * on success `use(res)` runs before the result is returned, in the same uninterruptible region.
 *
 * @since 0.1.0
 * @category ops
 */
export const submitOwned = <E, R>(
  ring: Ring,
  prepare: (slot: number) => Hold | void,
  dispose: (res: number) => Effect.Effect<void>,
  use: (res: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<number, E, R> => op.submitOwned(handle.driverOf(ring), prepare, dispose, use)

/**
 * {@link submit} for hot paths, as a class: a subclass holds one op's arguments as fields and
 * implements `prepare(slot)` and `finish(res)` (and `always(res)` if it must see every CQE), with
 * the rules of {@link OpSpec}. Running it costs one object instead of a spec object and a closure
 * per callback. Build one per run, inside the `Effect.uninterruptibleMask` that {@link awaitOperation}
 * runs in (an Effect may run twice, or twice at once: an instance must never be shared).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Ring } from "@ringline/core"
 *
 * class Pread extends Ring.Operation<number, never> {
 *   constructor(readonly ring: Ring.Ring, readonly fd: number, readonly into: Uint8Array, readonly at: number) {
 *     super()
 *   }
 *   prepare(slot: number) {
 *     Ring.prepRead(this.ring, slot, this.fd, Ring.addressOf(this.into), this.into.byteLength, this.at)
 *     return this.into // pinned until the CQE
 *   }
 *   finish(res: number) {
 *     return Effect.succeed(res) // the raw result: a negative errno on failure
 *   }
 * }
 * const pread = (ring: Ring.Ring, fd: number, into: Uint8Array, at: number) =>
 *   Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, new Pread(ring, fd, into, at), restore))
 * ```
 *
 * @since 0.1.0
 * @category ops
 */
export abstract class Operation<A, E> extends op.Op<A, E> {}

/**
 * Stages `op` and waits for its CQE, as the body of an `Effect.uninterruptibleMask` whose
 * `restore` is passed in: the wait is as interruptible as the caller, and interruption cancels
 * the op and completes after its terminal CQE and the cancel's (see {@link Operation}). A throw from
 * `prepare` is a defect, after `always(-EAGAIN)`; so is an `operation` that is not an instance of an
 * {@link Operation} subclass (nothing staged).
 *
 * @since 0.1.0
 * @category ops
 */
export const awaitOperation = <A, E>(
  ring: Ring,
  operation: Operation<A, E>,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
): Effect.Effect<A, E> =>
  // Checked before a slot is taken: an object that is not an Operation has none of its private
  // state, so it would fail half-way through staging with the slot already allocated.
  operation instanceof op.Op
    ? op.awaitOp(handle.driverOf(ring), operation, restore)
    : Effect.die(
      new TypeError(
        `Ring.awaitOperation: operation must be an instance of a Ring.Operation subclass (got ${
          operation === null ? "null" : typeof operation === "object" ? (operation as object).constructor?.name ?? "object" : typeof operation
        })`
      )
    )

/**
 * An op failed in the kernel (`res < 0` in its CQE).
 *
 * @since 0.1.0
 * @category errors
 */
export const RingOpError = errors.RingOpError
/**
 * @since 0.1.0
 * @category errors
 */
export type RingOpError = errors.RingOpError

/**
 * A {@link RingOpError} for a negative CQE result (or a positive errno), counted in the ring's
 * error statistics.
 *
 * @since 0.1.0
 * @category errors
 */
export const opError: (ring: Ring | undefined, operation: string, res: number) => RingOpError = errors.opError

/**
 * Runs one SQE: succeeds with the CQE result when it is >= 0, fails with a {@link RingOpError}
 * naming `operation` otherwise.
 *
 * @since 0.1.0
 * @category ops
 */
export const run = (ring: Ring, operation: string, prepare: (slot: number) => Hold | void): Effect.Effect<number, RingOpError> =>
  op.submitWith(handle.driverOf(ring), {
    prepare,
    finish: (res) => (res < 0 ? Effect.fail(opError(ring, operation, res)) : Effect.succeed(res))
  })

/**
 * Closes fixed-file slot `index` through the ring (a direct close) and calls `done` after its
 * CQE; accept loops waiting for a free slot are told. Never throws.
 *
 * @since 0.1.0
 * @category fixed files
 */
export const closeFixedThen: (ring: Ring, index: number, done: () => void) => void = close.closeFixedThen

/**
 * `closeFixedThen` as an Effect; uninterruptible: it always waits for the CQE.
 *
 * @since 0.1.0
 * @category fixed files
 */
export const closeFixed: (ring: Ring, index: number) => Effect.Effect<void> = close.closeFixed

/**
 * Closes a regular fd through the ring; completes after the CQE.
 *
 * @since 0.1.0
 * @category fixed files
 */
export const closeFd: (ring: Ring, fd: number) => Effect.Effect<void> = close.closeFd

// ---- errno --------------------------------------------------------------------------------------

/**
 * The errno name of a negative CQE result or a positive errno (`ENOENT`; `E<n>` if unknown).
 *
 * @since 0.1.0
 * @category errors
 */
export const errnoName = (errno: number): string => errnoNameInternal(errno)

/**
 * errno name → `@effect/platform` SystemError reason, exactly as `@effect/platform-node` maps it.
 *
 * @since 0.1.0
 * @category errors
 */
export const reasonOf = (code: string): SystemErrorReason => reasonOfInternal(code)

/**
 * An `@effect/platform` SystemError for a negative CQE result, its reason mapped as
 * `@effect/platform-node` does and the errno code in the description; counted in `ring`'s
 * error statistics when given.
 *
 * @since 0.1.0
 * @category errors
 */
export const systemError: (
  ring: Ring | undefined,
  options: {
    readonly res: number
    readonly module: SystemError["module"]
    readonly method: string
    readonly syscall: string
    readonly pathOrDescriptor: string | number
  }
) => SystemError = errors.systemError

// ---- probes -------------------------------------------------------------------------------------

/**
 * The opcodes this kernel supports (`supported[op] === 1`), from IORING_REGISTER_PROBE on a small
 * throwaway ring: no `Ringline` service needed. Fails with `RinglineUnavailable` when no ring can
 * be set up.
 *
 * @since 0.1.0
 * @category probes
 */
export const probeOpcodes: Effect.Effect<Uint8Array, RinglineUnavailable> = probe.probeOpcodes

// ---- wide rings (128-byte SQEs, 32-byte CQEs) ---------------------------------------------------

/**
 * A ring of its own with 128-byte SQEs and 32-byte CQEs (IORING_SETUP_SQE128 | CQE32), for
 * IORING_OP_URING_CMD passthrough (NVMe generic char devices), which the main ring's 64-byte SQEs
 * cannot carry. Same op rules as the main ring: slots with generations, holds pinned until the
 * CQE, interruption cancels and waits for the CQE.
 *
 * @since 0.1.0
 * @category wide rings
 */
export interface WideRing {
  /** Ring set-up the kernel accepted: `defer-taskrun`, `coop-taskrun` or `plain`. */
  readonly mode: string
  /** IORING_SETUP_* flags (always including SQE128 and CQE32). */
  readonly setupFlags: number
  /** `opcodes[op] === 1` when the kernel supports that opcode. */
  readonly opcodes: Uint8Array
  /** SQE and CQE entries the kernel gave this ring. */
  readonly entries: { readonly sq: number; readonly cq: number }
  /** Ops in flight, cancels included. */
  readonly inFlight: number
  /** SQEs submitted to the kernel so far (a wrapping counter). */
  readonly submitted: number
  /** True once the ring's scope has closed it. */
  readonly closed: boolean
  /**
   * Submits one 128-byte SQE (its user_data is overwritten) and succeeds with its CQE; `hold` is
   * kept alive until then, and the memory of each view or ArrayBuffer in it stays allocated even
   * if the caller transfers (detaches) its ArrayBuffer meanwhile. Interruption cancels the op and
   * completes after its CQE.
   */
  submit(sqe: Uint8Array, hold?: Hold): Effect.Effect<Completion, WideRingClosed>
}
/**
 * The CQE of a wide-ring op: res, flags and the two extra u64 words of a 32-byte CQE.
 *
 * @since 0.1.0
 * @category wide rings
 */
export type Completion = wide.Completion
/**
 * The wide ring could not be set up (EINVAL: a kernel before 5.19).
 *
 * @since 0.1.0
 * @category wide rings
 */
export const WideRingError = wide.WideRingError
/**
 * @since 0.1.0
 * @category wide rings
 */
export type WideRingError = wide.WideRingError
/**
 * An op was submitted after the wide ring's scope closed.
 *
 * @since 0.1.0
 * @category wide rings
 */
export const WideRingClosed = wide.WideRingClosed
/**
 * @since 0.1.0
 * @category wide rings
 */
export type WideRingClosed = wide.WideRingClosed
/**
 * A wide ring of `entries` SQEs for the current scope; closing the scope cancels what is in
 * flight and closes the ring after their CQEs.
 *
 * @since 0.1.0
 * @category wide rings
 */
export const makeWide: (entries?: number) => Effect.Effect<WideRing, WideRingError, Scope.Scope> = wide.make
/**
 * A zeroed 128-byte SQE with `opcode` and `fd` set.
 *
 * @since 0.1.0
 * @category wide rings
 */
export const blankSqe: (opcode: number, fd?: number) => Uint8Array = wide.blankSqe

/**
 * A minimal driver for a WideRing (packages/native/src/wide_ring.h): an io_uring with 128-byte
 * SQEs and 32-byte CQEs for IORING_OP_URING_CMD passthrough (NVMe generic char devices).
 *
 * Op slots work as in core's driver.ts: an op's user_data is (slot, generation), a CQE whose
 * generation no longer matches is stale and ignored, and a slot (with whatever memory the op
 * points at, kept in `holds`) is released only at the op's terminal CQE. The memory of each
 * view in a hold is also pinned natively until then (`forEachDetachable`, as driver.ts does): a caller
 * that transfers the ArrayBuffer meanwhile moves the memory to a new owner, whose collection
 * would otherwise free it under the kernel. Interrupting an op
 * issues IORING_OP_ASYNC_CANCEL by user_data, and the interruption completes only after the
 * target's own CQE, so the kernel can never write into a buffer JS has already let go.
 *
 * The ring's lifetime is a Scope: releasing it cancels what is still in flight, waits until the
 * op table is empty, then closes the ring.
 */
import { Data, Effect, type Scope } from "effect"
import { errnoName } from "../errno.js"
import { load, type Native } from "../native.js"
import { CQE32_WORDS, CqeFlag, CqeWord, Ctl, Op, SetupFlag, SQE128_BYTES, SqeOffset } from "./abi.js"
import { forEachDetachable, type Hold } from "./op.js"
import { GEN_MASK, OpSlots } from "./slots.js"

/** The setup flags every wide ring has. */
export const WIDE_SETUP = SetupFlag.SQE128 | SetupFlag.CQE32
const SQE_BYTES = SQE128_BYTES

/** The result of an op: the CQE's res and flags, and the two extra u64 words of a 32-byte CQE. */
export interface Completion {
  readonly res: number
  readonly flags: number
  readonly big0: bigint
  readonly big1: bigint
}

/** The wide ring could not be set up (EINVAL: the kernel knows no SQE128/CQE32, i.e. before 5.19). */
export class WideRingError extends Data.TaggedError("WideRingError")<{
  readonly errno: number
  readonly code: string
  readonly syscall: string
}> {
  override get message(): string {
    return `${this.syscall} with IORING_SETUP_SQE128 | IORING_SETUP_CQE32 failed: ${this.code} (errno ${this.errno})`
  }
}

/** The op was submitted after the ring's scope closed. */
export class WideRingClosed extends Data.TaggedError("WideRingClosed")<{}> {
  override get message(): string {
    return "the passthrough ring is closed (its scope has ended)"
  }
}

type Owner = (c: Completion) => void
const ignore: Owner = () => {}

const big = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)

export class WideRing {
  readonly native: Native.WideRing
  readonly mode: string
  readonly setupFlags: number
  readonly opcodes: Uint8Array
  readonly capacity: number
  private readonly ctl: Int32Array
  private readonly stage: Uint8Array
  private readonly stageWords: Int32Array
  private readonly stageCap: number
  private readonly cqes: Int32Array
  private readonly slots: OpSlots<Owner, Hold>
  private readonly cancelOp: Uint8Array
  /** What an op points at (data buffers, timespecs), kept alive until its CQE. */
  private readonly holds: Array<Hold | undefined>
  /** Native pins of each slot's hold (see `pinHold`), ended when the slot is released. */
  private readonly pins: Array<Array<number> | undefined> = []
  private deferredError: unknown = undefined
  closed = false
  /** Ops (not counting cancels) admitted at once: each may need a second slot for its cancel. */
  readonly permits: Effect.Semaphore

  constructor(native: typeof Native, entries: number) {
    this.native = new native.WideRing({ entries }, (count) => this.dispatch(count))
    const info = this.native.info()
    this.mode = info.mode
    this.setupFlags = info.setupFlags
    this.opcodes = info.opcodes
    this.ctl = new Int32Array(info.regions.ctl)
    this.stage = new Uint8Array(info.regions.stage)
    this.stageWords = new Int32Array(info.regions.stage)
    this.stageCap = info.regions.stage.byteLength / SQE_BYTES
    this.cqes = new Int32Array(info.regions.cqes)
    // As many slots as CQ entries: the CQ can never overflow with our own ops.
    this.capacity = info.cqEntries
    this.slots = new OpSlots<Owner, Hold>(this.capacity, (busy) => (busy ? this.native.ref() : this.native.unref()), "wide ring")
    this.cancelOp = new Uint8Array(this.capacity)
    this.holds = this.slots.holds
    this.permits = Effect.unsafeMakeSemaphore(Math.max(1, this.capacity >>> 1))
  }

  /** Ops in flight, cancels included. */
  get inFlight(): number {
    return this.slots.inUse
  }

  /** SQEs submitted to the kernel so far (a wrapping counter). */
  get submitted(): number {
    return this.ctl[Ctl.submitted]! >>> 0
  }

  /** SQE and CQE entries the kernel gave this ring. */
  get entries(): { readonly sq: number; readonly cq: number } {
    const info = this.native.info()
    return { sq: info.sqEntries, cq: info.cqEntries }
  }

  private alloc(owner: Owner): number {
    return this.slots.take(owner)
  }

  private release(slot: number): void {
    this.cancelOp[slot] = 0
    const pinned = this.pins[slot]
    if (pinned !== undefined) {
      this.pins[slot] = undefined
      for (const id of pinned) load().unpin(id)
    }
    this.slots.release(slot)
  }

  /** Pins the memory of every view and ArrayBuffer in `hold` until `slot` is released. */
  private pinHold(slot: number, hold: Hold): void {
    forEachDetachable(hold, (memory) => (this.pins[slot] ??= []).push(load().pin(memory)))
  }

  /** Copies a 128-byte SQE into the staging area with `slot`'s user_data; returns its byte offset. */
  private put(sqe: Uint8Array, slot: number): number {
    let n = this.ctl[Ctl.staged]!
    if (n === this.stageCap) {
      this.native.flush()
      n = this.ctl[Ctl.staged]!
      if (n === this.stageCap) throw new RangeError("wide ring submission queue is full and the kernel refuses more")
    }
    const at = n * SQE_BYTES
    this.stage.set(sqe.length >= SQE_BYTES ? sqe.subarray(0, SQE_BYTES) : sqe, at)
    if (sqe.length < SQE_BYTES) this.stage.fill(0, at + sqe.length, at + SQE_BYTES)
    this.stageWords[(at + SqeOffset.userData) >> 2] = slot
    this.stageWords[((at + SqeOffset.userData) >> 2) + 1] = this.slots.gens[slot]!
    this.ctl[Ctl.staged] = n + 1
    return at
  }

  /** ASYNC_CANCEL of the op in `target`, matched by its user_data. */
  private cancel(target: number): void {
    if (this.closed || this.slots.owners[target] === undefined) return
    const slot = this.alloc(ignore)
    this.cancelOp[slot] = 1
    const sqe = new Uint8Array(SQE_BYTES)
    const v = new DataView(sqe.buffer)
    v.setUint8(SqeOffset.opcode, Op.ASYNC_CANCEL)
    v.setInt32(SqeOffset.fd, -1, true)
    v.setUint32(SqeOffset.addr, target, true)
    v.setUint32(SqeOffset.addr + 4, this.slots.gens[target]!, true)
    this.put(sqe, slot)
  }

  /**
   * Submits one 128-byte SQE (its user_data is overwritten) and resumes with its CQE. `hold` is
   * kept alive until that CQE. Interruption cancels the op and waits for its CQE.
   */
  submit(sqe: Uint8Array, hold?: Hold): Effect.Effect<Completion, WideRingClosed> {
    const run = Effect.suspend(() => {
      if (this.closed) return Effect.fail(new WideRingClosed())
      return Effect.async<Completion>((resume) => {
        let done = false
        let onDone: (() => void) | undefined
        const slot = this.alloc((c) => {
          done = true
          resume(Effect.succeed(c))
          if (onDone !== undefined) onDone()
        })
        this.holds[slot] = hold
        try {
          if (hold !== undefined) this.pinHold(slot, hold)
          this.put(sqe, slot)
        } catch (e) {
          this.release(slot)
          resume(Effect.die(e))
          return
        }
        return Effect.async<void>((k) => {
          if (done) return k(Effect.void)
          onDone = () => k(Effect.void)
          this.cancel(slot)
        })
      })
    })
    return this.permits.withPermits(1)(run)
  }

  /** Calls `f` once no op is in flight. */
  whenIdle(f: () => void): void {
    this.slots.whenIdle(f)
  }

  /** Cancels every op still in flight (their owners hear -ECANCELED or their real result). */
  cancelAll(): void {
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.slots.owners[slot] !== undefined && this.cancelOp[slot] === 0) this.cancel(slot)
    }
  }

  /** Closes the native ring now (idempotent). Only call with nothing in flight. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.native.unref()
    this.native.close()
  }

  private dispatch(count: number): void {
    const q = this.cqes
    for (let i = 0; i < count; i++) {
      const b = i * CQE32_WORDS
      const slot = q[b + CqeWord.userDataLo]!
      const gen = q[b + CqeWord.userDataHi]! & GEN_MASK
      const flags = q[b + CqeWord.flags]!
      const owner = this.slots.current(slot, gen)
      if (owner === undefined) continue
      try {
        owner({
          res: q[b + CqeWord.res]!,
          flags,
          big0: big(q[b + CqeWord.big0Lo]!, q[b + CqeWord.big0Hi]!),
          big1: big(q[b + CqeWord.big1Lo]!, q[b + CqeWord.big1Hi]!)
        })
      } catch (e) {
        this.deferredError ??= e
      }
      if ((flags & CqeFlag.MORE) === 0) this.release(slot)
    }
    if (this.deferredError !== undefined) {
      const e = this.deferredError
      this.deferredError = undefined
      throw e
    }
  }
}

const toSetupError = (e: unknown): WideRingError => {
  const err = e as { errno?: unknown; syscall?: unknown; message?: unknown }
  const errno = typeof err.errno === "number" ? err.errno : 0
  return new WideRingError({
    errno,
    code: errno === 0 ? String(err.message) : errnoName(errno),
    syscall: typeof err.syscall === "string" ? err.syscall : "io_uring_setup"
  })
}

/**
 * A wide ring for the current scope: `entries` SQEs (rounded up to a power of two by the kernel).
 * On release, ops still in flight are cancelled and the ring closes after their CQEs.
 */
export const make = (entries = 64): Effect.Effect<WideRing, WideRingError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({ try: () => new WideRing(load(), entries), catch: toSetupError }),
    (ring) =>
      Effect.async<void>((resume) => {
        ring.cancelAll()
        ring.whenIdle(() => {
          ring.close()
          resume(Effect.void)
        })
      })
  )

/** A zeroed 128-byte SQE with `opcode` and `fd` set. */
export const blankSqe = (opcode: number, fd = -1): Uint8Array => {
  const sqe = new Uint8Array(SQE_BYTES)
  sqe[SqeOffset.opcode] = opcode
  new DataView(sqe.buffer).setInt32(SqeOffset.fd, fd, true)
  return sqe
}

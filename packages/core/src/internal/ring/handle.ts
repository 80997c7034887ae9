/**
 * The object behind the public `Ring` interface: a thin, allocation-free view of one ring's
 * Driver (plain methods, no Effect: they run inside `prepare` callbacks and completion
 * handlers), one per driver, and the way back from it to the driver for the op helpers.
 * `Ring.ts` owns the documentation and the public names; this module owns the shape.
 */
import type { Driver } from "../driver.js"
import type { Hold, OpOwner } from "./op.js"

export const TypeId: unique symbol = Symbol.for("@ringline/core/Ring")

/** The members of the public `Ring.Ring` (documented there). */
export interface RingHandle {
  readonly [TypeId]: typeof TypeId
  /** Ring set-up the kernel accepted: `defer-taskrun`, `coop-taskrun`, `sqpoll` or `plain`. */
  readonly mode: string
  /** Ops in flight (slots taken). */
  readonly inFlight: number
  /** True once the ring was closed (its `Ringline` layer released): submit nothing more. */
  readonly closed: boolean
  /** SQEs staged and not yet submitted. */
  readonly staged: number
  /** The staging area as 32-bit words; an SQE's fields are at `w + SqeWord.*`. */
  readonly words: Int32Array
  /** Whether the kernel supports opcode `op` (IORING_REGISTER_PROBE at ring set-up). */
  supports(op: number): boolean
  /**
   * Takes an op slot for `owner` (its CQEs arrive at `owner.onCqe(slot, tag, ...)`) — the
   * low-level path for ops that are not one Effect each (pipelines, multishot). Throws a
   * RangeError when the op table is full.
   */
  alloc(owner: OpOwner, tag: number): number
  /**
   * Stages a zeroed SQE for `slot` with opcode, IOSQE flags, fd and user_data, and returns its
   * word index. Prefer the prep helpers ({@link prepRead}...). Throws when the SQ is full and the
   * kernel refuses more (the slot is then given back).
   */
  sqe(op: number, flags: number, fd: number, slot: number): number
  /** Pins `memory` until `slot`'s terminal CQE. */
  hold(slot: number, memory: Hold): void
  /**
   * ASYNC_CANCEL of the op in `target` by user_data; `owner` (if any) hears the cancel's CQE: 0,
   * -ENOENT (already finished) or -EALREADY.
   */
  cancel(target: number, owner?: OpOwner, tag?: number): void
  /** Submits what is staged now instead of at the end of the loop turn (latency-bound ops). */
  submitNow(): void
  /** The slot's {@link ARG_BYTES} bytes of argument memory, and their address. */
  argView(slot: number): Uint8Array
  argAddress(slot: number): number
  /**
   * Registers one page-aligned pool of `bytes` as fixed buffer 0 (READ_FIXED / WRITE_FIXED with
   * buf_index 0). One per ring: a second call throws with errno EBUSY.
   */
  registerBuffers(bytes: number): { readonly buffer: ArrayBuffer; readonly base: number }
  /** Counts a failed op by errno code (ECONNRESET...) in `Ringline.stats` and metrics. */
  countError(code: string): void
}

class RingImpl implements RingHandle {
  readonly [TypeId]: typeof TypeId = TypeId
  readonly words: Int32Array
  constructor(readonly driver: Driver) {
    this.words = driver.words
  }
  get mode() {
    return this.driver.mode
  }
  get inFlight() {
    return this.driver.inFlight
  }
  get closed() {
    return this.driver.closed || this.driver.released
  }
  get staged() {
    return this.driver.staged
  }
  supports(op: number) {
    return this.driver.opcodes[op] === 1
  }
  alloc(owner: OpOwner, tag: number) {
    return this.driver.alloc(owner, tag)
  }
  sqe(op: number, flags: number, fd: number, slot: number) {
    return this.driver.sqe(op, flags, fd, slot)
  }
  hold(slot: number, memory: Hold) {
    this.driver.holds[slot] = memory
    this.driver.pinHold(slot, memory)
  }
  cancel(target: number, owner?: OpOwner, tag?: number) {
    this.driver.cancel(target, owner, tag)
  }
  submitNow() {
    this.driver.submitNow()
  }
  argView(slot: number) {
    return this.driver.argView(slot)
  }
  argAddress(slot: number) {
    return this.driver.argAddress(slot)
  }
  registerBuffers(bytes: number) {
    return this.driver.ring.registerDirectPool(bytes)
  }
  countError(code: string) {
    this.driver.countError(code)
  }
}

const rings = new WeakMap<Driver, RingImpl>()

/** The ring view of driver `d` (one per driver, made on first use). */
export const ringOf = (d: Driver): RingHandle => {
  let r = rings.get(d)
  if (r === undefined) {
    r = new RingImpl(d)
    rings.set(d, r)
  }
  return r
}
/** The driver behind a ring view (every `Ring.Ring` is a RingImpl: `Ring.current` is the only source). */
export const driverOf = (ring: RingHandle): Driver => (ring as RingImpl).driver

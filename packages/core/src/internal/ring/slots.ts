/**
 * The op-slot table of a ring: every in-flight SQE owns a slot, and its user_data carries
 * (slot, generation). A slot's generation moves on when it is taken and when it is freed, so a
 * CQE whose generation is not the slot's current one belongs to an op that already finished and
 * is ignored. Shared by the main driver and the NVMe passthrough ring.
 */
export const GEN_MASK = 0x7fffffff

export class OpSlots<O, H = unknown> {
  readonly gens: Uint32Array
  readonly owners: Array<O | undefined>
  /** What an op points at (send data, paths, buffers), kept alive until its terminal CQE. */
  readonly holds: Array<H | undefined>
  private readonly free: Int32Array
  private top: number
  private used = 0
  private idleWaiters: Array<() => void> = []

  /**
   * `busy(true)` when the first slot is taken and `busy(false)` when the last is freed (to ref
   * and unref the ring's poll handle: an idle ring does not keep the process alive).
   */
  constructor(readonly capacity: number, private readonly busy: (busy: boolean) => void, private readonly name: string) {
    this.gens = new Uint32Array(capacity)
    this.owners = new Array(capacity).fill(undefined)
    this.holds = new Array(capacity).fill(undefined)
    this.free = new Int32Array(capacity)
    for (let i = 0; i < capacity; i++) this.free[i] = capacity - 1 - i
    this.top = capacity
  }

  /** Slots taken: ops in flight. */
  get inUse(): number {
    return this.used
  }

  take(owner: O): number {
    if (this.top === 0) throw new RangeError(`${this.name} op table full (${this.capacity} ops in flight)`)
    const slot = this.free[--this.top]!
    this.owners[slot] = owner
    this.gens[slot] = (this.gens[slot]! + 1) & GEN_MASK
    if (this.used++ === 0) this.busy(true)
    return slot
  }

  release(slot: number): void {
    this.owners[slot] = undefined
    this.holds[slot] = undefined
    this.gens[slot] = (this.gens[slot]! + 1) & GEN_MASK
    this.free[this.top++] = slot
    if (--this.used === 0) {
      this.busy(false)
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  /** The owner of `slot` if `gen` is its current generation (else the CQE is stale). */
  current(slot: number, gen: number): O | undefined {
    return slot >= 0 && slot < this.capacity && this.gens[slot] === gen ? this.owners[slot] : undefined
  }

  /** Calls `f` once no slot is taken. */
  whenIdle(f: () => void): void {
    if (this.used === 0) f()
    else this.idleWaiters.push(f)
  }
}

/**
 * The JS half of the ring: op slots, SQE staging, completion dispatch and buffer recycling.
 * Plain TypeScript with no Effect on the hot path.
 *
 * Every in-flight SQE owns an op slot. Its user_data is (slot, generation): a CQE whose generation
 * does not match the slot's current one belongs to an op that is already finished (it can only be
 * a stray after a bug or a ring reset), so it is ignored and any buffer it carries is recycled.
 * A slot is freed only when its last terminal CQE (no IORING_CQE_F_MORE) arrives, which is what
 * makes "interruption completes after the terminal CQE" and "buffers released exactly once" hold:
 * the memory an op points at (argument area, send data) is pinned by its slot until then, and a
 * caller's memory also natively (`pinHold`): a detach (a transfer) must not free it under the kernel.
 */
import type { RinglineConfig } from "../RinglineConfig.js"
import type { Native } from "./native.js"
import { CqeFlag, Ctl, Op, putU64, SqeFlag, W } from "./ring/abi.js"
import type { DispatchScheduler } from "./ring/dispatchScheduler.js"
import type { FaultInjector } from "./ring/faults.js"
import { forEachDetachable, type Hold, type OpOwner } from "./ring/op.js"
import { prepClose, prepCloseDirect } from "./ring/prep.js"
import { GEN_MASK, OpSlots } from "./ring/slots.js"

export type { OpOwner }

/** Tag delivered for the CQE of a LINK_TIMEOUT attached to an op (same slot, marked user_data). */
export const TAG_LINK_TIMEOUT = -1
const LINK_TIMEOUT_BIT = 0x80000000 | 0
/** Bytes of per-slot argument memory (sockaddr up to 110 bytes, then a timespec at 112). */
export const ARG_BYTES = 128
export const ARG_TIMESPEC = 112
/** Most send-queue segments gathered into one SENDMSG. */
export const MAX_IOV = 32
/** Per fixed-file slot: a msghdr (64 bytes, padded) and MAX_IOV iovecs for that connection's send. */
const SENDV_BYTES = 64 + MAX_IOV * 16

const ignore: OpOwner = { onCqe() {} }

/** Counters kept by the driver; cheap integers, read by stats/metrics. */
export interface DriverCounters {
  cqes: number
  staleCqes: number
  enobufs: number
  sendPoolExhausted: number
  zeroCopySends: number
  zeroCopyCopied: number
  vectoredSends: number
  chains: number
  earlyTurns: number
  backpressurePauses: number
  accepted: number
  /** Accepted connections no accept took before their listener closed (closed unserved). */
  acceptsAbandoned: number
  /** Times listeners stopped accepting because sockets filled the fixed-file table. */
  acceptFull: number
  connected: number
  closed: number
  bytesIn: number
  bytesOut: number
  datagramsIn: number
  datagramsOut: number
}

export class Driver {
  readonly ring: Native.Ring
  private readonly native: typeof Native
  /** Native pin ids of the memory each slot's op points at (one, or several), until its release. */
  private readonly pins: Array<number | Array<number> | undefined> = []
  readonly config: RinglineConfig
  readonly bufferSize: number
  readonly recvBuffers: ArrayBuffer
  readonly recvBuffersBase: number
  readonly sendPool: Uint8Array
  readonly sendPoolBase: number
  readonly args: Uint8Array
  readonly argWords: Int32Array
  readonly argsBase: number
  readonly capacity: number
  readonly mode: string
  readonly opcodes: Uint8Array

  private readonly ctl: Int32Array
  private readonly stage: Int32Array
  private readonly stageCap: number
  /** Staged SQEs at which `sqe()` submits early (config.submitBatch; stageCap when 0). */
  private readonly flushAt: number
  /**
   * Fault injection for ringline's own tests (internal/ring/faults.ts): null unless a test
   * installed a plan, which then sees each staged SQE once it is complete.
   */
  faults: FaultInjector | null = null
  /** The last staged SQE links to the next one: an early submit now would cut the chain. */
  private linkOpen = false
  private readonly cqes: Int32Array
  private readonly recycleList: Int32Array

  private readonly slots: OpSlots<OpOwner>
  private readonly pending: Int32Array
  /** Per slot, the generation of the last SQE staged for it (see `abandon`). */
  private readonly sqeGens: Uint32Array
  private readonly tags: Int32Array
  /** What an op must keep alive until its terminal CQE (send data, for instance). */
  readonly holds: Array<unknown>

  private readonly freeSendSlots: Int32Array
  private freeSendTop: number
  readonly sendSlotSize: number

  /** Connections whose multishot recv stopped on -ENOBUFS; re-armed once buffers went back. */
  readonly parked = new Set<{ rearm(): void }>()
  /** Called when a connection's fixed slot is released (an accept stopped on -ENFILE may retry). */
  readonly slotReleased = new Set<() => void>()
  private deferredError: unknown = undefined
  /**
   * CQEs another ring posted here with IORING_OP_MSG_RING (see internal/msgRing.ts): the low word
   * of their user_data is negative, which no op slot ever is. Unset, they count as stale.
   */
  onRingMessage: ((lo: number, hi: number, res: number) => void) | undefined = undefined
  /**
   * The Effect scheduler of the fibers using this ring (set by the service): the fibers a batch
   * of completions woke run at the end of that batch (see ring/dispatchScheduler.ts).
   */
  scheduler: DispatchScheduler | undefined = undefined
  closed = false
  /** The service's release has begun: entry points refuse new work (the ring may still drain). */
  released = false
  readonly counters: DriverCounters = {
    cqes: 0,
    staleCqes: 0,
    enobufs: 0,
    sendPoolExhausted: 0,
    zeroCopySends: 0,
    zeroCopyCopied: 0,
    vectoredSends: 0,
    chains: 0,
    earlyTurns: 0,
    backpressurePauses: 0,
    accepted: 0,
    acceptsAbandoned: 0,
    acceptFull: 0,
    connected: 0,
    closed: 0,
    bytesIn: 0,
    bytesOut: 0,
    datagramsIn: 0,
    datagramsOut: 0
  }
  /** Failed operations by errno code (ECONNRESET, EPIPE, ...). */
  readonly errors = new Map<string, number>()

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
  }

  constructor(native: typeof Native, config: RinglineConfig) {
    this.native = native
    this.config = config
    this.bufferSize = config.recvBuffer.bufferSize
    // Each connection needs at most: multishot recv, one send (+ zero-copy notifications), a
    // cancel and a close; listeners and connects a few more. Unused slots cost 13 bytes each.
    this.capacity = Math.min(config.maxConnections * 4 + 4096, GEN_MASK)
    this.sendSlotSize = config.sendPool.slotSize
    this.ring = new native.Ring(
      {
        sqEntries: config.sqEntries,
        cqEntries: config.sqEntries * 4,
        bufferCount: config.recvBuffer.ringSize,
        bufferSize: config.recvBuffer.bufferSize,
        files: config.maxConnections,
        sendPoolBytes: config.sendPool.slots * config.sendPool.slotSize,
        argBytes: this.capacity * ARG_BYTES + config.maxConnections * SENDV_BYTES,
        sqpoll: config.sqpoll,
        sqpollIdleMs: config.sqpollIdleMs
      },
      (count) => this.dispatch(count)
    )
    const info = this.ring.info()
    const r = info.regions
    this.mode = info.mode
    this.opcodes = info.opcodes
    this.ctl = new Int32Array(r.ctl)
    this.stage = new Int32Array(r.stage)
    this.stageCap = r.stage.byteLength / 64
    this.flushAt = config.submitBatch > 0 ? Math.min(config.submitBatch, this.stageCap) : this.stageCap
    this.cqes = new Int32Array(r.cqes)
    this.recycleList = new Int32Array(r.recycle)
    this.recvBuffers = r.recvBuffers
    this.recvBuffersBase = r.recvBuffersBase
    this.loans = new Uint16Array(config.recvBuffer.ringSize)
    this.loanDeferred = new Uint8Array(config.recvBuffer.ringSize)
    this.maxLoans = config.recvBuffer.ringSize >>> 1
    this.sendPool = new Uint8Array(r.sendPool)
    this.sendPoolBase = r.sendPoolBase
    this.args = new Uint8Array(r.args)
    this.argWords = new Int32Array(r.args)
    this.argsBase = r.argsBase

    this.slots = new OpSlots<OpOwner>(this.capacity, (busy) => (busy ? this.ring.ref() : this.ring.unref()), "ringline")
    this.holds = this.slots.holds
    this.pending = new Int32Array(this.capacity)
    this.sqeGens = new Uint32Array(this.capacity)
    this.tags = new Int32Array(this.capacity)

    const sendSlots = config.sendPool.slots
    this.freeSendSlots = new Int32Array(sendSlots)
    for (let i = 0; i < sendSlots; i++) this.freeSendSlots[i] = sendSlots - 1 - i
    this.freeSendTop = sendSlots
  }

  // ---- op slots -------------------------------------------------------------------------------

  /** Ops in flight (slots allocated). Zero means the ring holds nothing of ours. */
  get inFlight(): number {
    return this.slots.inUse
  }

  /**
   * Takes a slot for an op owned by `owner`. `terminals` is how many terminal CQEs the slot
   * waits for (2 when a LINK_TIMEOUT shares it).
   */
  alloc(owner: OpOwner, tag: number, terminals = 1): number {
    const slot = this.slots.take(owner)
    this.tags[slot] = tag
    this.pending[slot] = terminals
    return slot
  }

  private release(slot: number): void {
    const pinned = this.pins[slot]
    if (pinned !== undefined) {
      this.pins[slot] = undefined
      if (typeof pinned === "number") this.unpinLater(pinned)
      else for (const id of pinned) this.unpinLater(id)
    }
    this.slots.release(slot)
  }

  /** Pins to end, ended together (one native call) at the end of the completion batch. */
  private readonly unpins = new Int32Array(256)
  private unpinCount = 0

  /**
   * Ends pin `id` (see {@link pinHold}) at the end of this completion batch, or at once when 256 are
   * waiting: the memory is held a little longer, never shorter.
   */
  unpinLater(id: number): void {
    this.unpins[this.unpinCount++] = id
    if (this.unpinCount === this.unpins.length) this.flushUnpins()
  }

  private flushUnpins(): void {
    this.native.unpinMany(this.unpins, this.unpinCount)
    this.unpinCount = 0
  }

  /** `addressOf(view)`, with its memory pinned: the pin's id is `pinned` afterwards. */
  pinAddress(view: Uint8Array): number {
    return this.native.pinAddress(view, this.pinOut)
  }

  /** The id of the last {@link pinAddress}. */
  get pinned(): number {
    return this.pinOut[0]!
  }

  private readonly pinOut = new Int32Array(1)

  /**
   * Holds the memory of every view and ArrayBuffer in `hold` until `slot`'s terminal CQE, even
   * if its ArrayBuffer is detached meanwhile. A hold in `holds` keeps the view reachable, but a
   * transfer (postMessage, structuredClone with a transfer list) moves the memory to a new
   * ArrayBuffer that the collector may free while the kernel still reads or writes it: a send
   * then sent what the memory held next, or failed half-way with EFAULT; a read wrote into freed
   * memory. Anything else in the hold is only kept reachable (see `forEachDetachable`).
   */
  pinHold(slot: number, hold: Hold): void {
    forEachDetachable(hold, (memory) => {
      const id = this.native.pin(memory)
      const pinned = this.pins[slot]
      if (pinned === undefined) this.pins[slot] = id
      else if (typeof pinned === "number") this.pins[slot] = [pinned, id]
      else pinned.push(id)
    })
  }

  /**
   * Byte offset (in `args`) of the msghdr + iovec area of fixed-file slot `index`. One send is in
   * flight per connection, and a fixed slot belongs to one connection at a time, so it is never
   * shared by two live requests.
   */
  sendvOffset(index: number): number {
    return this.capacity * ARG_BYTES + index * SENDV_BYTES
  }

  /** Address of a slot's argument area (valid until the slot's terminal CQE). */
  argAddress(slot: number): number {
    return this.argsBase + slot * ARG_BYTES
  }

  argView(slot: number): Uint8Array {
    return this.args.subarray(slot * ARG_BYTES, slot * ARG_BYTES + ARG_BYTES)
  }

  /** Calls `f` once no op is in flight. */
  whenIdle(f: () => void): void {
    this.slots.whenIdle(f)
  }

  // ---- submission -----------------------------------------------------------------------------

  /**
   * Stages a zeroed SQE for `slot` and returns the word index where its fields start.
   * The addon copies it into the SQ before the loop next blocks, or as soon as `flushAt` SQEs
   * are staged: the ones before this call are complete by now (callers fill an SQE right after
   * staging it), so they can go to the kernel while this batch of completions is still handled.
   * Never inside a linked chain (the kernel ends a chain at the end of each submit), except when
   * the staging area is full.
   */
  sqe(op: number, flags: number, fd: number, slot: number, linkTimeout = false): number {
    const w = this.stageNext(op, flags, fd, slot)
    const s = this.stage
    s[w + W.userData] = slot
    const gen = this.slots.gens[slot]!
    s[w + W.userData + 1] = (gen | (linkTimeout ? LINK_TIMEOUT_BIT : 0))
    this.sqeGens[slot] = gen
    return w
  }

  /**
   * Stages an SQE that belongs to no op slot, its user_data the raw words (lo, hi), for an op
   * flagged IOSQE_CQE_SKIP_SUCCESS whose only CQE, a failure, is recognised by `lo` alone: `lo`
   * must be negative (bit 31), so that CQE goes to `onRingMessage` like a MSG_RING message
   * (msgRing.ts). Nothing waits for it, so neither the op table nor `inFlight` counts it; such an
   * op must reference no memory JS could free (a MSG_RING data message references none).
   */
  sqeUnowned(op: number, flags: number, fd: number, lo: number, hi: number): number {
    const w = this.stageNext(op, flags, fd, -1)
    this.stage[w + W.userData] = lo | 0x80000000
    this.stage[w + W.userData + 1] = hi
    return w
  }

  /** The next zeroed SQE with its opcode, flags and fd; on a full SQ gives `slot` back (if any) and throws. */
  private stageNext(op: number, flags: number, fd: number, slot: number): number {
    if (this.faults !== null) this.faults.staging()
    let n = this.ctl[Ctl.staged]!
    if (n === this.stageCap || (n >= this.flushAt && !this.linkOpen)) {
      this.ring.flush()
      n = this.ctl[Ctl.staged]!
      if (n === this.stageCap) {
        // Nothing was submitted for this slot: give it back so the op table stays exact.
        if (slot >= 0) this.release(slot)
        throw new RangeError("ringline submission queue is full and the kernel refuses more")
      }
    }
    const s = this.stage
    const w = n * 16
    s.fill(0, w, w + 16)
    s[w] = op | (flags << 8)
    s[w + W.fd] = fd
    this.linkOpen = (flags & (SqeFlag.IO_LINK | SqeFlag.IO_HARDLINK)) !== 0
    this.ctl[Ctl.staged] = n + 1
    return w
  }

  /**
   * An op's `prepare` threw after its slot was taken: the slot goes back if no SQE carries it; an
   * SQE still staged for it becomes a NOP (the kernel then touches none of its memory) and the
   * slot goes back at that CQE, as for one already submitted. The owner must ignore that CQE.
   */
  abandon(slot: number): void {
    const gen = this.slots.gens[slot]!
    if (this.slots.owners[slot] === undefined) return // given back already (the SQ was full)
    if (this.sqeGens[slot] !== gen) return this.release(slot)
    const s = this.stage
    const n = this.ctl[Ctl.staged]!
    for (let i = 0; i < n; i++) {
      const w = i * 16
      if (s[w + W.userData] === slot && (s[w + W.userData + 1]! & GEN_MASK) === gen) {
        const hi = s[w + W.userData + 1]!
        s.fill(0, w, w + 16)
        s[w] = Op.NOP
        s[w + W.fd] = -1
        s[w + W.userData] = slot
        s[w + W.userData + 1] = hi
      }
    }
  }

  /** SQEs staged and not yet submitted. */
  get staged(): number {
    return this.ctl[Ctl.staged]!
  }

  /**
   * Asked by an owner from inside its `onCqe`: once this CQE is handled, and if more CQEs of the
   * batch follow, the fibers woken so far run and what they staged is submitted before the next
   * CQE is dispatched. Why: a batch can carry a large amount of work for one connection (a whole
   * window of TLS records to decrypt), and without it nothing that connection's fiber answers
   * leaves before all of that work is done — its peer waits idle (stop-and-wait per batch).
   * Costs one submit; ignored without the dispatch scheduler (the fibers then run later anyway).
   */
  earlyTurn(): void {
    this.turnAsked = true
  }

  private turnAsked = false

  /**
   * Submits what is staged now instead of at `submitBatch` or the end of the loop turn, unless
   * a linked chain is still open. For latency-sensitive ops (device reads), whose completions
   * come back sooner the sooner they are in the kernel.
   */
  submitNow(): void {
    if (this.faults !== null) this.faults.settle()
    if (!this.linkOpen && this.ctl[Ctl.staged]! > 0) this.ring.flush()
  }

  get words(): Int32Array {
    return this.stage
  }

  setAddr(w: number, field: number, address: number): void {
    putU64(this.stage, w + field, address)
  }

  /**
   * ASYNC_CANCEL of the op in `target`, matched by user_data (never by fd: fds get reused).
   * `owner` hears the cancel's own CQE (0, -ENOENT when the target had already finished,
   * -EALREADY when it can no longer be stopped), for callers that wait until the ring holds
   * nothing of theirs.
   */
  cancel(target: number, owner: OpOwner = ignore, tag = 0): void {
    const slot = this.alloc(owner, tag)
    const w = this.sqe(Op.ASYNC_CANCEL, 0, -1, slot)
    this.stage[w + W.addr] = target
    this.stage[w + W.addr + 1] = this.slots.gens[target]!
  }

  /** Closes a fixed-file slot. `owner` hears the CQE (tag) if given. */
  closeFixed(index: number, owner: OpOwner = ignore, tag = 0): number {
    const slot = this.alloc(owner, tag)
    prepCloseDirect(this, slot, index)
    return slot
  }

  /** Closes a regular fd through the ring. */
  closeFd(fd: number, owner: OpOwner = ignore, tag = 0): number {
    const slot = this.alloc(owner, tag)
    prepClose(this, slot, fd)
    return slot
  }

  /** Fixed-file slots held by sockets (accepted, connected, or connecting). */
  socketSlots = 0
  /** Slots reserved by one-shot accepts in flight. */
  acceptReserved = 0

  /** Fixed-file slots a new socket could still take (files opened by storage are not counted). */
  get socketSlotsFree(): number {
    return this.config.maxConnections - this.socketSlots - this.acceptReserved
  }

  private readonly fullListeners = new Set<unknown>()
  private fullSince = 0
  private fullMsDone = 0

  /** A listener wants to accept but the table has no slot (`full`), or no longer. */
  noteTableFull(listener: unknown, full: boolean): void {
    if (full === this.fullListeners.has(listener)) return
    if (full) {
      if (this.fullListeners.size === 0) {
        this.fullSince = performance.now()
        this.counters.acceptFull++
      }
      this.fullListeners.add(listener)
    } else {
      this.fullListeners.delete(listener)
      if (this.fullListeners.size === 0) this.fullMsDone += performance.now() - this.fullSince
    }
  }

  /** Milliseconds during which a listener could not accept because the fixed-file table was full. */
  get acceptFullMs(): number {
    return this.fullMsDone + (this.fullListeners.size > 0 ? performance.now() - this.fullSince : 0)
  }

  /** A socket's fixed slot is closed: accept loops may arm again. */
  socketSlotReleased(): void {
    this.socketSlots--
    this.fixedSlotReleased()
  }

  /** Tells accept loops waiting for a free fixed slot to try again. */
  fixedSlotReleased(): void {
    if (this.slotReleased.size === 0) return
    for (const f of [...this.slotReleased]) f()
  }

  // ---- buffers --------------------------------------------------------------------------------

  /**
   * Sends may borrow a provided buffer instead of copying out of it (echoing a parsed view):
   * the buffer goes back to the kernel only when the last send using it has completed. At most
   * half of the ring is ever lent, so slow peers cannot starve every other connection's recv.
   */
  private readonly loans: Uint16Array
  private readonly loanDeferred: Uint8Array
  private readonly maxLoans: number
  private loansOut = 0

  /** Lends the provided buffer `bid` to a send; false when too many are lent already. */
  lend(bid: number): boolean {
    if (this.loans[bid] === 0) {
      if (this.loansOut >= this.maxLoans) return false
      this.loansOut++
    }
    this.loans[bid]++
    return true
  }

  /** A send that borrowed `bid` no longer needs it. */
  giveBack(bid: number): void {
    if (--this.loans[bid]! === 0) {
      this.loansOut--
      if (this.loanDeferred[bid] === 1) {
        this.loanDeferred[bid] = 0
        this.pushRecycle(bid)
      }
    }
  }

  get buffersLent(): number {
    return this.loansOut
  }

  /** Gives a provided buffer back; the addon returns it to the kernel ring before the next submit. */
  recycle(bid: number): void {
    if (this.loans[bid] !== 0) {
      this.loanDeferred[bid] = 1
      return
    }
    this.pushRecycle(bid)
  }

  /**
   * `recycle` from outside a completion batch (a reader's fiber gives back a buffer it held):
   * connections parked on -ENOBUFS are re-armed by the batch that returns buffers, so with no
   * batch running they are re-armed from a microtask instead (the buffer and the re-arm reach
   * the kernel together, before the loop blocks).
   */
  recycleLater(bid: number): void {
    this.recycle(bid)
    if (!this.dispatching && this.parked.size > 0 && !this.rearmQueued) {
      this.rearmQueued = true
      queueMicrotask(this.rearmParked)
    }
  }

  private dispatching = false
  private rearmQueued = false
  private readonly rearmParked = () => {
    this.rearmQueued = false
    if (this.closed || this.parked.size === 0) return
    const parked = [...this.parked]
    this.parked.clear()
    for (const c of parked) c.rearm()
  }

  private pushRecycle(bid: number): void {
    const n = this.ctl[Ctl.recycled]!
    this.recycleList[n] = bid
    this.ctl[Ctl.recycled] = n + 1
  }

  /** A send-pool slot index, or -1 when the pool is exhausted. */
  takeSendSlot(): number {
    if (this.freeSendTop === 0) {
      this.counters.sendPoolExhausted++
      return -1
    }
    return this.freeSendSlots[--this.freeSendTop]!
  }

  giveSendSlot(index: number): void {
    this.freeSendSlots[this.freeSendTop++] = index
  }

  get sendSlotsFree(): number {
    return this.freeSendTop
  }

  // ---- completions ----------------------------------------------------------------------------

  private dispatch(count: number): void {
    const q = this.cqes
    this.counters.cqes += count
    const scheduler = this.scheduler
    scheduler?.begin()
    this.dispatching = true
    for (let i = 0; i < count; i++) {
      const base = i * 4
      const slot = q[base]!
      const hi = q[base + 1]!
      const res = q[base + 2]!
      const flags = q[base + 3]!
      if (slot < 0 && this.onRingMessage !== undefined) {
        try {
          this.onRingMessage(slot, hi, res)
        } catch (e) {
          this.deferredError ??= e
        }
        continue
      }
      const gen = hi & GEN_MASK
      const owner = this.slots.current(slot, gen)
      if (owner === undefined) {
        this.counters.staleCqes++
        if (flags & CqeFlag.BUFFER) this.recycle(flags >>> 16)
        continue
      }
      try {
        owner.onCqe(slot, (hi & LINK_TIMEOUT_BIT) !== 0 ? TAG_LINK_TIMEOUT : this.tags[slot]!, res, flags)
      } catch (e) {
        // Owners never throw by design; if one does, finish the batch and rethrow afterwards so
        // the error reaches uncaughtException instead of corrupting the op table.
        this.deferredError ??= e
      }
      if ((flags & CqeFlag.MORE) === 0 && --this.pending[slot]! === 0) this.release(slot)
      if (this.turnAsked) {
        this.turnAsked = false
        if (i < count - 1 && scheduler !== undefined && scheduler.pending) {
          const e = scheduler.run()
          if (e !== undefined) this.deferredError ??= e
          this.counters.earlyTurns++
          this.submitNow()
        }
      }
    }
    this.dispatching = false
    if (this.unpinCount > 0) this.flushUnpins()
    try {
      if (this.parked.size > 0) {
        // Buffers recycled in this batch reach the kernel before these re-arms (same flush).
        const parked = [...this.parked]
        this.parked.clear()
        for (const c of parked) c.rearm()
      }
    } finally {
      if (scheduler !== undefined) {
        // The fibers this batch woke: what they stage goes out with this turn's submit.
        const e = scheduler.end()
        if (e !== undefined) this.deferredError ??= e
      }
    }
    if (this.deferredError !== undefined) {
      const e = this.deferredError
      this.deferredError = undefined
      throw e
    }
  }

  // ---- introspection --------------------------------------------------------------------------

  stats() {
    const ctl = this.ctl
    return {
      mode: this.mode,
      inFlight: this.slots.inUse,
      submitted: ctl[Ctl.submitted]! >>> 0,
      sqFull: ctl[Ctl.sqFull]!,
      wakeups: ctl[Ctl.wakeups]!,
      emptyWakeups: ctl[Ctl.emptyWakeups]!,
      cqOverflows: ctl[Ctl.overflow]!,
      sendSlotsFree: this.freeSendTop,
      buffersLent: this.loansOut,
      acceptFullMs: Math.round(this.acceptFullMs),
      ...this.counters
    }
  }

  bufferStatus() {
    return this.ring.bufferStatus()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.ring.close()
    // (Ops still in flight when the ring closed keep their pins: the kernel may touch their memory
    // until the ring is torn down.)
    if (this.unpinCount > 0) this.flushUnpins()
  }
}

export { CqeFlag, Op, SqeFlag, W }

/**
 * Sleeps on the ring: a min-heap of deadlines in JS and ONE armed IORING_OP_TIMEOUT, for the
 * earliest deadline, in the kernel.
 *
 * Why not one SQE per sleep: the op table has ~68k slots by default and is shared with sockets,
 * so 100k sleeps would exhaust it (the Rust ringline fired sleeps early when its timer pool ran
 * out). Here a sleep is a heap entry (O(log n) to add or remove) and the ring holds one TIMEOUT,
 * plus, briefly, the ones being cancelled after the earliest deadline changed.
 *
 * Time base: deadlines are nanoseconds on CLOCK_MONOTONIC, read with `process.hrtime.bigint()`
 * (libuv's uv_hrtime: clock_gettime(CLOCK_MONOTONIC) on Linux), which is also the clock of an
 * absolute TIMEOUT (IORING_TIMEOUT_ABS without BOOTTIME/REALTIME). They are kept as integral
 * float64 offsets from `origin`, exact for 104 days of process life.
 *
 * Never early, by construction: a sleep is woken only by `sync`, and `sync` wakes exactly the
 * entries whose deadline is <= hrtime now. A TIMEOUT CQE (or a libuv fallback timer) only says
 * "look now"; if nothing is due yet, the timer is simply armed again.
 *
 * Never hang: whenever the heap is not empty after `sync`, something is armed for its root: the
 * ring TIMEOUT, or, when the ring cannot take one (op table or SQ full, driver closed, kernel
 * error), a libuv `setTimeout` (counted in `fallbacks`), so a sleep always ends at its time.
 *
 * Ops: a TIMEOUT's timespec lives in its own slot's argument area (ARG_TIMESPEC), pinned until
 * its terminal CQE. Re-arming never rewrites an armed timespec: the old TIMEOUT is cancelled
 * (ASYNC_CANCEL by user_data; it ends with -ECANCELED, or -ETIME if it fired first) and a new one
 * is armed in a new slot. `close` cancels the armed TIMEOUT and reports once every one of our
 * TIMEOUTs has delivered its terminal CQE, so nothing of ours is in flight when the ring goes.
 */
import { ARG_BYTES, ARG_TIMESPEC, type Driver, type OpOwner } from "./driver.js"
import { Errno } from "./errno.js"
import { TIMEOUT_ABS } from "./ring/abi.js"
import { prepTimeout } from "./ring/prep.js"

const TAG_TIMEOUT = 1
const NS_PER_SEC = 1_000_000_000
const NS_PER_SEC_N = 1_000_000_000n
/** setTimeout clamps longer delays to 1 ms (TimeoutOverflowWarning). */
const MAX_JS_TIMER_MS = 2 ** 31 - 1

const origin = process.hrtime.bigint()

/** Nanoseconds on CLOCK_MONOTONIC since `origin` (an integral float64). */
export const monotonicNow = (): number => Number(process.hrtime.bigint() - origin)

/** Absolute CLOCK_MONOTONIC nanoseconds of a `monotonicNow` value. */
export const toMonotonicAbsolute = (t: number): bigint => origin + BigInt(t)

/** `absolute`: IORING_TIMEOUT_ABS with the deadline itself; `relative`: the time left when armed. */
export type TimerMode = "absolute" | "relative"

/** One sleep in the heap. `index` is its heap position, -1 once it left the heap. */
export interface Sleeper {
  readonly deadline: number
  readonly seq: number
  index: number
  readonly wake: () => void
}

export interface TimerStats {
  /** Sleeps waiting in the heap. */
  readonly pending: number
  /** Whether a ring TIMEOUT is armed for the earliest deadline. */
  readonly armed: boolean
  /** Our TIMEOUT ops in flight: the armed one plus cancelled ones awaiting their terminal CQE. */
  readonly ringOps: number
  /** Most TIMEOUT ops ever in flight at once. */
  readonly maxRingOps: number
  /** TIMEOUTs submitted. */
  readonly armedTotal: number
  /** TIMEOUTs that fired (-ETIME). */
  readonly fired: number
  /** Armed TIMEOUTs cancelled because the earliest deadline changed (or the clock closed). */
  readonly cancelled: number
  /** Sleeps woken at (or after) their deadline. */
  readonly woken: number
  /** Sleeps removed before their deadline (interruption). */
  readonly removed: number
  /** TIMEOUT CQEs that arrived before hrtime reached the armed deadline (should stay 0: same clock). */
  readonly earlyCqes: number
  /** Times a libuv timer stood in because the ring could not take a TIMEOUT. */
  readonly fallbacks: number
  /** Last unexpected TIMEOUT result (negative errno), 0 if none. */
  readonly lastError: number
}

export class Timers implements OpOwner {
  private readonly heap: Array<Sleeper> = []
  private seq = 0
  private armedSlot = -1
  private armedDeadline = Infinity
  private fallback: ReturnType<typeof setTimeout> | undefined = undefined
  private retiring = 0
  private syncQueued = false
  private closed = false
  /** False after the kernel rejected a TIMEOUT: later arms go to libuv timers. */
  private ringUsable = true
  private settledWaiters: Array<() => void> = []
  /** Retired TIMEOUTs whose ASYNC_CANCEL found no free op slot; retried as slots come back. */
  private uncancelled: Array<number> = []
  private readonly runSync = () => {
    this.syncQueued = false
    this.sync()
  }
  /** Sleeps found due, woken in the next check phase (see `sync`). */
  private dueList: Array<Sleeper> = []
  private immediate: ReturnType<typeof setImmediate> | undefined = undefined
  private readonly runImmediate = () => {
    this.immediate = undefined
    const due = this.dueList
    this.dueList = []
    for (const s of due) s.wake()
  }
  private readonly onFallback = () => {
    this.fallback = undefined
    this.armedDeadline = Infinity
    this.sync()
  }

  private maxRingOps = 0
  private armedTotal = 0
  private fired = 0
  private cancelled = 0
  private woken = 0
  private removed = 0
  private earlyCqes = 0
  private fallbacks = 0
  private lastError = 0

  constructor(private readonly driver: Driver, private readonly mode: TimerMode = "absolute") {}

  /** Adds a sleep that wakes `delayNs` from now (never before). */
  add(delayNs: number, wake: () => void): Sleeper {
    const s: Sleeper = { deadline: monotonicNow() + Math.max(0, Math.ceil(delayNs)), seq: this.seq++, index: -1, wake }
    const h = this.heap
    s.index = h.length
    h.push(s)
    this.up(s.index)
    // Only a new earliest deadline changes what must be armed.
    if (s.index === 0) this.queueSync()
    return s
  }

  /** Removes a sleep that has not woken (interruption); a no-op once it woke. */
  remove(s: Sleeper): void {
    const i = s.index
    if (i < 0) return
    this.removeAt(i)
    this.removed++
    // The armed TIMEOUT was for this sleep: re-arm for the next one, or cancel if none is left.
    if (i === 0) this.queueSync()
  }

  get pending(): number {
    return this.heap.length
  }

  stats(): TimerStats {
    return {
      pending: this.heap.length,
      armed: this.armedSlot !== -1,
      ringOps: this.ringOps,
      maxRingOps: this.maxRingOps,
      armedTotal: this.armedTotal,
      fired: this.fired,
      cancelled: this.cancelled,
      woken: this.woken,
      removed: this.removed,
      earlyCqes: this.earlyCqes,
      fallbacks: this.fallbacks,
      lastError: this.lastError
    }
  }

  private get ringOps(): number {
    return this.retiring + (this.armedSlot === -1 ? 0 : 1)
  }

  // ---- arming -----------------------------------------------------------------------------------

  /** Batches heap changes made in one synchronous run into (at most) one re-arm. */
  private queueSync(): void {
    if (this.syncQueued) return
    this.syncQueued = true
    queueMicrotask(this.runSync)
  }

  /** Wakes every due sleep, then makes sure exactly the root's deadline is armed. */
  private sync(): void {
    const h = this.heap
    let due: Array<Sleeper> | undefined
    if (h.length > 0) {
      const now = monotonicNow()
      while (h.length > 0 && h[0]!.deadline <= now) {
        const s = h[0]!
        this.removeAt(0)
        ;(due ??= []).push(s)
      }
    }
    if (h.length === 0) this.disarm()
    else if (this.armedDeadline !== h[0]!.deadline) {
      this.disarm()
      this.arm(h[0]!.deadline)
    }
    if (due !== undefined) {
      // Woken in the check phase, never here: not inside a batch of completions, and not in the
      // microtasks that follow one (as libuv wakes timers in a phase of their own). Whatever a
      // completion resumed (a read returning its bytes) thus settles first, before a sleep
      // racing it (Effect.timeout, Effect.race) can win: a loser that had already taken bytes
      // would drop them. A sleep of 0 behaves as on the default clock (a later macrotask).
      this.woken += due.length
      for (const s of due) this.dueList.push(s)
      if (this.immediate === undefined) this.immediate = setImmediate(this.runImmediate)
    }
  }

  private arm(deadline: number): void {
    const d = this.driver
    if (this.closed || !this.ringUsable || d.closed) return this.armFallback(deadline)
    let slot: number
    try {
      slot = d.alloc(this, TAG_TIMEOUT)
    } catch {
      // Op table full (sockets hold every slot): a libuv timer keeps the sleeps on time.
      return this.armFallback(deadline)
    }
    // struct __kernel_timespec { i64 tv_sec; i64 tv_nsec } in this slot's argument area.
    let sec: number
    let nsec: number
    if (this.mode === "absolute") {
      const abs = toMonotonicAbsolute(deadline)
      sec = Number(abs / NS_PER_SEC_N)
      nsec = Number(abs % NS_PER_SEC_N)
    } else {
      // Relative to when the kernel arms it, which is after `now`: late, never early.
      const left = Math.max(0, deadline - monotonicNow())
      sec = Math.floor(left / NS_PER_SEC)
      nsec = left - sec * NS_PER_SEC
    }
    const at = (slot * ARG_BYTES + ARG_TIMESPEC) >> 2
    const aw = d.argWords
    aw[at] = sec >>> 0
    aw[at + 1] = Math.floor(sec / 4294967296)
    aw[at + 2] = nsec
    aw[at + 3] = 0
    try {
      // count 0: a pure timer, not "after N completions".
      prepTimeout(d, slot, d.argAddress(slot) + ARG_TIMESPEC, 0, this.mode === "absolute" ? TIMEOUT_ABS : 0)
    } catch {
      // The SQ is full and the kernel refuses more. The slot stays allocated without an SQE
      // (the driver has no way to hand it back), but the sleeps stay on time.
      this.lastError = -Errno.EAGAIN
      return this.armFallback(deadline)
    }
    this.armedSlot = slot
    this.armedDeadline = deadline
    this.armedTotal++
    if (this.ringOps > this.maxRingOps) this.maxRingOps = this.ringOps
  }

  private armFallback(deadline: number): void {
    this.fallbacks++
    // libuv's loop time is coarse and may run a bit ahead of hrtime: `sync` re-arms if so.
    const ms = Math.min(MAX_JS_TIMER_MS, Math.max(1, Math.ceil((deadline - monotonicNow()) / 1e6)))
    this.fallback = setTimeout(this.onFallback, ms)
    this.armedDeadline = deadline
  }

  private disarm(): void {
    if (this.armedSlot !== -1) {
      const slot = this.armedSlot
      this.armedSlot = -1
      this.retiring++
      this.cancelled++
      this.cancel(slot)
    }
    if (this.fallback !== undefined) {
      clearTimeout(this.fallback)
      this.fallback = undefined
    }
    this.armedDeadline = Infinity
  }

  private cancel(slot: number): void {
    try {
      this.driver.cancel(slot)
    } catch {
      // No slot for the cancel (op table full): retry when a slot comes back; at worst the old
      // TIMEOUT fires at its time and is ignored then.
      this.uncancelled.push(slot)
    }
  }

  // ---- completions ------------------------------------------------------------------------------

  onCqe(slot: number, _tag: number, res: number): void {
    if (slot === this.armedSlot) {
      const deadline = this.armedDeadline
      this.armedSlot = -1
      this.armedDeadline = Infinity
      if (res === -Errno.ETIME) {
        this.fired++
        if (this.mode === "absolute" && monotonicNow() < deadline) this.earlyCqes++
      } else if (res < 0 && res !== -Errno.ECANCELED) {
        // -EINVAL, -EFAULT...: the kernel will not take our TIMEOUTs; stay on time with libuv.
        this.lastError = res
        this.ringUsable = false
      }
      // (res >= 0 would be a completion-count timeout; ours have none. Either way `sync` decides.)
    } else {
      // A retired TIMEOUT's terminal CQE: its argument area is free from now on. -ETIME means it
      // fired before the cancel reached it (a late loop turn woke its sleep first): still a firing.
      if (res === -Errno.ETIME) this.fired++
      this.retiring--
      const u = this.uncancelled.indexOf(slot)
      if (u >= 0) this.uncancelled.splice(u, 1)
    }
    if (this.uncancelled.length > 0) {
      // This CQE freed a slot: try the cancels that found none.
      for (const pending of this.uncancelled.splice(0)) this.cancel(pending)
    }
    this.sync()
    if (this.closed && this.ringOps === 0) this.settle()
  }

  // ---- shutdown ---------------------------------------------------------------------------------

  /**
   * Cancels the armed TIMEOUT; sleeps still pending (fibers that outlive the clock) move to libuv
   * timers. `done` runs once none of our TIMEOUTs is in flight.
   */
  close(done: () => void): void {
    this.closed = true
    this.disarm()
    for (const pending of this.uncancelled.splice(0)) this.cancel(pending)
    this.sync()
    if (this.ringOps === 0) done()
    else this.settledWaiters.push(done)
  }

  private settle(): void {
    const waiters = this.settledWaiters
    this.settledWaiters = []
    for (const w of waiters) w()
  }

  // ---- heap (ordered by deadline, then insertion) ------------------------------------------------

  private less(a: Sleeper, b: Sleeper): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq)
  }

  private removeAt(i: number): void {
    const h = this.heap
    const s = h[i]!
    s.index = -1
    const last = h.pop()!
    if (i < h.length) {
      h[i] = last
      last.index = i
      if (i > 0 && this.less(last, h[(i - 1) >> 1]!)) this.up(i)
      else this.down(i)
    }
  }

  private up(i: number): void {
    const h = this.heap
    const s = h[i]!
    while (i > 0) {
      const p = (i - 1) >> 1
      const ps = h[p]!
      if (!this.less(s, ps)) break
      h[i] = ps
      ps.index = i
      i = p
    }
    h[i] = s
    s.index = i
  }

  private down(i: number): void {
    const h = this.heap
    const n = h.length
    const s = h[i]!
    while (true) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l
      const cs = h[c]!
      if (!this.less(cs, s)) break
      h[i] = cs
      cs.index = i
      i = c
    }
    h[i] = s
    s.index = i
  }
}

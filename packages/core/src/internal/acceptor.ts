/**
 * The accepting end of acceptor mode, on the launcher's own ring: one multishot ACCEPT into the
 * fixed-file table, and each accepted slot sent to a worker's ring with IORING_MSG_SEND_FD
 * (msgRing.ts). The worker is the one with the fewest open handed-off connections (the shared
 * `load` words, raised here and lowered by the worker when a connection closes), ties broken
 * round-robin; or simply the next one.
 *
 * Once the transfer's own CQE reports success, the worker's ring holds the file and has its CQE,
 * so the local slot is closed. A failed transfer (the worker is gone, its table full) is retried
 * on the other workers, and the connection is closed only when none takes it (`lost`).
 * `stop` cancels the accept and waits until no transfer is in flight: `handed[i]` is then final,
 * and a drain can wait for each worker to have received exactly that many.
 */
import { AcceptBackoff } from "./acceptBackoff.js"
import type { Driver, OpOwner } from "./driver.js"
import { Errno, errnoName } from "./errno.js"
import { stageSendFd } from "./msgRing.js"
import { CqeFlag } from "./ring/abi.js"
import { prepMultishotAcceptDirect } from "./ring/prep.js"

const TAG_ACCEPT = 1
const TAG_HANDOFF = 2
const TAG_CLOSE_LISTENER = 3

/** The acceptor's marker `from` (workers are 0..n-1). */
const FROM_ACCEPTOR = 0xffff

export interface AcceptorTargets {
  /** Ring fd per worker, -1 while it has none (starting, restarting, gone). */
  readonly ringFds: Int32Array
  /** Open handed-off connections per worker (Atomics). */
  readonly load: Int32Array
  /** Whether worker i serves its inbox now (it listened). */
  readonly ready: Array<boolean>
}

interface Handoff {
  readonly fixed: number
  target: number
  tries: number
}

export class Acceptor implements OpOwner {
  private acceptSlot = -1
  private cancelled = false
  private stopping = false
  private closeSubmitted = false
  private listenerClosed = false
  private readonly inFlight = new Map<number, Handoff>()
  private stopWaiters: Array<() => void> = []
  private next = 0
  private seq = 0
  accepted = 0
  lost = 0
  acceptErrors = 0
  readonly handed: Array<number>

  constructor(
    private readonly driver: Driver,
    private readonly fd: number,
    private readonly targets: AcceptorTargets,
    private readonly balance: "leastLoaded" | "roundRobin"
  ) {
    this.handed = targets.ready.map(() => 0)
    driver.ring.own(fd)
    this.arm()
  }

  private arm(): void {
    if (this.stopping || this.acceptSlot !== -1) return
    const d = this.driver
    const slot = d.alloc(this, TAG_ACCEPT)
    prepMultishotAcceptDirect(d, slot, this.fd, 0, 0, 0)
    this.acceptSlot = slot
    this.cancelled = false
  }

  /** The worker for the next connection, skipping `exclude`; -1 when none can take one. */
  private pick(exclude: number): number {
    const { ready, ringFds, load } = this.targets
    const n = ready.length
    let best = -1
    for (let k = 0; k < n; k++) {
      const i = (this.next + k) % n
      if (i === exclude || !ready[i] || ringFds[i]! < 0) continue
      if (this.balance === "roundRobin") {
        best = i
        break
      }
      if (best === -1 || Atomics.load(load, i) < Atomics.load(load, best)) best = i
    }
    if (best !== -1) this.next = (best + 1) % n
    return best
  }

  private send(h: Handoff): void {
    const t = this.pick(h.tries === 0 ? -1 : h.target)
    if (t === -1 || h.tries >= this.targets.ready.length) {
      this.lost++
      this.driver.closeFixed(h.fixed)
      return this.finish()
    }
    h.target = t
    h.tries++
    Atomics.add(this.targets.load, t, 1)
    const slot = stageSendFd(this.driver, this, TAG_HANDOFF, this.targets.ringFds[t]!, h.fixed, FROM_ACCEPTOR, this.seq++)
    this.inFlight.set(slot, h)
  }

  onCqe(slot: number, tag: number, res: number, flags: number): void {
    if (tag === TAG_HANDOFF) {
      const h = this.inFlight.get(slot)!
      this.inFlight.delete(slot)
      if (res >= 0) {
        this.handed[h.target]!++
        this.driver.closeFixed(h.fixed)
        return this.finish()
      }
      Atomics.sub(this.targets.load, h.target, 1)
      this.driver.countError(errnoName(res))
      return this.send(h)
    }
    if (tag === TAG_CLOSE_LISTENER) {
      this.driver.ring.disown(this.fd)
      this.listenerClosed = true
      return this.finish()
    }
    if (res >= 0) {
      this.accepted++
      this.driver.counters.accepted++
      this.send({ fixed: res, target: -1, tries: 0 })
      this.backoff.reset()
    } else if (res !== -Errno.ECANCELED) {
      this.acceptErrors++
      this.driver.countError(errnoName(res))
    }
    if ((flags & CqeFlag.MORE) === 0) {
      this.acceptSlot = -1
      if (this.stopping) this.finish()
      // Our own slots are closed as soon as their transfer completes, but the process's fd
      // limit or the system-wide file table may stay full for a while.
      else if (res === -Errno.ENFILE || res === -Errno.EMFILE) this.backoff.schedule()
      else this.arm()
    }
  }

  private readonly backoff = new AcceptBackoff(() => this.arm())

  /** Handed-off connections whose transfer has not completed yet. */
  get pending(): number {
    return this.inFlight.size
  }

  /** Stops accepting (the listening socket closes) and calls `done` once no transfer is in flight. */
  stop(done: () => void): void {
    this.stopWaiters.push(done)
    if (!this.stopping) {
      this.stopping = true
      this.backoff.cancel()
      if (this.acceptSlot !== -1 && !this.cancelled) {
        this.cancelled = true
        this.driver.cancel(this.acceptSlot)
      }
    }
    this.finish()
  }

  private finish(): void {
    if (!this.stopping || this.acceptSlot !== -1) return
    if (!this.closeSubmitted) {
      this.closeSubmitted = true
      this.driver.closeFd(this.fd, this, TAG_CLOSE_LISTENER)
      return
    }
    if (!this.listenerClosed || this.inFlight.size > 0) return
    for (const f of this.stopWaiters.splice(0)) f()
  }
}


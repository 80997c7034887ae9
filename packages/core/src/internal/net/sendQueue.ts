/**
 * The send queue's parts that know nothing of memory or wires: the segment record, and the
 * callers waiting for a stream offset to be sent (`send`, `sendv`, `chain`) or for the queue to
 * drain below a mark (`write`'s backpressure, `shutdownWrite`). The queue itself and the choice
 * of memory per write live in channel.ts.
 */
import type { Segment } from "./wire.js"

/** Below this size a parsed view is copied into the send pool (and coalesced) rather than lent. */
export const LEND_MIN = 4096

/**
 * At most this many receive buffers are lent to one connection's queued sends (the wire caps
 * all connections together at half its ring): a peer that does not read pins no more than this
 * until its queue drains; further views are copied.
 */
export const LEND_MAX_PER_CONNECTION = 16

export const segment = (data: Uint8Array | null, pool: number, bid: number, addr: number, len: number, start: number): Segment => ({
  data,
  pool,
  bid,
  addr,
  len,
  sent: 0,
  start,
  notifs: 0,
  chain: 0,
  token: -1
})

interface Waiter {
  readonly target: number
  readonly ok: () => void
  readonly fail: (e: unknown) => void
}

/** Waiters for "sent up to offset" (in offset order) and "drained to at most n bytes queued". */
export class SendWaiters {
  private sendWaiters: Array<Waiter> = []
  private drainWaiters: Array<Waiter> = []

  get sendWaiting(): boolean {
    return this.sendWaiters.length > 0
  }

  /** Anyone waiting, for a send or a drain. */
  get waiting(): boolean {
    return this.sendWaiters.length > 0 || this.drainWaiters.length > 0
  }

  /** Waits until `completed` reaches `target`; returns the withdrawal. */
  whenSent(target: number, ok: () => void, fail: (e: unknown) => void): () => void {
    const w: Waiter = { target, ok, fail }
    this.sendWaiters.push(w)
    return () => remove(this.sendWaiters, w)
  }

  /** Waits until at most `threshold` bytes are queued; returns the withdrawal. */
  whenDrained(threshold: number, ok: () => void, fail: (e: unknown) => void): () => void {
    const w: Waiter = { target: threshold, ok, fail }
    this.drainWaiters.push(w)
    return () => remove(this.drainWaiters, w)
  }

  /** Wakes the waiters satisfied by `completed` bytes sent and `queued` bytes still queued. */
  settle(completed: number, queued: number): void {
    while (this.sendWaiters.length > 0 && this.sendWaiters[0]!.target <= completed) this.sendWaiters.shift()!.ok()
    if (this.drainWaiters.length > 0) {
      const keep: Array<Waiter> = []
      for (const w of this.drainWaiters) {
        if (queued <= w.target) w.ok()
        else keep.push(w)
      }
      this.drainWaiters = keep
    }
  }

  /** Fails every waiter with `error`. */
  fail(error: unknown): void {
    const waiters = [...this.sendWaiters, ...this.drainWaiters]
    this.sendWaiters = []
    this.drainWaiters = []
    for (const w of waiters) w.fail(error)
  }
}

/** Removes `item` from `list` (if there). */
export const remove = <A>(list: Array<A>, item: A): void => {
  const i = list.indexOf(item)
  if (i >= 0) list.splice(i, 1)
}

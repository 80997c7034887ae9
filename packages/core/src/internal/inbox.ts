/**
 * The receiving end of acceptor mode: connections another ring handed to this one with
 * IORING_MSG_SEND_FD arrive as CQEs whose res is their new fixed slot (msgRing.ts), and are
 * wrapped in connections exactly like accepted ones, so `Listener.serve` handles both alike.
 *
 * The inbox exists for the worker's whole life (arrivals may precede the program's listen call);
 * it counts every arrival so that a drain can wait until everything the acceptor handed over has
 * arrived and been taken by a handler before the program is interrupted: nothing is lost.
 * Arrivals after the inbox closed are closed at once (counted in `refused`).
 */
import { ConnectionClosed } from "../RinglineError.js"
import { type Callbacks, Conn } from "./connection.js"
import type { Driver } from "./driver.js"
import type { AcceptSource } from "./service.js"

export class Inbox implements AcceptSource {
  private readonly queue: Array<Conn> = []
  private readonly waiters: Array<Callbacks<Conn>> = []
  private track: ((conn: Conn) => void) | undefined
  private closing = false
  private readonly settledWaiters: Array<() => void> = []
  /** Connections that arrived (including refused ones) and that a handler took. */
  arrived = 0
  accepted = 0
  refused = 0
  /** The acceptor's handoff count this inbox must reach before a drain proceeds. */
  private expected = -1

  /** `onOpenChange(+1 | -1)` follows the connections open here (the acceptor balances on it). */
  constructor(private readonly driver: Driver, private readonly onOpenChange: (delta: number) => void) {}

  /** A CQE of kind Fd: `res` is the new fixed slot, or the error of the transfer. */
  arrive(res: number): void {
    this.arrived++
    if (res < 0) return this.settle()
    if (this.closing || this.track === undefined) {
      // Nobody will ever serve it: close it rather than leak the slot.
      this.refused++
      this.onOpenChange(-1)
      this.driver.closeFixed(res)
      return this.settle()
    }
    this.driver.counters.accepted++
    const conn = new Conn(this.driver, res, "tcp", undefined, undefined)
    this.track(conn)
    conn.onClosed(() => this.onOpenChange(-1))
    const w = this.waiters.shift()
    if (w !== undefined) {
      this.accepted++
      w.ok(conn)
    } else {
      this.queue.push(conn)
    }
    this.settle()
  }

  /** Attached by the Ringline service when the program listens (adopt). */
  open(track: (conn: Conn) => void): this {
    this.track = track
    this.closing = false
    return this
  }

  accept(cb: Callbacks<Conn>): () => void {
    if (this.closing) {
      cb.fail(new ConnectionClosed({ operation: "accept" }))
      return () => {}
    }
    const conn = this.queue.shift()
    if (conn !== undefined) {
      this.accepted++
      cb.ok(conn)
      this.settle()
      return () => {}
    }
    this.waiters.push(cb)
    return () => {
      const i = this.waiters.indexOf(cb)
      if (i >= 0) this.waiters.splice(i, 1)
    }
  }

  close(done: () => void): void {
    this.closing = true
    this.track = undefined
    for (const w of this.waiters.splice(0)) w.fail(new ConnectionClosed({ operation: "accept" }))
    // Unclaimed connections: close them (drain waits for `settled` first, so normally none).
    for (const conn of this.queue.splice(0)) conn.beginClose()
    this.settle()
    done()
  }

  /** Calls `f` once `expected` connections arrived and none waits unclaimed. */
  whenSettled(expected: number, f: () => void): void {
    this.expected = expected
    this.settledWaiters.push(f)
    this.settle()
  }

  private settle(): void {
    if (this.settledWaiters.length === 0 || this.arrived < this.expected || this.queue.length > 0) return
    for (const f of this.settledWaiters.splice(0)) f()
  }
}

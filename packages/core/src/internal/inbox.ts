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
import { Exit } from "effect"
import { ConnectionClosed } from "../RinglineError.js"
import type { Channel } from "./net/channel.js"
import { ringChannel } from "./net/ringWire.js"
import type { Driver } from "./driver.js"
import type { AcceptSource } from "./net/serve.js"
import { type Waiter, WaiterQueue } from "./waiters.js"

export class Inbox implements AcceptSource {
  private readonly queue: Array<Channel> = []
  /** Accepts waiting here; a connection is taken by the fiber that returns it (waiters.ts). */
  readonly acceptors = new WaiterQueue(() => this.queue.length > 0 || this.closing)
  private track: ((conn: Channel) => void) | undefined
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
    const conn = ringChannel(this.driver, res, "tcp")
    this.track(conn)
    conn.onClosed(() => this.onOpenChange(-1))
    this.queue.push(conn)
    this.acceptors.notify()
    this.settle()
  }

  /** Attached by the Ringline service when the program listens (adopt). */
  open(track: (conn: Channel) => void): this {
    this.track = track
    this.closing = false
    return this
  }

  /**
   * Takes the next handed-off connection for `w`; undefined when none is queued or an earlier
   * accept is first in line. An accept interrupted before it took one leaves it for the next.
   */
  take(w: Waiter): Exit.Exit<Channel, ConnectionClosed> | undefined {
    if (this.closing) {
      this.acceptors.withdraw(w)
      return Exit.fail(new ConnectionClosed({ operation: "accept" }))
    }
    if (this.queue.length === 0 || !this.acceptors.mayTake(w)) return undefined
    const conn = this.queue.shift()!
    this.acceptors.withdraw(w)
    this.accepted++
    this.settle()
    return Exit.succeed(conn)
  }

  close(done: () => void): void {
    this.closing = true
    this.track = undefined
    // Waiting accepts wake up to ConnectionClosed.
    this.acceptors.notify()
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

/**
 * A listening socket with one ACCEPT armed on it. Accepted sockets go straight into the
 * fixed-file table (IORING_FILE_INDEX_ALLOC), so they never exist as ordinary fds.
 *
 * The kernel completes the TCP handshake before an ACCEPT runs; an ACCEPT that then finds the
 * fixed-file table full fails with ENFILE and the kernel closes the new socket, which resets that
 * client. So accept is armed only while sockets leave the table a free slot
 * (`driver.socketSlotsFree`): multishot while many are free, one-shot (reserving its slot) when
 * few are, and not at all when none is. Clients then wait in the kernel's listen backlog until a
 * connection closes, and the time spent so is counted (`acceptFullMs`).
 */
import { AcceptBackoff } from "./acceptBackoff.js"
import { unlinkSync } from "node:fs"
import type { Address } from "../Address.js"
import { ConnectionClosed, socketError } from "../RinglineError.js"
import { Exit } from "effect"
import type { Channel } from "./net/channel.js"
import { ringChannel } from "./net/ringWire.js"
import type { Driver, OpOwner } from "./driver.js"
import { Errno, errnoName } from "./errno.js"
import { CqeFlag, FILE_INDEX_ALLOC } from "./ring/abi.js"
import { prepAcceptDirect, prepMultishotAcceptDirect } from "./ring/prep.js"
import { type Waiter, WaiterQueue } from "./waiters.js"

const TAG_ACCEPT = 1
const TAG_CLOSE = 2

export class Lst implements OpOwner {
  private acceptSlot = -1
  private cancelled = false
  private closing = false
  private fdClosed = false
  private closeSubmitted = false
  private waitingForSlot = false
  private readonly queue: Array<Channel> = []
  /** Accepts waiting for a connection; each takes it in its own fiber (internal/waiters.ts). */
  readonly acceptors = new WaiterQueue(() => this.queue.length > 0 || this.closing)
  private readonly orphans = new Set<Channel>()
  private closeWaiters: Array<() => void> = []
  accepted = 0
  acceptErrors = 0
  /** Connections accepted by the kernel that no accept took before the listener closed. */
  abandoned = 0

  constructor(
    private readonly driver: Driver,
    readonly fd: number,
    readonly address: Address,
    readonly kind: "tcp" | "unix",
    private readonly backlog: number,
    private readonly onConn: (conn: Channel) => void
  ) {
    driver.ring.own(fd)
    driver.slotReleased.add(this.onSlotReleased)
    this.sync()
  }

  private readonly retry = () => {
    this.driver.slotReleased.delete(this.retry)
    this.backoff.cancel()
    this.waitingForSlot = false
    this.sync()
  }
  /** The timed retry after ENFILE/EMFILE (besides waiting for one of our slots to be released). */
  private readonly backoff = new AcceptBackoff(this.retry)

  /** Whether the armed accept is multishot (else it is one-shot and holds a slot reservation). */
  private multishot = false

  private readonly onSlotReleased = () => this.sync()

  /**
   * Arms accept unless closing, waiting for a fixed slot, holding `backlog` unclaimed
   * connections, or the fixed-file table has no slot for another socket. Multishot only while
   * more slots are free than a burst of connections could take before a cancel lands (twice the
   * backlog: the kernel's queue, plus as many arriving meanwhile).
   */
  private sync(): void {
    const d = this.driver
    const free = d.socketSlotsFree
    const wanted = !this.closing && !this.waitingForSlot && this.queue.length < this.backlog
    d.noteTableFull(this, wanted && free <= 0 && this.acceptSlot === -1)
    const many = free > Math.max(2 * this.backlog, 64)
    if (wanted && this.acceptSlot === -1 && free > 0) {
      const slot = d.alloc(this, TAG_ACCEPT)
      if (many) {
        prepMultishotAcceptDirect(d, slot, this.fd, 0, 0, 0)
      } else {
        prepAcceptDirect(d, slot, this.fd, 0, 0, 0, FILE_INDEX_ALLOC)
        d.acceptReserved++
      }
      this.acceptSlot = slot
      this.multishot = many
      this.cancelled = false
    } else if (this.acceptSlot !== -1 && !this.cancelled && (!wanted || (this.multishot && !many))) {
      // Not wanted any more, or the table is filling up: a multishot accept could take the last
      // slots and then reset clients; it is replaced by a one-shot one after its terminal CQE.
      this.cancelled = true
      d.cancel(this.acceptSlot)
    }
  }

  onCqe(_slot: number, tag: number, res: number, flags: number): void {
    if (tag === TAG_CLOSE) {
      this.driver.ring.disown(this.fd)
      this.fdClosed = true
      return this.finish()
    }
    const terminal = (flags & CqeFlag.MORE) === 0
    if (terminal && !this.multishot) this.driver.acceptReserved--
    if (res >= 0) {
      this.backoff.reset()
      this.driver.socketSlots++
      this.accepted++
      this.driver.counters.accepted++
      const conn = ringChannel(this.driver, res, this.kind, undefined, this.kind === "unix" ? this.address : undefined)
      this.onConn(conn)
      if (this.closing) {
        this.orphan(conn)
      } else {
        this.queue.push(conn)
        this.acceptors.notify()
      }
    } else if (res === -Errno.ENFILE || res === -Errno.EMFILE) {
      // The fixed-file table is full: wait for a connection to close instead of spinning. It
      // may also be full of files (storage) or the system-wide file table (ENFILE) may be, and
      // then no connection of ours need ever close: retry on a backoff timer (10 ms to 1 s) too.
      this.waitingForSlot = true
      this.driver.slotReleased.add(this.retry)
      this.backoff.schedule()
    } else if (res !== -Errno.ECANCELED) {
      this.acceptErrors++
      this.driver.countError(errnoName(res))
    }
    if (terminal) {
      this.acceptSlot = -1
      this.sync()
      if (this.closing) this.finish()
    } else if (this.queue.length >= this.backlog) {
      this.sync()
    }
  }

  /**
   * Takes the next accepted connection for waiter `w`, in the fiber that returns it; undefined
   * when there is none yet or an earlier accept is first in line. An accept interrupted before
   * it took one leaves it queued for the next accept (or, when the listener closes, it is closed
   * and counted in `abandoned`).
   */
  take(w: Waiter): Exit.Exit<Channel, ConnectionClosed> | undefined {
    if (this.closing) {
      this.acceptors.withdraw(w)
      return Exit.fail(new ConnectionClosed({ operation: "accept" }))
    }
    if (this.queue.length === 0 || !this.acceptors.mayTake(w)) return undefined
    const conn = this.queue.shift()!
    this.acceptors.withdraw(w)
    this.sync()
    return Exit.succeed(conn)
  }

  private orphan(conn: Channel): void {
    this.orphans.add(conn)
    conn.onClosed(() => {
      this.orphans.delete(conn)
      this.finish()
    })
    conn.beginClose()
  }

  /** Stops accepting at once (the socket is closed, new connects are refused). */
  close(done: () => void): void {
    this.closeWaiters.push(done)
    if (this.closing) return this.finish()
    this.closing = true
    this.driver.slotReleased.delete(this.retry)
    this.backoff.cancel()
    this.driver.slotReleased.delete(this.onSlotReleased)
    for (const conn of this.queue.splice(0)) {
      // Accepted by the kernel, never taken by an accept: closed here, and counted.
      this.abandoned++
      this.driver.counters.acceptsAbandoned++
      this.orphan(conn)
    }
    // Waiting accepts wake up to ConnectionClosed.
    this.acceptors.notify()
    this.sync()
    this.finish()
  }

  private finish(): void {
    if (!this.closing) return
    if (this.acceptSlot !== -1) return
    if (!this.closeSubmitted) {
      this.closeSubmitted = true
      this.driver.closeFd(this.fd, this, TAG_CLOSE)
      return
    }
    if (!this.fdClosed || this.orphans.size > 0) return
    if (this.address._tag === "UnixAddress" && this.address.path !== "" && this.address.path[0] !== "\0") {
      try {
        unlinkSync(this.address.path)
      } catch {
        // Already gone: nothing to clean up.
      }
    }
    const waiters = this.closeWaiters
    this.closeWaiters = []
    for (const f of waiters) f()
  }
}

export const listenError = (e: any, address: string) => socketError(e?.syscall ?? "listen", e?.errno ?? Errno.EINVAL, address)

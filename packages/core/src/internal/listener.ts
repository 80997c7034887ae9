/**
 * A listening socket with one multishot ACCEPT armed on it. Accepted sockets go straight into the
 * fixed-file table (IORING_FILE_INDEX_ALLOC), so they never exist as ordinary fds.
 */
import { unlinkSync } from "node:fs"
import type { Address } from "../Address.js"
import { ConnectionClosed, socketError } from "../RinglineError.js"
import { Conn, type Callbacks } from "./connection.js"
import type { Driver, OpOwner } from "./driver.js"
import { Errno, errnoName } from "./errno.js"
import { CqeFlag, FILE_INDEX_ALLOC, IOPRIO_ACCEPT_MULTISHOT, Op, W } from "./sqe.js"

const TAG_ACCEPT = 1
const TAG_CLOSE = 2

export class Lst implements OpOwner {
  private acceptSlot = -1
  private cancelled = false
  private closing = false
  private fdClosed = false
  private closeSubmitted = false
  private waitingForSlot = false
  private readonly queue: Array<Conn> = []
  private readonly waiters: Array<Callbacks<Conn>> = []
  private readonly orphans = new Set<Conn>()
  private closeWaiters: Array<() => void> = []
  accepted = 0
  acceptErrors = 0

  constructor(
    private readonly driver: Driver,
    readonly fd: number,
    readonly address: Address,
    readonly kind: "tcp" | "unix",
    private readonly backlog: number,
    private readonly onConn: (conn: Conn) => void
  ) {
    driver.ring.own(fd)
    this.sync()
  }

  private readonly retry = () => {
    this.driver.slotReleased.delete(this.retry)
    this.waitingForSlot = false
    this.sync()
  }

  /** Arms accept unless closing, waiting for a fixed slot, or holding `backlog` unclaimed connections. */
  private sync(): void {
    const wanted = !this.closing && !this.waitingForSlot && this.queue.length < this.backlog
    if (wanted && this.acceptSlot === -1) {
      const d = this.driver
      const slot = d.alloc(this, TAG_ACCEPT)
      const w = d.sqe(Op.ACCEPT, 0, this.fd, slot)
      d.words[w] |= IOPRIO_ACCEPT_MULTISHOT << 16
      d.words[w + W.fileIndex] = FILE_INDEX_ALLOC
      this.acceptSlot = slot
      this.cancelled = false
    } else if (!wanted && this.acceptSlot !== -1 && !this.cancelled) {
      this.cancelled = true
      this.driver.cancel(this.acceptSlot)
    }
  }

  onCqe(_slot: number, tag: number, res: number, flags: number): void {
    if (tag === TAG_CLOSE) {
      this.driver.ring.disown(this.fd)
      this.fdClosed = true
      return this.finish()
    }
    if (res >= 0) {
      this.accepted++
      this.driver.counters.accepted++
      const conn = new Conn(this.driver, res, this.kind, undefined, this.kind === "unix" ? this.address : undefined)
      this.onConn(conn)
      if (this.closing) {
        this.orphan(conn)
      } else if (this.waiters.length > 0) {
        this.waiters.shift()!.ok(conn)
      } else {
        this.queue.push(conn)
      }
    } else if (res === -Errno.ENFILE || res === -Errno.EMFILE) {
      // The fixed-file table is full: wait for a connection to close instead of spinning.
      this.waitingForSlot = true
      this.driver.slotReleased.add(this.retry)
    } else if (res !== -Errno.ECANCELED) {
      this.acceptErrors++
      this.driver.countError(errnoName(res))
    }
    if ((flags & CqeFlag.MORE) === 0) {
      this.acceptSlot = -1
      this.sync()
      if (this.closing) this.finish()
    } else if (this.queue.length >= this.backlog) {
      this.sync()
    }
  }

  accept(cb: Callbacks<Conn>): () => void {
    if (this.closing) {
      cb.fail(new ConnectionClosed({ operation: "accept" }))
      return () => {}
    }
    const conn = this.queue.shift()
    if (conn !== undefined) {
      cb.ok(conn)
      this.sync()
      return () => {}
    }
    this.waiters.push(cb)
    return () => {
      const i = this.waiters.indexOf(cb)
      if (i >= 0) this.waiters.splice(i, 1)
    }
  }

  private orphan(conn: Conn): void {
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
    for (const w of this.waiters.splice(0)) w.fail(new ConnectionClosed({ operation: "accept" }))
    for (const conn of this.queue.splice(0)) this.orphan(conn)
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

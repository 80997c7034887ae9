/**
 * The arm / cancel / park state of one socket's multishot receive (RECV on a stream, RECVMSG on
 * a datagram socket), shared by connections and UDP sockets so the rules live in one place:
 * at most one receive armed; a cancel submitted at most once per arming; after a terminal
 * -ENOBUFS, parked until the driver has given provided buffers back (re-arming in the same
 * batch would spin on an empty buffer ring).
 */
import type { Driver } from "./driver.js"
import { Errno } from "./errno.js"

export class MultishotRecv {
  /** The armed receive's op slot, or -1. */
  slot = -1
  private cancelled = false
  private parked = false

  /**
   * `wanted` says whether the socket wants data now; `arm` submits the multishot receive and
   * returns its slot.
   */
  constructor(
    private readonly driver: Driver,
    private readonly wanted: () => boolean,
    private readonly arm: () => number
  ) {}

  get armed(): boolean {
    return this.slot !== -1
  }

  /** Arms the receive when wanted and not armed; cancels it when armed and no longer wanted. */
  sync(): void {
    if (this.wanted()) {
      if (this.slot === -1 && !this.parked) {
        this.slot = this.arm()
        this.cancelled = false
      }
    } else if (this.slot !== -1 && !this.cancelled) {
      this.cancelled = true
      this.driver.cancel(this.slot)
    }
  }

  /** The terminal CQE (no IORING_CQE_F_MORE) of the armed receive, with its result. */
  ended(res: number): void {
    this.slot = -1
    if (res === -Errno.ENOBUFS && this.wanted()) {
      this.parked = true
      this.driver.parked.add(this)
    } else {
      this.sync()
    }
  }

  /** Called by the driver after a batch in which buffers went back to the ring. */
  rearm(): void {
    this.parked = false
    this.sync()
  }

  /** The socket is closing: drop a pending park. */
  unpark(): void {
    this.driver.parked.delete(this)
    this.parked = false
  }
}

/**
 * An outbound connect: SOCKET into the fixed-file table, then (TCP) TCP_NODELAY through a socket
 * URING_CMD hard-linked to CONNECT, itself linked to a LINK_TIMEOUT when a timeout is given.
 *
 * The sockaddr and timespec live in the CONNECT slot's argument area and the option value in the
 * URING_CMD slot's, so they stay valid until those slots' terminal CQEs. If the connect fails or is
 * interrupted, the fixed slot is closed before the caller hears back: a slot is released once.
 */
import type { Address } from "../Address.js"
import * as Addr from "../Address.js"
import { ConnectError, type ConnectFailure } from "../RinglineError.js"
import type { Channel } from "./net/channel.js"
import { ringChannel } from "./net/ringWire.js"
import type { Callbacks } from "./net/wire.js"
import { ARG_BYTES, ARG_TIMESPEC, type Driver, type OpOwner, TAG_LINK_TIMEOUT } from "./driver.js"
import { Errno, errnoName } from "./errno.js"
import { AF_INET, AF_INET6, AF_UNIX, encodeToBytes, SOCK_STREAM } from "./sockaddr.js"
import { SOCKET_URING_OP_SETSOCKOPT, SqeFlag } from "./ring/abi.js"
import { prepCmdSock, prepConnect, prepLinkTimeout, prepSocketDirectAlloc } from "./ring/prep.js"

const TAG_SOCKET = 1
const TAG_SOCKOPT = 2
const TAG_CONNECT = 3
const TAG_CLOSE = 4
const IPPROTO_TCP = 6
const TCP_NODELAY = 1

export class ConnectOp implements OpOwner {
  private fixed = -1
  private ops = 0
  private connectSlot = -1
  private result = 1
  private timedOut = false
  private interrupted = false
  private closing = false
  private settled = false
  private onSettled: Array<() => void> = []
  /**
   * The sockaddr, encoded before anything is submitted: CONNECT is staged from a CQE callback,
   * where a bad address must not be able to throw (the caller checked it, this makes it final).
   */
  private readonly sockaddr: Uint8Array

  constructor(
    private readonly driver: Driver,
    private readonly target: Address,
    private readonly timeoutMs: number | undefined,
    private readonly cb: Callbacks<Channel>
  ) {
    this.sockaddr = encodeToBytes(target)
    const d = driver
    const slot = d.alloc(this, TAG_SOCKET)
    this.ops++
    const domain = target._tag === "UnixAddress" ? AF_UNIX : target.family === 6 ? AF_INET6 : AF_INET
    prepSocketDirectAlloc(d, slot, domain, SOCK_STREAM, 0)
  }

  onCqe(slot: number, tag: number, res: number): void {
    this.ops--
    switch (tag) {
      case TAG_SOCKET:
        if (res < 0) this.result = res
        else {
          this.fixed = res
          this.driver.socketSlots++
          if (!this.interrupted) this.submitConnect()
        }
        break
      case TAG_CONNECT:
        this.result = res
        this.connectSlot = -1
        break
      case TAG_LINK_TIMEOUT:
        if (res === -Errno.ETIME) this.timedOut = true
        break
      case TAG_SOCKOPT:
        // Best effort: a kernel without socket URING_CMDs connects without TCP_NODELAY.
        break
      case TAG_CLOSE:
        break
    }
    if (this.ops === 0) this.finish()
  }

  private submitConnect(): void {
    const d = this.driver
    const tcp = this.target._tag === "TcpAddress"
    if (tcp && d.config.tcpNoDelay) {
      const slot = d.alloc(this, TAG_SOCKOPT)
      this.ops++
      new DataView(d.args.buffer, d.args.byteOffset).setInt32(slot * ARG_BYTES, 1, true)
      prepCmdSock(d, slot, SOCKET_URING_OP_SETSOCKOPT, this.fixed, IPPROTO_TCP, TCP_NODELAY, d.argAddress(slot), 4,
        SqeFlag.FIXED_FILE | SqeFlag.IO_HARDLINK)
    }
    const withTimeout = this.timeoutMs !== undefined
    const slot = d.alloc(this, TAG_CONNECT, withTimeout ? 2 : 1)
    this.ops += withTimeout ? 2 : 1
    this.connectSlot = slot
    const len = this.sockaddr.length
    d.argView(slot).set(this.sockaddr)
    prepConnect(d, slot, this.fixed, d.argAddress(slot), len, SqeFlag.FIXED_FILE | (withTimeout ? SqeFlag.IO_LINK : 0))
    if (withTimeout) {
      const ms = Math.max(0, this.timeoutMs!)
      const ts = new DataView(d.args.buffer, d.args.byteOffset + slot * ARG_BYTES + ARG_TIMESPEC, 16)
      ts.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true)
      ts.setBigInt64(8, BigInt(Math.round((ms % 1000) * 1e6)), true)
      prepLinkTimeout(d, slot, d.argAddress(slot) + ARG_TIMESPEC)
    }
  }

  /** Interruption: cancel what is in flight; `done` runs once every CQE (and the close) is in. */
  interrupt(done: () => void): void {
    if (this.settled) return done()
    this.onSettled.push(done)
    this.interrupted = true
    if (this.connectSlot !== -1) this.driver.cancel(this.connectSlot)
  }

  private finish(): void {
    if (this.result === 0 && !this.interrupted) {
      this.settle(false)
      this.driver.counters.connected++
      const peer = this.target
      const conn = ringChannel(this.driver, this.fixed, peer._tag === "UnixAddress" ? "unix" : "tcp", peer,
        peer._tag === "UnixAddress" ? Addr.unix("") : undefined)
      return this.cb.ok(conn)
    }
    if (this.fixed >= 0 && !this.closing) {
      // Release the socket before reporting, so that a retry never races this slot.
      this.closing = true
      this.ops++
      this.driver.closeFixed(this.fixed, this, TAG_CLOSE)
      return
    }
    this.settle(this.fixed >= 0)
    if (this.interrupted) return
    const errno = this.timedOut ? Errno.ETIMEDOUT : -this.result
    this.driver.countError(errnoName(errno))
    this.cb.fail(
      new ConnectError({ reason: failure(errno, this.timedOut), address: Addr.format(this.target), errno, code: errnoName(errno) })
    )
  }

  private settle(slotReleased: boolean): void {
    this.settled = true
    if (slotReleased) this.driver.socketSlotReleased()
    for (const f of this.onSettled.splice(0)) f()
  }
}

export const failure = (errno: number, timedOut: boolean): ConnectFailure => {
  if (timedOut || errno === Errno.ETIMEDOUT) return "Timeout"
  if (errno === Errno.ECONNREFUSED) return "Refused"
  if (errno === Errno.ENETUNREACH || errno === Errno.EHOSTUNREACH) return "Unreachable"
  if (errno === Errno.ENOENT) return "NotFound"
  return "Other"
}

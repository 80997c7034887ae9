/**
 * One UDP socket on the ring: a plain fd (owned by the ring until closed), ONE multishot RECVMSG
 * into provided buffers shared by every reader, and any number of SENDMSGs in flight, each in its
 * own op slot. Callback-based; the Effect-facing object is built in ../Udp.ts.
 *
 * What outlives an op, and why:
 * - multishot recvmsg: its msghdr (msg_namelen = 28, no iovec, no control) lives in the recv
 *   slot's argument area, pinned until the terminal CQE. Each completion's provided buffer holds
 *   struct io_uring_recvmsg_out { u32 namelen, controllen, payloadlen, flags } (16 bytes), then
 *   msg_namelen (28) bytes of name area, then the payload; the payload is copied out and the
 *   buffer recycled in the same callback.
 * - sendmsg: msghdr (56 bytes) + iovec (16) + sockaddr (≤ 28) in the send slot's argument area;
 *   the bytes in a send-pool slot (or the caller's array, in `driver.holds`) until the CQE.
 *
 * Received datagrams wait in a queue when nobody is reading. When it reaches `capacity` the
 * multishot recv is cancelled (re-armed once readers brought the queue down to half) and the
 * kernel's socket buffer (SO_RCVBUF) takes over, as for any UDP socket that is not read fast
 * enough: the kernel drops what does not fit there. Datagrams that completed before the cancel
 * took effect are still queued (none is dropped here), so the queue may exceed `capacity` by at
 * most the provided-buffer ring size: the kernel cannot complete more without recycled buffers,
 * and the recycles reach it together with the cancel.
 */
import type { UdpAddress } from "../Address.js"
import * as Addr from "../Address.js"
import { DatagramTruncated, SocketClosed, socketError, type SocketError } from "../RinglineError.js"
import { Exit } from "effect"
import type { Callbacks } from "./net/wire.js"
import { ARG_BYTES, type Driver, type OpOwner } from "./driver.js"
import { Errno } from "./errno.js"
import { MultishotRecv } from "./multishot.js"
import { type Waiter, WaiterQueue } from "./waiters.js"
import { load } from "./native.js"
import { decode, encode } from "./sockaddr.js"
import { CqeFlag, IOPRIO_RECV_MULTISHOT, Op, putU64, SqeFlag, W } from "./ring/abi.js"

const TAG_RECV = 1
const TAG_SEND = 2
const TAG_CLOSE = 3

/** sizeof(struct io_uring_recvmsg_out). */
const OUT_BYTES = 16
/** msg_namelen of the recvmsg msghdr: room for a sockaddr_in6. */
const NAME_ROOM = 28
/** Header bytes in front of the payload in each receive buffer. */
export const RECV_OVERHEAD = OUT_BYTES + NAME_ROOM
const MSG_TRUNC = 0x20

// Argument area of a SENDMSG slot: msghdr, then one iovec, then the destination sockaddr.
const ARG_IOV = 56
const ARG_NAME = 72

/** A received datagram: an owned copy of its bytes and its sender. */
export interface Datagram {
  readonly data: Uint8Array
  readonly address: UdpAddress
}

export type RecvError = DatagramTruncated | SocketError | SocketClosed

type Item = Datagram | DatagramTruncated | SocketError

interface Send {
  readonly cb: Callbacks<void>
  readonly to: UdpAddress
  readonly pool: number
  interrupted: boolean
  onTerminal: (() => void) | undefined
}

export class UdpSock implements OpOwner {
  private readonly driver: Driver
  private readonly recvView: DataView

  // receive side
  private started = false
  private readonly recv: MultishotRecv
  /** A receive error is queued: do not re-arm until a reader took it (never spin on an error). */
  private errorQueued = false
  /** The queue reached `capacity`: not receiving until readers bring it down to half. */
  private full = false
  private items: Array<Item> = []
  private head = 0
  /** Readers waiting for a datagram; each takes it in its own fiber (internal/waiters.ts). */
  readonly readers = new WaiterQueue(() => this.queued > 0 || this.closing)
  private lastName = new Uint8Array(NAME_ROOM)
  private lastNameLen = -1
  private lastAddress: UdpAddress | undefined

  // lifecycle
  private ops = 0
  private closing = false
  private closeSubmitted = false
  private closed = false
  private closeWaiters: Array<() => void> = []
  /** Slots of the SENDMSGs in flight. */
  private readonly sends = new Set<number>()

  received = 0
  sent = 0
  truncated = 0

  constructor(
    driver: Driver,
    readonly fd: number,
    readonly address: UdpAddress,
    private readonly capacity: number
  ) {
    this.driver = driver
    this.recvView = new DataView(driver.recvBuffers)
    this.recv = new MultishotRecv(driver, () => this.recvWanted, () => this.armRecv())
    driver.ring.own(fd)
  }

  /** Datagrams (and queued errors) received and not yet read. */
  get queued(): number {
    return this.items.length - this.head
  }

  /** Ops of this socket whose terminal CQE has not arrived yet. */
  get opsInFlight(): number {
    return this.ops
  }

  get isClosed(): boolean {
    return this.closed
  }

  onCqe(slot: number, tag: number, res: number, flags: number): void {
    const terminal = (flags & CqeFlag.MORE) === 0
    if (terminal) this.ops--
    switch (tag) {
      case TAG_RECV:
        this.onRecv(res, flags, terminal)
        break
      case TAG_SEND:
        this.onSend(slot, res)
        break
      case TAG_CLOSE:
        this.driver.ring.disown(this.fd)
        this.closed = true
        break
    }
    if (this.closing) this.advanceClose()
  }

  // ---- receive --------------------------------------------------------------------------------

  private get recvWanted(): boolean {
    return this.started && !this.closing && !this.errorQueued && !this.full
  }

  /** Submits the multishot RECVMSG (provided buffers, group 0); returns its slot. */
  private armRecv(): number {
    const d = this.driver
    const slot = d.alloc(this, TAG_RECV)
    this.ops++
    const m = (slot * ARG_BYTES) >> 2
    // struct msghdr: name pointer NULL (the kernel writes the name into the buffer), namelen 28,
    // no iovec (the provided buffer is the payload area), no control.
    d.argWords.fill(0, m, m + 14)
    d.argWords[m + 2] = NAME_ROOM
    const w = d.sqe(Op.RECVMSG, SqeFlag.BUFFER_SELECT, this.fd, slot)
    d.words[w] |= IOPRIO_RECV_MULTISHOT << 16
    d.setAddr(w, W.addr, d.argAddress(slot))
    d.words[w + W.len] = 1
    // MSG_TRUNC: the kernel reports a datagram's real length (payloadlen) even when it is cut.
    d.words[w + W.opFlags] = MSG_TRUNC
    return slot
  }

  private onRecv(res: number, flags: number, terminal: boolean): void {
    const d = this.driver
    if (flags & CqeFlag.BUFFER) {
      const bid = flags >>> 16
      if (res >= RECV_OVERHEAD && !this.closing) this.deliver(this.parse(bid * d.bufferSize, res))
      // The buffer is the kernel's again after this line.
      d.recycle(bid)
    } else if (res === -Errno.ENOBUFS) {
      d.counters.enobufs++
    } else if (res < 0 && res !== -Errno.ECANCELED && !this.closing) {
      this.errorQueued = true
      this.deliver(socketError("recvFrom", res, Addr.format(this.address)))
    }
    if (terminal) this.recv.ended(res)
  }

  /** Reads one completion's buffer (io_uring_recvmsg_out, name area, payload). */
  private parse(off: number, res: number): Item {
    const v = this.recvView
    const namelen = v.getUint32(off, true)
    const payloadlen = v.getUint32(off + 8, true)
    const mflags = v.getUint32(off + 12, true)
    const address = this.nameAt(off + OUT_BYTES, Math.min(namelen, NAME_ROOM))
    const data = new Uint8Array(this.driver.recvBuffers, off + RECV_OVERHEAD, res - RECV_OVERHEAD).slice()
    this.received++
    this.driver.counters.datagramsIn++
    if ((mflags & MSG_TRUNC) !== 0 || payloadlen > data.length) {
      this.truncated++
      return new DatagramTruncated({ address, length: Math.max(payloadlen, data.length), data })
    }
    return { data, address }
  }

  /** Decodes a sender's sockaddr, reusing the previous Address when it is the same peer. */
  private nameAt(off: number, len: number): UdpAddress {
    const bytes = new Uint8Array(this.driver.recvBuffers, off, len)
    const last = this.lastName
    if (len === this.lastNameLen && this.lastAddress !== undefined) {
      let same = true
      for (let i = 0; i < len; i++) {
        if (bytes[i] !== last[i]) {
          same = false
          break
        }
      }
      if (same) return this.lastAddress
    }
    let address: UdpAddress
    try {
      const a = decode(bytes)
      address = a._tag === "TcpAddress" ? Addr.udp(a.host, a.port, a.family) : UNKNOWN
    } catch {
      // No usable name (the kernel gave none): never throw out of a CQE callback.
      address = UNKNOWN
    }
    last.set(bytes)
    this.lastNameLen = len
    this.lastAddress = address
    return address
  }

  private deliver(item: Item): void {
    this.items.push(item)
    if (this.queued >= this.capacity && !this.full) {
      this.full = true
      this.recv.sync()
    }
    this.readers.notify()
  }

  /** The first reader starts the receive (until then datagrams wait in the socket buffer). */
  start(): void {
    if (this.started) return
    this.started = true
    this.recv.sync()
  }

  /**
   * Takes the next datagram (or queued error) for waiter `w`, in the fiber that returns it;
   * undefined when there is none yet or an earlier reader is first in line.
   */
  take(w: Waiter): Exit.Exit<Datagram, RecvError> | undefined {
    if (this.closing) {
      this.readers.withdraw(w)
      return Exit.fail(new SocketClosed({ operation: "recvFrom" }))
    }
    if (this.queued === 0 || !this.readers.mayTake(w)) return undefined
    const item = this.items[this.head]!
    this.items[this.head++] = undefined as any
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    if (this.full && this.queued <= this.capacity >>> 1) this.full = false
    if ("_tag" in item && item._tag === "SocketError") this.errorQueued = false
    this.recv.sync()
    this.readers.withdraw(w)
    return "_tag" in item ? Exit.fail(item) : Exit.succeed(item)
  }

  // ---- send -----------------------------------------------------------------------------------

  /**
   * Submits one SENDMSG of `data` to `to` (its own slot: any number may be in flight). `cb` hears
   * when the kernel took the datagram. Returns a function that cancels it (its `done` runs after
   * the terminal CQE), or undefined when it failed at once.
   */
  sendTo(data: Uint8Array, to: UdpAddress, cb: Callbacks<void>): ((done: () => void) => void) | undefined {
    if (this.closing) {
      cb.fail(new SocketClosed({ operation: "sendTo" }))
      return undefined
    }
    const d = this.driver
    const len = data.length
    let pool = -1
    let addr: number
    if (len <= d.sendSlotSize && (pool = d.takeSendSlot()) >= 0) {
      d.sendPool.set(data, pool * d.sendSlotSize)
      addr = d.sendPoolBase + pool * d.sendSlotSize
    } else {
      // A view of a receive buffer is recycled under us: send from a copy.
      const bytes = data.buffer === d.recvBuffers ? data.slice() : data
      addr = len === 0 ? 0 : load().addressOf(bytes)
      pool = -1
      data = bytes
    }
    const slot = d.alloc(this, TAG_SEND)
    this.ops++
    this.sends.add(slot)
    const send: Send = { cb, to, pool, interrupted: false, onTerminal: undefined }
    d.holds[slot] = pool >= 0 ? send : [send, data]
    if (pool < 0 && len > 0) d.pinHold(slot, data)
    const base = slot * ARG_BYTES
    const m = base >> 2
    const words = d.argWords
    const argAddr = d.argAddress(slot)
    words.fill(0, m, m + 28)
    const nameLen = encode(this.destination(to), d.args, base + ARG_NAME)
    putU64(words, m, argAddr + ARG_NAME) // msg_name
    words[m + 2] = nameLen // msg_namelen
    putU64(words, m + 4, argAddr + ARG_IOV) // msg_iov
    words[m + 6] = 1 // msg_iovlen
    putU64(words, m + (ARG_IOV >> 2), addr) // iov_base
    putU64(words, m + (ARG_IOV >> 2) + 2, len) // iov_len
    const w = d.sqe(Op.SENDMSG, 0, this.fd, slot)
    d.setAddr(w, W.addr, argAddr)
    d.words[w + W.len] = 1
    return (done) => {
      send.interrupted = true
      send.onTerminal = done
      d.cancel(slot)
    }
  }

  /** An IPv6 socket reaches IPv4 peers through their v4-mapped address. */
  private destination(to: UdpAddress): UdpAddress {
    return this.address.family === 6 && to.family === 4 ? Addr.udp(`::ffff:${to.host}`, to.port, 6) : to
  }

  private onSend(slot: number, res: number): void {
    const d = this.driver
    const held = d.holds[slot]
    const send = (Array.isArray(held) ? held[0] : held) as Send
    this.sends.delete(slot)
    if (send.pool >= 0) d.giveSendSlot(send.pool)
    if (res >= 0) {
      this.sent++
      d.counters.datagramsOut++
    }
    if (send.interrupted) {
      send.onTerminal?.()
    } else if (res >= 0) {
      send.cb.ok()
    } else if (res === -Errno.ECANCELED && this.closing) {
      send.cb.fail(new SocketClosed({ operation: "sendTo" }))
    } else {
      send.cb.fail(socketError("sendTo", res, Addr.format(send.to)))
    }
  }

  // ---- close ----------------------------------------------------------------------------------

  /**
   * Stops receiving, cancels the sends still in flight, waits for every op's terminal CQE, then
   * closes the fd through the ring. `done` runs once the close CQE is in. Idempotent.
   */
  close(done: () => void): void {
    if (this.closed) return done()
    if (this.driver.closed) {
      // The ring is gone (released before this socket's scope): its teardown closed the fd.
      this.closed = true
      return done()
    }
    this.closeWaiters.push(done)
    if (this.closing) return
    this.closing = true
    const d = this.driver
    this.recv.unpark()
    this.items = []
    this.head = 0
    this.recv.sync()
    // Sends still in flight (a full socket buffer) would hold the close up: withdraw them.
    for (const slot of this.sends) d.cancel(slot)
    // Waiting readers wake up to ConnectionClosed.
    this.readers.notify()
    this.advanceClose()
  }

  private advanceClose(): void {
    if (this.closed) {
      const waiters = this.closeWaiters
      this.closeWaiters = []
      for (const f of waiters) f()
      return
    }
    if (this.ops > 0 || this.closeSubmitted) return
    this.closeSubmitted = true
    this.ops++
    this.driver.closeFd(this.fd, this, TAG_CLOSE)
  }
}

const UNKNOWN: UdpAddress = Addr.udp("0.0.0.0", 0, 4)

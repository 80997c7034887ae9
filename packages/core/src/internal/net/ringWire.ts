/**
 * The io_uring {@link Wire}: one stream socket on a fixed-file slot. Multishot RECV into the
 * driver's provided buffers (parked on -ENOBUFS, see ../multishot.ts), SEND / SEND_ZC /
 * SENDMSG(_ZC) of gathered segments through the connection's msghdr area, linked SEND chains,
 * SHUTDOWN, CLOSE of the slot, and FIXED_FD_INSTALL for the syscalls that have no opcode
 * (getsockname, getsockopt, setsockopt). Every CQE is checked here and reported to the channel.
 *
 * What outlives an op, and why:
 * - multishot recv: nothing of ours (the kernel picks buffers from the provided ring); each
 *   buffer goes back to the ring when the channel recycles it;
 * - send: its segments stay in `driver.holds[slot]` until the CQE; zero-copy segments until their
 *   notification CQE, which is not counted as an op (close does not wait for it: the segments
 *   stay pinned in the slot, which on loopback can be until the peer reads). A segment of the
 *   caller's memory is also pinned natively from its first send until it is sent whole and
 *   notified (`addressOf`): its ArrayBuffer may be transferred meanwhile.
 */
import type { Address } from "../../Address.js"
import * as Addr from "../../Address.js"
import { ConnectionClosed, socketError } from "../../RinglineError.js"
import { type Driver, MAX_IOV, type OpOwner } from "../driver.js"
import { Errno } from "../errno.js"
import { MultishotRecv } from "../multishot.js"
import { load } from "../native.js"
import { CqeFlag, MSG_NOSIGNAL, NOTIF_USAGE_ZC_COPIED, putU64, SEND_ZC_REPORT_USAGE, SqeFlag } from "../ring/abi.js"
import {
  prepFixedFdInstall,
  prepRecvMultishot,
  prepSend,
  prepSendmsg,
  prepSendmsgZc,
  prepSendZc,
  prepShutdown
} from "../ring/prep.js"
import { decode } from "../sockaddr.js"
import { Channel } from "./channel.js"
import type { Addresses, Callbacks, ChannelOptions, Segment, Wire, WireSink } from "./wire.js"

const TAG_RECV = 1
const TAG_SEND = 2
const TAG_SEND_ZC = 3
const TAG_CLOSE = 4
const TAG_SHUTDOWN = 5
const TAG_INSTALL = 6
const TAG_CHAIN = 7
const MSG_WAITALL = 0x100
const SHUT_WR = 1

export class RingWire implements Wire, OpOwner {
  private sink!: WireSink
  private readonly recv: MultishotRecv
  /** The send (or first link of the chain) in flight, or -1. */
  private sendSlot = -1
  /** Ops in flight whose terminal CQE close waits for (zero-copy notifications are not). */
  private ops = 0
  private closeDone = false
  private finished = false
  readonly addressable = true
  readonly maxGather = MAX_IOV
  readonly slotSize: number

  constructor(
    private readonly driver: Driver,
    readonly fixed: number,
    readonly kind: "tcp" | "unix",
    private readonly knownPeer: Address | undefined,
    private readonly knownLocal: Address | undefined
  ) {
    this.slotSize = driver.sendSlotSize
    this.recv = new MultishotRecv(driver, () => this.sink.wantsData, () => this.armRecv())
  }

  bind(sink: WireSink): void {
    this.sink = sink
  }

  onCqe(slot: number, tag: number, res: number, flags: number): void {
    if (tag === TAG_SEND_ZC ? (flags & CqeFlag.NOTIF) === 0 : (flags & CqeFlag.MORE) === 0) this.ops--
    switch (tag) {
      case TAG_RECV:
        this.onRecv(res, flags)
        break
      case TAG_SEND:
      case TAG_SEND_ZC:
        this.onSend(slot, tag, res, flags)
        this.unpinSettled()
        break
      case TAG_CHAIN:
        this.onChainLink(slot, res)
        this.unpinSettled()
        break
      case TAG_CLOSE:
        this.closeDone = true
        break
      case TAG_SHUTDOWN:
      case TAG_INSTALL: {
        const done = this.driver.holds[slot] as ((res: number) => void) | undefined
        done?.(res)
        break
      }
    }
    if (this.closeDone && this.ops === 0 && !this.finished) this.finish()
  }

  // ---- receive --------------------------------------------------------------------------------

  syncReceive(): void {
    this.recv.sync()
  }

  get receiving(): boolean {
    return this.recv.armed
  }

  /** Submits the multishot RECV (provided buffers, group 0); returns its slot. */
  private armRecv(): number {
    const d = this.driver
    const slot = d.alloc(this, TAG_RECV)
    this.ops++
    prepRecvMultishot(d, slot, this.fixed, 0, 0, 0, SqeFlag.FIXED_FILE | SqeFlag.BUFFER_SELECT)
    return slot
  }

  private onRecv(res: number, flags: number): void {
    const terminal = (flags & CqeFlag.MORE) === 0
    if (res > 0) {
      this.driver.counters.bytesIn += res
      this.sink.received(flags >>> 16, res)
    } else if (res === -Errno.ENOBUFS) {
      this.driver.counters.enobufs++
    } else if (res !== -Errno.ECANCELED) {
      this.sink.receiveEnded(res)
    }
    if (terminal) {
      this.recv.ended(res)
      this.sink.receiveStopped()
    }
  }

  view(buf: number, offset: number, len: number): Uint8Array {
    const d = this.driver
    return new Uint8Array(d.recvBuffers, buf * d.bufferSize + offset, len)
  }

  recycle(buf: number): void {
    this.driver.recycle(buf)
  }

  recycleLater(buf: number): void {
    this.driver.recycleLater(buf)
  }

  lend(view: Uint8Array): number {
    const d = this.driver
    if (view.buffer !== d.recvBuffers) return -1
    const bid = Math.floor(view.byteOffset / d.bufferSize)
    return d.lend(bid) ? bid : -1
  }

  giveBack(buf: number): void {
    this.driver.giveBack(buf)
  }

  owns(buffer: ArrayBufferLike): boolean {
    return buffer === this.driver.recvBuffers
  }

  // ---- send -----------------------------------------------------------------------------------

  takeSlot(): number {
    return this.driver.takeSendSlot()
  }

  fillSlot(slot: number, offset: number, bytes: Uint8Array): void {
    this.driver.sendPool.set(bytes, slot * this.slotSize + offset)
  }

  slotAddress(slot: number): number {
    return this.driver.sendPoolBase + slot * this.slotSize
  }

  giveSlot(slot: number): void {
    this.driver.giveSendSlot(slot)
  }

  /**
   * The native address of a segment's first byte, resolved once. Memory that is not the wire's
   * own (the caller's bytes, a handed-over reassembly buffer) is pinned then, until the segment is
   * sent and released (`unpinDone`): a transfer of its ArrayBuffer (postMessage, structuredClone
   * with a transfer list) moves the memory to a new ArrayBuffer, which the collector may free
   * while the kernel still reads it (the send then failed half-way with EFAULT, or sent what the
   * memory held next). Memory detached before its first send is gone: its bytes are "sent" from
   * address 0 (never mapped), and the send fails with EFAULT, typed.
   */
  private addressOf(seg: Segment): number {
    if (seg.addr !== 0) return seg.addr
    const data = seg.data!
    if (seg.bid >= 0) return seg.addr = this.driver.recvBuffersBase + data.byteOffset
    if (data.byteLength < seg.len) return -seg.sent
    const d = this.driver
    seg.addr = d.pinAddress(data)
    ;(this.pinned ??= []).push(seg)
    ;(this.pinIds ??= []).push(d.pinned)
    return seg.addr
  }

  /** Segments whose memory is pinned (see addressOf), and their pins; made on first use. */
  private pinned: Array<Segment> | undefined = undefined
  private pinIds: Array<number> | undefined = undefined

  /** After a send's or a chain link's completion: unpins what it settled, if anything is pinned. */
  private unpinSettled(): void {
    if (this.pinned !== undefined && this.pinned.length > 0) this.unpinDone(false)
  }

  /** Unpins the segments the kernel is done with (sent whole, notified), or all of them. */
  private unpinDone(all: boolean): void {
    const segs = this.pinned!
    const ids = this.pinIds!
    for (let i = segs.length - 1; i >= 0; i--) {
      const seg = segs[i]!
      if (!all && (seg.sent < seg.len || seg.notifs > 0)) continue
      this.driver.unpinLater(ids[i]!)
      const last = segs.length - 1
      segs[i] = segs[last]!
      ids[i] = ids[last]!
      segs.pop()
      ids.pop()
    }
  }

  send(segs: ReadonlyArray<Segment>, n: number, zc: boolean): void {
    const d = this.driver
    const slot = d.alloc(this, zc ? TAG_SEND_ZC : TAG_SEND)
    this.ops++
    d.holds[slot] = segs
    if (n === 1) {
      const head = segs[0]!
      const addr = this.addressOf(head) + head.sent
      const len = head.len - head.sent
      if (zc) prepSendZc(d, slot, this.fixed, addr, len, MSG_NOSIGNAL, SEND_ZC_REPORT_USAGE, SqeFlag.FIXED_FILE)
      else prepSend(d, slot, this.fixed, addr, len, MSG_NOSIGNAL, SqeFlag.FIXED_FILE)
    } else {
      d.counters.vectoredSends++
      // This connection's msghdr + iovecs (one send in flight per connection: never shared).
      const at = d.sendvOffset(this.fixed)
      const base = d.argsBase + at
      const words = d.argWords
      const m = at >> 2
      words.fill(0, m, m + 16)
      putU64(words, m + 4, base + 64) // msg_iov
      words[m + 6] = n // msg_iovlen
      for (let i = 0; i < n; i++) {
        const seg = segs[i]!
        const v = m + 16 + i * 4
        putU64(words, v, this.addressOf(seg) + seg.sent)
        putU64(words, v + 2, seg.len - seg.sent)
      }
      if (zc) prepSendmsgZc(d, slot, this.fixed, base, MSG_NOSIGNAL, SEND_ZC_REPORT_USAGE, SqeFlag.FIXED_FILE)
      else prepSendmsg(d, slot, this.fixed, base, MSG_NOSIGNAL, SqeFlag.FIXED_FILE)
    }
    this.sendSlot = slot
  }

  sendChain(segs: ReadonlyArray<Segment>, n: number): void {
    const d = this.driver
    for (let i = 0; i < n; i++) {
      const seg = segs[i]!
      const slot = d.alloc(this, TAG_CHAIN)
      this.ops++
      d.holds[slot] = seg
      // MSG_WAITALL: the kernel retries a short send itself instead of breaking the chain.
      prepSend(d, slot, this.fixed, this.addressOf(seg) + seg.sent, seg.len - seg.sent, MSG_NOSIGNAL | MSG_WAITALL,
        SqeFlag.FIXED_FILE | (i < n - 1 ? SqeFlag.IO_LINK : 0))
      if (i === 0) this.sendSlot = slot
    }
    d.counters.chains++
    this.chainLeft = n
  }

  private chainLeft = 0

  private onChainLink(slot: number, res: number): void {
    const seg = this.driver.holds[slot] as Segment
    if (res > 0) this.driver.counters.bytesOut += res
    if (--this.chainLeft === 0) this.sendSlot = -1
    this.sink.chainLink(seg, res)
  }

  private onSend(slot: number, tag: number, res: number, flags: number): void {
    const segs = this.driver.holds[slot] as Array<Segment>
    if (flags & CqeFlag.NOTIF) {
      // The kernel says whether it copied after all (REPORT_USAGE): then zero-copy only cost a
      // notification and page pinning on this route, and the channel stops using it.
      const copied = (res & NOTIF_USAGE_ZC_COPIED) !== 0
      if (copied) this.driver.counters.zeroCopyCopied++
      return this.sink.released(segs, copied)
    }
    this.sendSlot = -1
    const notifications = tag === TAG_SEND_ZC && (flags & CqeFlag.MORE) !== 0
    if (notifications) this.driver.counters.zeroCopySends++
    if (res > 0) this.driver.counters.bytesOut += res
    this.sink.sent(segs, res, notifications)
  }

  cancelSend(): void {
    if (this.sendSlot !== -1) this.driver.cancel(this.sendSlot)
  }

  hurry(): void {
    this.driver.earlyTurn()
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  shutdownWrite(done: (res: number) => void): void {
    const d = this.driver
    const slot = d.alloc(this, TAG_SHUTDOWN)
    this.ops++
    d.holds[slot] = done
    prepShutdown(d, slot, this.fixed, SHUT_WR, SqeFlag.FIXED_FILE)
  }

  close(): void {
    this.ops++
    this.driver.closeFixed(this.fixed, this, TAG_CLOSE)
  }

  private finish(): void {
    this.finished = true
    // Nothing of this connection is in flight any more: segments never sent whole (a failed
    // send, a close) are the kernel's no longer either.
    if (this.pinned !== undefined) this.unpinDone(true)
    const d = this.driver
    d.counters.closed++
    this.recv.unpark()
    this.sink.closed()
    d.socketSlotReleased()
  }

  /**
   * Local and peer addresses. A direct descriptor has no fd number that getsockname accepts, so it
   * is installed into the fd table for a moment (IORING_OP_FIXED_FD_INSTALL) and closed again.
   */
  addresses(cb: Callbacks<Addresses>): void {
    if (this.knownLocal !== undefined && this.knownPeer !== undefined) {
      return cb.ok({ local: this.knownLocal, peer: this.knownPeer })
    }
    this.withFd("getsockname", (fd) => {
      const native = load()
      const local = this.knownLocal ?? decode(native.sockName(fd, false))
      const peer = this.knownPeer ?? decode(native.sockName(fd, true))
      return { local: normaliseUnix(local, this.kind), peer: normaliseUnix(peer, this.kind) }
    }, cb)
  }

  intOption(level: number, name: number, cb: Callbacks<number>): void {
    this.withFd("getsockopt", (fd) => load().getIntOpt(fd, level, name), cb)
  }

  setIntOption(level: number, name: number, value: number, cb: Callbacks<void>): void {
    this.withFd("setsockopt", (fd) => load().setIntOpt(fd, level, name, value), cb)
  }

  /**
   * Runs `f` with an ordinary fd for this direct descriptor (IORING_OP_FIXED_FD_INSTALL), then
   * closes that fd: syscalls such as getsockname have no io_uring opcode on this kernel.
   */
  private withFd<A>(what: string, f: (fd: number) => A, cb: Callbacks<A>): void {
    if (this.finished) return cb.fail(new ConnectionClosed({ operation: what }))
    const d = this.driver
    const slot = d.alloc(this, TAG_INSTALL)
    this.ops++
    d.holds[slot] = (res: number) => {
      if (res < 0) return cb.fail(socketError("fixed_fd_install", res))
      try {
        cb.ok(f(res))
      } catch (e: any) {
        cb.fail(socketError(what, e?.errno ?? Errno.EINVAL))
      } finally {
        load().closeFd(res)
      }
    }
    prepFixedFdInstall(d, slot, this.fixed)
  }

  countError(code: string): void {
    this.driver.countError(code)
  }

  countPause(): void {
    this.driver.counters.backpressurePauses++
  }
}

const options = new WeakMap<Driver, ChannelOptions>()

/** The channel policy from the ring's configuration. */
const ringChannelOptions = (driver: Driver): ChannelOptions => {
  let o = options.get(driver)
  if (o === undefined) {
    const c = driver.config
    o = {
      highWater: c.sendQueueHighWater,
      lowWater: c.sendQueueLowWater,
      zeroCopyThreshold: c.sendZeroCopyThreshold,
      maxChainLength: c.maxChainLength
    }
    options.set(driver, o)
  }
  return o
}

/**
 * A connection on fixed-file slot `fixed` of `driver`'s ring (accepted, connected or handed
 * over); known addresses spare a FIXED_FD_INSTALL later.
 */
export const ringChannel = (
  driver: Driver,
  fixed: number,
  kind: "tcp" | "unix",
  knownPeer?: Address,
  knownLocal?: Address
): Channel => new Channel(new RingWire(driver, fixed, kind, knownPeer, knownLocal), ringChannelOptions(driver))

const normaliseUnix = (a: Address, kind: "tcp" | "unix"): Address =>
  kind === "unix" && a._tag !== "UnixAddress" ? Addr.unix("") : a

/**
 * One stream connection (TCP or Unix) on a fixed-file slot: multishot recv into provided buffers,
 * an ordered send queue with one SQE in flight, half-close and close. Callback-based; the
 * Effect-facing object is built in ../Connection.ts.
 *
 * What outlives an op, and why:
 * - multishot recv: nothing of ours (the kernel picks buffers from the provided ring); each
 *   buffer goes back to the ring right after its bytes were parsed or copied.
 * - send: the segment (pool slot or caller's bytes) stays in `driver.holds[slot]` until the CQE;
 *   zero-copy segments until their notification CQE.
 */
import type { Address } from "../Address.js"
import * as Addr from "../Address.js"
import { Exit } from "effect"
import { ConnectionClosed, EndOfStream, socketError, type SocketError, type TlsError } from "../RinglineError.js"
import { type Driver, MAX_IOV, type OpOwner } from "./driver.js"
import { Errno } from "./errno.js"
import { MultishotRecv } from "./multishot.js"
import { type Waiter as ReadWaiter, WaiterQueue } from "./waiters.js"
import { load } from "./native.js"
import { prepFixedFdInstall } from "./ring/prep.js"
import { decode } from "./sockaddr.js"
import { CqeFlag, IOPRIO_RECV_MULTISHOT, MSG_NOSIGNAL, Op, putU64, SqeFlag, W } from "./sqe.js"
import { lentBuffers, type Transport, type TransportSink } from "./transport.js"

const TAG_RECV = 1
const TAG_SEND = 2
const TAG_SEND_ZC = 3
const TAG_CLOSE = 4
const TAG_SHUTDOWN = 5
const TAG_INSTALL = 6
const TAG_CHAIN = 7
const MSG_WAITALL = 0x100

const SHUT_WR = 1
const EMPTY = new Uint8Array(0)

/** What a `read` parser answers. */
export type ReadResult<A> =
  | { readonly _tag: "Done"; readonly consumed: number; readonly value: A }
  | { readonly _tag: "NeedMore"; readonly atLeast: number }

export interface Callbacks<A> {
  ok(value: A): void
  fail(error: unknown, defect?: boolean): void
}

/** Errors of a read. */
export type ReadError = EndOfStream | SocketError | ConnectionClosed | TlsError

type Answer<A> =
  | { readonly _tag: "Done"; readonly consumed: number; readonly value: A }
  | { readonly _tag: "NeedMore"; readonly atLeast: number }
  | { readonly _tag: "Bad"; readonly defect: unknown }

/**
 * Calls a user parser and checks its answer. Nothing the parser does (throw, return garbage,
 * answer through throwing getters) escapes: it becomes a `Bad` answer carrying a defect that
 * names what was returned.
 */
const runParser = <A>(parse: (bytes: Uint8Array) => ReadResult<A>, bytes: Uint8Array): Answer<A> => {
  let result: unknown
  try {
    result = parse(bytes)
  } catch (defect) {
    return { _tag: "Bad", defect }
  }
  try {
    const r = result as Record<string, unknown>
    const tag = typeof r === "object" && r !== null ? r._tag : undefined
    if (tag === "Done") {
      const consumed = r.consumed
      const value = r.value as A
      if (typeof consumed === "number" && Number.isInteger(consumed) && consumed >= 0 && consumed <= bytes.length) {
        return { _tag: "Done", consumed, value }
      }
      return {
        _tag: "Bad",
        defect: new RangeError(`read parser consumed ${describe(consumed)} of ${bytes.length} bytes (must be an integer 0..${bytes.length})`)
      }
    }
    if (tag === "NeedMore") {
      const atLeast = r.atLeast === undefined ? 0 : r.atLeast
      if (typeof atLeast === "number" && atLeast >= 0 && !Number.isNaN(atLeast)) return { _tag: "NeedMore", atLeast }
      return { _tag: "Bad", defect: new RangeError(`read parser answered needMore(${describe(atLeast)}): atLeast must be a number >= 0`) }
    }
  } catch (defect) {
    return { _tag: "Bad", defect }
  }
  return {
    _tag: "Bad",
    defect: new TypeError(`read parser returned ${describe(result)}; expected done(consumed, value) or needMore(atLeast?)`)
  }
}

/** A short, never-throwing description of an arbitrary value for an error message. */
export const describe = (u: unknown): string => {
  try {
    if (typeof u === "string") return JSON.stringify(u.length > 40 ? u.slice(0, 40) + "…" : u)
    if (typeof u === "function") return "a function"
    if (typeof u === "symbol" || typeof u === "bigint") return String(u) + (typeof u === "bigint" ? "n" : "")
    if (typeof u !== "object" || u === null) return String(u)
    const tag = Object.prototype.hasOwnProperty.call(u, "_tag") ? (u as any)._tag : undefined
    return tag !== undefined ? `an object with _tag ${describe(tag)}` : `an object (${Object.prototype.toString.call(u)})`
  } catch {
    return "an unprintable value"
  }
}

interface Segment {
  /** Caller's (or a private copy's) bytes; null for a send-pool segment. */
  data: Uint8Array | null
  /** Send-pool slot, or -1. */
  pool: number
  /** Provided buffer lent to this send (echo of a parsed view), or -1. */
  bid: number
  addr: number
  len: number
  sent: number
  /** Cumulative stream offset of this segment's first byte. */
  start: number
  /** Zero-copy notifications still expected; the memory is the kernel's until they arrive. */
  notifs: number
  /** Id of the linked chain this segment belongs to, or 0. */
  chain: number
  /** Transport memory (ciphertext) to hand back once sent, or -1. */
  token: number
}

interface Waiter {
  readonly target: number
  readonly ok: () => void
  readonly fail: (e: unknown) => void
}

const enum Phase {
  Open,
  Draining,
  Cancelling,
  Closing,
  Closed
}

let nextId = 1

export class Conn implements OpOwner {
  readonly id = nextId++
  private readonly driver: Driver
  private readonly highWater: number
  private readonly lowWater: number
  private readonly zcThreshold: number

  // receive side
  private readonly recv: MultishotRecv
  private eof = false
  private recvError: SocketError | TlsError | undefined
  private readPaused = false
  private inbuf: Uint8Array = EMPTY
  private inStart = 0
  private inEnd = 0
  /** A provided buffer received while a reader waited with nothing buffered, or -1. */
  private held = -1
  private heldLen = 0
  /** Readers waiting for bytes, first come first served; a held buffer goes back when none is left. */
  readonly readers = new WaiterQueue(
    (w) => this.bufferedBytes >= w.need || this.ended,
    () => this.unhold()
  )

  // send side
  private queue: Array<Segment> = []
  private sendSlot = -1
  /** Segments (queue[0..inFlight)) covered by the send in flight. */
  private inFlight = 0
  private enqueued = 0
  private sent = 0
  private zcHeld: Array<Segment> = []
  private sendError: SocketError | ConnectionClosed | TlsError | undefined
  private sendPaused = false
  private writeShut = false
  private sendWaiters: Array<Waiter> = []
  private drainWaiters: Array<Waiter> = []

  // lifecycle
  private ops = 0
  private phase = Phase.Open
  private closeSubmitted = false
  private closeDone = false
  private closeWaiters: Array<() => void> = []
  private addresses: { local: Address; peer: Address } | undefined
  bytesIn = 0
  bytesOut = 0
  /** TLS (or another transform) between the socket and the byte stream; see transport.ts. */
  private transport: Transport | undefined

  constructor(
    driver: Driver,
    readonly fixed: number,
    readonly kind: "tcp" | "unix",
    private readonly knownPeer: Address | undefined,
    private readonly knownLocal: Address | undefined
  ) {
    this.driver = driver
    const c = driver.config
    this.highWater = c.sendQueueHighWater
    this.lowWater = c.sendQueueLowWater
    // AF_UNIX has no zero-copy send path: SEND_ZC/SENDMSG_ZC on a Unix socket complete with
    // -EOPNOTSUPP (found by the conformance suite's stream-into-sink echo over a Unix socket).
    this.zcThreshold = kind === "unix" ? 0 : c.sendZeroCopyThreshold
    this.recv = new MultishotRecv(driver, () => this.recvWanted, () => this.armRecv())
    this.recv.sync()
  }

  get isClosed(): boolean {
    return this.phase === Phase.Closed
  }

  /** Bytes received and not yet consumed by a reader. */
  get bufferedBytes(): number {
    return this.inEnd - this.inStart + this.heldLen
  }

  /**
   * A reader is waiting, nothing is buffered and nothing is queued to send: ending the reader's
   * fiber now loses no byte either way (a graceful shutdown interrupts such handlers at once).
   */
  get idle(): boolean {
    return this.phase === Phase.Open && this.readers.length > 0 && this.inEnd === this.inStart &&
      this.enqueued === this.completed
  }

  /** Bytes ever queued on this connection (a stream offset). */
  get queuedTotal(): number {
    return this.enqueued
  }

  /** Bytes queued and not yet taken by the kernel (or still pinned by a zero-copy send). */
  get queuedBytes(): number {
    return this.enqueued - this.completed
  }

  onCqe(slot: number, tag: number, res: number, flags: number): void {
    // A zero-copy send's notification is not waited for by close: the driver keeps its memory
    // pinned in the slot until it arrives, which (on loopback) can be when the peer reads.
    if (tag === TAG_SEND_ZC ? (flags & CqeFlag.NOTIF) === 0 : (flags & CqeFlag.MORE) === 0) this.ops--
    switch (tag) {
      case TAG_RECV:
        this.onRecv(res, flags)
        break
      case TAG_SEND:
      case TAG_SEND_ZC:
        this.onSend(slot, tag, res, flags)
        break
      case TAG_CHAIN:
        this.onChainLink(slot, res)
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
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  // ---- receive --------------------------------------------------------------------------------
  //
  // Bytes are consumed only by the fiber that returns them (see `tryRead`): a completion only
  // stores the bytes and wakes the first waiting reader, so a reader whose fiber was interrupted
  // (even in the same dispatch batch) has consumed nothing and the bytes stay for the next one.

  private get recvWanted(): boolean {
    return !this.eof && this.recvError === undefined && this.phase === Phase.Open && !this.sendPaused &&
      !this.readPaused
  }

  /** Submits the multishot RECV (provided buffers, group 0); returns its slot. */
  private armRecv(): number {
    const d = this.driver
    const slot = d.alloc(this, TAG_RECV)
    this.ops++
    const w = d.sqe(Op.RECV, SqeFlag.FIXED_FILE | SqeFlag.BUFFER_SELECT, this.fixed, slot)
    d.words[w] |= IOPRIO_RECV_MULTISHOT << 16
    return slot
  }

  private onRecv(res: number, flags: number): void {
    const terminal = (flags & CqeFlag.MORE) === 0
    if (res > 0) {
      const d = this.driver
      const bid = flags >>> 16
      this.bytesIn += res
      d.counters.bytesIn += res
      if (this.transport !== undefined) {
        // Transport hook: ciphertext goes through the transport, which hands plaintext to deliver().
        this.transportReceive(new Uint8Array(d.recvBuffers, bid * d.bufferSize, res))
        // The view must not be used past this point: the buffer is the kernel's again.
        d.recycle(bid)
        this.pauseIfFull()
      } else {
        this.received(bid, res)
      }
    } else if (res === 0) {
      if (this.transport === undefined) this.eof = true
      else this.transportEnd(undefined)
    } else if (res === -Errno.ENOBUFS) {
      this.driver.counters.enobufs++
    } else if (res !== -Errno.ECANCELED) {
      const error = socketError("recv", res)
      this.driver.countError(error.code)
      if (this.transport === undefined) this.recvError = error
      else this.transportEnd(error)
    }
    if (terminal) this.recv.ended(res)
    this.readers.notify()
  }

  /**
   * Bytes received from the kernel: `len` bytes in provided buffer `bid`. With a reader waiting
   * and nothing else buffered the buffer is held as is (the reader's parser runs over it without
   * a copy, in its own fiber); otherwise the bytes are copied into the reassembly buffer and the
   * provided buffer goes back to the kernel at once.
   */
  private received(bid: number, len: number): void {
    const d = this.driver
    if (this.held === -1 && this.inEnd === this.inStart && this.readers.length > 0) {
      this.held = bid
      this.heldLen = len
    } else {
      this.unhold()
      this.append(new Uint8Array(d.recvBuffers, bid * d.bufferSize, len))
      // The view must not be used past this point: the buffer is the kernel's again.
      d.recycle(bid)
    }
    this.pauseIfFull()
  }

  /** Above the high-water mark of unread bytes: stop receiving until reads bring it down. */
  private pauseIfFull(): void {
    if (this.bufferedBytes > this.highWater && !this.readPaused) {
      this.readPaused = true
      this.recv.sync()
    }
  }

  /** Copies a held provided buffer into the reassembly buffer and gives it back to the kernel. */
  private unhold(): void {
    if (this.held === -1) return
    const d = this.driver
    const bid = this.held
    this.held = -1
    this.append(new Uint8Array(d.recvBuffers, bid * d.bufferSize, this.heldLen))
    this.heldLen = 0
    d.recycleLater(bid)
  }

  /** A transport's plaintext for the readers (copied: the view is the transport's memory). */
  private deliver(view: Uint8Array): void {
    this.unhold()
    this.append(view)
    this.readers.notify()
  }

  private append(bytes: Uint8Array): void {
    const len = bytes.length
    if (this.inEnd + len > this.inbuf.length) {
      const live = this.inEnd - this.inStart
      if (this.inStart > 0 && live + len <= this.inbuf.length) {
        this.inbuf.copyWithin(0, this.inStart, this.inEnd)
      } else {
        const grown = new Uint8Array(Math.max(live + len, this.inbuf.length * 2, 4096))
        grown.set(this.inbuf.subarray(this.inStart, this.inEnd))
        this.inbuf = grown
      }
      this.inStart = 0
      this.inEnd = live
    }
    this.inbuf.set(bytes, this.inEnd)
    this.inEnd += len
  }

  private get ended(): boolean {
    return this.eof || this.recvError !== undefined || this.phase === Phase.Closed
  }

  /**
   * One attempt of a read, run synchronously by the fiber that will return its result: parses
   * what is buffered and consumes what the parser used. Returns undefined when it must wait (for
   * bytes, or behind an earlier reader: `w` is this read's waiter once it has one). Never throws:
   * a throwing parser, or one answering anything but `done`/`needMore`, fails this read with a
   * defect naming the answer, and the connection stays usable.
   */
  tryRead<A>(parse: (bytes: Uint8Array) => ReadResult<A>, w: ReadWaiter): Exit.Exit<A, ReadError> | undefined {
    if (!this.readers.mayTake(w)) return undefined
    const exit = this.parseBuffered(parse, w)
    if (exit !== undefined) this.readers.withdraw(w)
    return exit
  }

  private parseBuffered<A>(parse: (bytes: Uint8Array) => ReadResult<A>, w: ReadWaiter): Exit.Exit<A, ReadError> | undefined {
    if (this.phase === Phase.Closed) return Exit.fail(new ConnectionClosed({ operation: "read" }))
    if (this.held !== -1 && this.inEnd > this.inStart) this.unhold()
    const avail = this.bufferedBytes
    if (avail > 0 && avail >= w.need) {
      const d = this.driver
      // Zero-copy: the parser sees the held provided buffer itself.
      const bytes = this.held !== -1
        ? new Uint8Array(d.recvBuffers, this.held * d.bufferSize, this.heldLen)
        : this.inbuf.subarray(this.inStart, this.inEnd)
      const answer = runParser(parse, bytes)
      if (answer._tag === "Done") {
        this.consume(answer.consumed)
        return Exit.succeed(answer.value)
      }
      if (answer._tag === "Bad") {
        this.unhold()
        return Exit.die(answer.defect)
      }
      w.need = Math.max(avail + 1, answer.atLeast)
      // Not enough: the bytes must outlive this call, and a held buffer goes back to the kernel.
      this.unhold()
    }
    if (!this.ended) return undefined
    if (this.recvError !== undefined) return Exit.fail(this.recvError)
    if (avail > 0) {
      // The parser already said these bytes are not a whole message.
      return Exit.fail(new EndOfStream({ leftover: this.inbuf.slice(this.inStart, this.inEnd) }))
    }
    // A clean end: the parser gets one look at the empty stream to produce a final value.
    const answer = runParser(parse, EMPTY)
    if (answer._tag === "Done") return Exit.succeed(answer.value)
    if (answer._tag === "Bad") return Exit.die(answer.defect)
    return Exit.fail(new EndOfStream({ leftover: EMPTY }))
  }

  /** The parser used `n` bytes: drop them (a held buffer's rest moves to the reassembly buffer). */
  private consume(n: number): void {
    if (this.held !== -1) {
      const d = this.driver
      const bid = this.held
      this.held = -1
      if (n < this.heldLen) this.append(new Uint8Array(d.recvBuffers, bid * d.bufferSize + n, this.heldLen - n))
      this.heldLen = 0
      d.recycleLater(bid)
    } else {
      this.inStart += n
      if (this.inStart === this.inEnd) this.inStart = this.inEnd = 0
    }
    if (this.readPaused && this.bufferedBytes <= this.lowWater) {
      this.readPaused = false
      this.recv.sync()
    }
  }

  // ---- send -----------------------------------------------------------------------------------

  /**
   * Queues `bytes` behind everything queued before. Small writes are copied into the send pool
   * (and coalesced); large ones are sent from the caller's memory, zero-copy above the threshold.
   * Returns the stream offset at which these bytes are all sent, or an error.
   */
  enqueue(bytes: Uint8Array): number | SocketError | ConnectionClosed | TlsError {
    if (this.sendError !== undefined) return this.sendError
    if (this.writeShut || this.phase !== Phase.Open) {
      return new ConnectionClosed({ operation: this.writeShut ? "write after shutdownWrite" : "write" })
    }
    const len = bytes.length
    if (len === 0) return this.enqueued
    if (this.transport !== undefined) return this.transportSend(bytes)
    const d = this.driver
    const slotSize = d.sendSlotSize
    const small = len <= slotSize && (this.zcThreshold === 0 || len < this.zcThreshold)
    // A parser's view (a provided buffer, or this connection's reassembly buffer) is reused as
    // soon as the read callback returns, so it is always copied. Small writes are copied anyway;
    // only large ones need the check (and `.buffer` would materialise small on-heap arrays).
    const borrowed = !small &&
      (bytes.buffer === d.recvBuffers || bytes.buffer === this.inbuf.buffer || lentBuffers.has(bytes.buffer))
    if (len >= LEND_MIN && bytes.buffer === d.recvBuffers && d.lend(Math.floor(bytes.byteOffset / d.bufferSize))) {
      // Echoing a parsed view: send straight from the provided buffer, which goes back to the
      // kernel once this send completes (no copy at all).
      const bid = Math.floor(bytes.byteOffset / d.bufferSize)
      this.queue.push(segment(null, -1, bid, d.recvBuffersBase + bytes.byteOffset, len, this.enqueued))
    } else if (small || (borrowed && len <= slotSize)) {
      const tail = this.queue[this.queue.length - 1]
      const tailInFlight = this.sendSlot !== -1 && this.queue.length <= this.inFlight
      if (tail !== undefined && tail.pool >= 0 && tail.chain === 0 && !tailInFlight && tail.len + len <= slotSize) {
        d.sendPool.set(bytes, tail.pool * slotSize + tail.len)
        tail.len += len
      } else {
        const pool = d.takeSendSlot()
        if (pool >= 0) {
          d.sendPool.set(bytes, pool * slotSize)
          this.queue.push(segment(null, pool, -1, d.sendPoolBase + pool * slotSize, len, this.enqueued))
        } else {
          this.queue.push(segment(bytes.slice(), -1, -1, 0, len, this.enqueued))
        }
      }
    } else {
      this.queue.push(segment(borrowed ? bytes.slice() : bytes, -1, -1, 0, len, this.enqueued))
    }
    return this.queued(len)
  }

  private queued(len: number): number {
    this.enqueued += len
    if (!this.sendPaused && this.enqueued - this.completed > this.highWater) {
      this.sendPaused = true
      this.driver.counters.backpressurePauses++
      this.recv.sync()
    }
    this.pumpSend()
    return this.enqueued
  }

  /**
   * Queues `parts` as linked SENDs (IOSQE_IO_LINK, MSG_WAITALL): the kernel runs them back to
   * back, in order, from one submission. Longer lists are split into chains of `maxChainLength`
   * (0 disables linking: the parts go out as ordinary gathered sends). Each part is its own
   * segment, never coalesced. Returns the stream offset after the last part.
   */
  enqueueChain(parts: ReadonlyArray<Uint8Array>): number | SocketError | ConnectionClosed | TlsError {
    if (this.sendError !== undefined) return this.sendError
    if (this.writeShut || this.phase !== Phase.Open) return new ConnectionClosed({ operation: "chain" })
    if (this.transport !== undefined) {
      // Records cannot be linked SQEs: over a transport a chain is an ordinary ordered write.
      let r: number | SocketError | ConnectionClosed | TlsError = this.enqueued
      for (const part of parts) if (typeof (r = this.enqueue(part)) !== "number") return r
      return r
    }
    const d = this.driver
    const max = d.config.maxChainLength
    let total = 0
    let inChain = 0
    let id = 0
    for (const part of parts) {
      if (part.length === 0) continue
      if (max > 0 && (inChain === 0 || inChain === max)) {
        id = nextChain++
        inChain = 0
      }
      inChain++
      const pool = part.length <= d.sendSlotSize ? d.takeSendSlot() : -1
      let seg: Segment
      if (pool >= 0) {
        d.sendPool.set(part, pool * d.sendSlotSize)
        seg = segment(null, pool, -1, d.sendPoolBase + pool * d.sendSlotSize, part.length, this.enqueued + total)
      } else {
        const owned = part.buffer === d.recvBuffers || part.buffer === this.inbuf.buffer || lentBuffers.has(part.buffer)
          ? part.slice()
          : part
        seg = segment(owned, -1, -1, 0, part.length, this.enqueued + total)
      }
      seg.chain = max > 0 ? id : 0
      this.queue.push(seg)
      total += part.length
    }
    return this.queued(total)
  }

  private zeroCopy(seg: Segment): boolean {
    return seg.pool < 0 && seg.token < 0 && seg.chain === 0 && this.zcThreshold > 0 && seg.len >= this.zcThreshold
  }

  /**
   * Sends the head of the queue: one segment with SEND, or up to MAX_IOV consecutive segments of
   * the same kind (copied or zero-copy) gathered into one SENDMSG, so that a backlog of chunks
   * costs one SQE and one loop turn, not one per chunk.
   */
  private pumpSend(): void {
    if (this.sendSlot !== -1 || this.queue.length === 0 || this.sendError !== undefined) return
    if (this.phase >= Phase.Cancelling) return
    const d = this.driver
    const queue = this.queue
    if (queue[0]!.chain !== 0) return this.submitChain()
    const zc = this.zeroCopy(queue[0]!)
    let n = 1
    while (n < queue.length && n < MAX_IOV && queue[n]!.chain === 0 && this.zeroCopy(queue[n]!) === zc) n++
    const segs = queue.slice(0, n)
    for (const seg of segs) if (seg.addr === 0) seg.addr = load().addressOf(seg.data!)
    const slot = d.alloc(this, zc ? TAG_SEND_ZC : TAG_SEND)
    this.ops++
    d.holds[slot] = segs
    const head = segs[0]!
    if (n === 1) {
      const w = d.sqe(zc ? Op.SEND_ZC : Op.SEND, SqeFlag.FIXED_FILE, this.fixed, slot)
      d.setAddr(w, W.addr, head.addr + head.sent)
      d.words[w + W.len] = head.len - head.sent
      d.words[w + W.opFlags] = MSG_NOSIGNAL
    } else {
      d.counters.vectoredSends++
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
        putU64(words, v, seg.addr + seg.sent)
        putU64(words, v + 2, seg.len - seg.sent)
      }
      const w = d.sqe(zc ? Op.SENDMSG_ZC : Op.SENDMSG, SqeFlag.FIXED_FILE, this.fixed, slot)
      d.setAddr(w, W.addr, base)
      d.words[w + W.len] = 1
      d.words[w + W.opFlags] = MSG_NOSIGNAL
    }
    this.sendSlot = slot
    this.inFlight = n
  }

  private chainLeft = 0
  private chainError = 0
  private chainSegs: Array<Segment> = []

  private submitChain(): void {
    const d = this.driver
    const id = this.queue[0]!.chain
    let n = 0
    while (n < this.queue.length && this.queue[n]!.chain === id) n++
    this.chainSegs = this.queue.slice(0, n)
    for (let i = 0; i < n; i++) {
      const seg = this.chainSegs[i]!
      if (seg.addr === 0) seg.addr = load().addressOf(seg.data!)
      const slot = d.alloc(this, TAG_CHAIN)
      this.ops++
      d.holds[slot] = seg
      // MSG_WAITALL: the kernel retries a short send itself instead of breaking the chain.
      const w = d.sqe(Op.SEND, SqeFlag.FIXED_FILE | (i < n - 1 ? SqeFlag.IO_LINK : 0), this.fixed, slot)
      d.setAddr(w, W.addr, seg.addr + seg.sent)
      d.words[w + W.len] = seg.len - seg.sent
      d.words[w + W.opFlags] = MSG_NOSIGNAL | MSG_WAITALL
      if (i === 0) this.sendSlot = slot
    }
    d.counters.chains++
    this.inFlight = n
    this.chainLeft = n
    this.chainError = 0
  }

  private onChainLink(slot: number, res: number): void {
    const seg = this.driver.holds[slot] as Segment
    if (res >= 0) {
      seg.sent += res
      this.sent += res
      this.bytesOut += res
      this.driver.counters.bytesOut += res
    } else if (this.chainError === 0 && (res !== -Errno.ECANCELED || this.phase !== Phase.Open)) {
      // Links after a failed (or short) one end with -ECANCELED; the first real error is the one.
      this.chainError = res
    }
    if (--this.chainLeft > 0) return
    this.sendSlot = -1
    this.inFlight = 0
    const segs = this.chainSegs
    this.chainSegs = []
    if (this.sendError !== undefined) {
      for (const seg of segs) this.releaseSegment(seg)
      return
    }
    if (this.chainError !== 0) {
      this.failSends(this.chainError === -Errno.ECANCELED ? new ConnectionClosed({ operation: "send" }) : socketError("send", this.chainError))
      return
    }
    // Links cancelled after a short one keep their chain id and are re-submitted as a chain.
    while (this.queue.length > 0 && this.queue[0]!.sent === this.queue[0]!.len) this.releaseSegment(this.queue.shift()!)
    this.settleSends()
    this.pumpSend()
  }

  private onSend(slot: number, tag: number, res: number, flags: number): void {
    const segs = this.driver.holds[slot] as Array<Segment>
    if (flags & CqeFlag.NOTIF) {
      // The kernel no longer references the pages of this zero-copy send.
      for (const seg of segs) {
        if (--seg.notifs === 0) {
          remove(this.zcHeld, seg)
          if (seg.sent === seg.len || this.sendError !== undefined) this.releaseSegment(seg)
        }
      }
      this.settleSends()
      return
    }
    this.sendSlot = -1
    this.inFlight = 0
    if (tag === TAG_SEND_ZC && (flags & CqeFlag.MORE)) {
      for (const seg of segs) if (seg.notifs++ === 0) this.zcHeld.push(seg)
      this.driver.counters.zeroCopySends++
    }
    if (this.sendError !== undefined) {
      // The queue was already failed while this send was in flight: only its memory is left.
      for (const seg of segs) if (seg.notifs === 0) this.releaseSegment(seg)
      return
    }
    if (res < 0) {
      this.failSends(res === -Errno.ECANCELED && this.phase !== Phase.Open
        ? new ConnectionClosed({ operation: "send" })
        : socketError("send", res))
      return
    }
    // A short send is normal under pressure: continue from where the kernel stopped.
    this.sent += res
    this.bytesOut += res
    this.driver.counters.bytesOut += res
    let left = res
    for (const seg of segs) {
      const take = Math.min(left, seg.len - seg.sent)
      seg.sent += take
      left -= take
      if (seg.sent < seg.len) break
      this.queue.shift()
      if (seg.notifs === 0) this.releaseSegment(seg)
    }
    this.settleSends()
    this.pumpSend()
  }

  /** The kernel is done with this segment's memory: return its pool slot or lent buffer. */
  private releaseSegment(seg: Segment): void {
    if (seg.pool >= 0) this.driver.giveSendSlot(seg.pool)
    if (seg.bid >= 0) this.driver.giveBack(seg.bid)
    if (seg.token >= 0) this.transport!.release(seg.token)
    seg.pool = -1
    seg.bid = -1
    seg.token = -1
  }

  /** Stream offset up to which the kernel has taken the bytes and released their memory. */
  private get completed(): number {
    let c = this.sent
    for (const seg of this.zcHeld) if (seg.start < c) c = seg.start
    return c
  }

  private settleSends(): void {
    const completed = this.completed
    while (this.sendWaiters.length > 0 && this.sendWaiters[0]!.target <= completed) this.sendWaiters.shift()!.ok()
    const queued = this.enqueued - completed
    if (this.sendPaused && queued <= this.lowWater) {
      this.sendPaused = false
      this.recv.sync()
    }
    if (this.drainWaiters.length > 0) {
      const keep: Array<Waiter> = []
      for (const w of this.drainWaiters) {
        if (queued <= w.target) w.ok()
        else keep.push(w)
      }
      this.drainWaiters = keep
    }
  }

  private failSends(error: SocketError | ConnectionClosed | TlsError): void {
    if (this.sendError === undefined && error._tag === "SocketError") this.driver.countError(error.code)
    this.sendError ??= error
    if (error._tag === "SocketError" && this.recvError === undefined && !this.eof) {
      // A send failing with a socket error (ECONNRESET, EPIPE, ETIMEDOUT...) means the connection
      // is gone both ways. The kernel reports a reset once, to whichever op sees it first; when
      // that is the send, a multishot recv armed on the dead socket was seen to wait forever
      // (issue 9, item 8: parse-mode echo handlers never ended after client resets). So reads
      // fail with the same error once the bytes already received are consumed, and the recv is
      // cancelled.
      this.recvError = socketError("recv", -error.errno)
      this.recv.sync()
      this.readers.notify()
    }
    // The segments in flight (queue[0..inFlight)) keep their memory until their CQE, zero-copy ones until
    // their notifications.
    for (let i = this.sendSlot === -1 ? 0 : this.inFlight; i < this.queue.length; i++) {
      const seg = this.queue[i]!
      if (seg.notifs === 0) this.releaseSegment(seg)
    }
    this.queue = []
    this.sent = this.enqueued
    // Pinned zero-copy memory stays in the driver's slots; this connection has nothing to wait for.
    this.zcHeld = []
    const waiters = [...this.sendWaiters, ...this.drainWaiters]
    this.sendWaiters = []
    this.drainWaiters = []
    for (const w of waiters) w.fail(this.sendError)
    if (this.sendPaused) {
      this.sendPaused = false
      this.recv.sync()
    }
  }

  /** Calls back once the kernel has taken (and released) every byte up to `target`. */
  whenSent(target: number, ok: () => void, fail: (e: unknown) => void): () => void {
    if (this.completed >= target) {
      ok()
      return noop
    }
    if (this.sendError !== undefined) {
      fail(this.sendError)
      return noop
    }
    const w: Waiter = { target, ok, fail }
    this.sendWaiters.push(w)
    return () => remove(this.sendWaiters, w)
  }

  /** Calls back once at most `threshold` bytes remain queued (0: everything sent). */
  whenDrained(threshold: number, ok: () => void, fail: (e: unknown) => void): () => void {
    if (this.enqueued - this.completed <= threshold) {
      ok()
      return noop
    }
    if (this.sendError !== undefined) {
      fail(this.sendError)
      return noop
    }
    const w: Waiter = { target: threshold, ok, fail }
    this.drainWaiters.push(w)
    return () => remove(this.drainWaiters, w)
  }

  get overHighWater(): boolean {
    return this.sendPaused
  }

  get lowWaterMark(): number {
    return this.lowWater
  }

  /** Half-close once everything queued is sent; `cb` hears the SHUTDOWN result. */
  shutdownWrite(cb: Callbacks<void>): void {
    if (this.phase !== Phase.Open) return cb.fail(new ConnectionClosed({ operation: "shutdownWrite" }))
    this.writeShut = true
    if (this.transport !== undefined) this.transportClose()
    this.whenDrained(0, () => {
      if (this.phase !== Phase.Open) return cb.fail(new ConnectionClosed({ operation: "shutdownWrite" }))
      const d = this.driver
      const slot = d.alloc(this, TAG_SHUTDOWN)
      this.ops++
      d.holds[slot] = (res: number) => (res < 0 ? cb.fail(socketError("shutdown", res)) : cb.ok())
      const w = d.sqe(Op.SHUTDOWN, SqeFlag.FIXED_FILE, this.fixed, slot)
      d.words[w + W.len] = SHUT_WR
    }, (e) => cb.fail(e))
  }

  // ---- addresses ------------------------------------------------------------------------------

  /**
   * Local and peer addresses. A direct descriptor has no fd number that getsockname accepts, so it
   * is installed into the fd table for a moment (IORING_OP_FIXED_FD_INSTALL) and closed again.
   */
  addressesOf(cb: Callbacks<{ local: Address; peer: Address }>): void {
    if (this.addresses !== undefined) return cb.ok(this.addresses)
    if (this.knownLocal !== undefined && this.knownPeer !== undefined) {
      this.addresses = { local: this.knownLocal, peer: this.knownPeer }
      return cb.ok(this.addresses)
    }
    this.withFd("getsockname", (fd) => {
      const native = load()
      const local = this.knownLocal ?? decode(native.sockName(fd, false))
      const peer = this.knownPeer ?? decode(native.sockName(fd, true))
      this.addresses = { local: normaliseUnix(local, this.kind), peer: normaliseUnix(peer, this.kind) }
      return this.addresses
    }, cb)
  }

  /** An integer socket option (getsockopt), read through a momentarily installed fd. */
  intOption(level: number, name: number, cb: Callbacks<number>): void {
    this.withFd("getsockopt", (fd) => load().getIntOpt(fd, level, name), cb)
  }

  /**
   * Runs `f` with an ordinary fd for this direct descriptor (IORING_OP_FIXED_FD_INSTALL), then
   * closes that fd: syscalls such as getsockname have no io_uring opcode on this kernel.
   */
  private withFd<A>(what: string, f: (fd: number) => A, cb: Callbacks<A>): void {
    if (this.phase === Phase.Closed) return cb.fail(new ConnectionClosed({ operation: what }))
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

  // ---- close ----------------------------------------------------------------------------------

  /** Starts closing: queued sends drain first (until `force`), then recv is cancelled and the slot closed. */
  beginClose(): void {
    if (this.phase !== Phase.Open) return
    this.phase = Phase.Draining
    // close_notify goes out behind everything queued, then the socket closes (FIN).
    if (this.transport !== undefined && !this.writeShut) this.transportClose()
    this.recv.sync()
    this.advanceClose()
  }

  /** Stops waiting for queued sends (drain timeout): cancels the send in flight and drops the rest. */
  force(): void {
    if (this.phase === Phase.Open) this.beginClose()
    if (this.phase !== Phase.Draining) return
    this.phase = Phase.Cancelling
    if (this.sendSlot !== -1) this.driver.cancel(this.sendSlot)
    else this.failSends(new ConnectionClosed({ operation: "send" }))
    this.advanceClose()
  }

  onClosed(f: () => void): void {
    if (this.phase === Phase.Closed) f()
    else this.closeWaiters.push(f)
  }

  private advanceClose(): void {
    if (this.phase === Phase.Draining) {
      if (this.sendError === undefined && (this.queue.length > 0 || this.sendSlot !== -1)) return
      this.phase = Phase.Cancelling
    }
    if (this.phase === Phase.Cancelling) {
      if (this.recv.armed || this.sendSlot !== -1) return
      this.phase = Phase.Closing
    }
    if (this.phase === Phase.Closing) {
      if (!this.closeSubmitted) {
        this.closeSubmitted = true
        this.ops++
        this.driver.closeFixed(this.fixed, this, TAG_CLOSE)
        if (this.queue.length > 0 || this.sendWaiters.length > 0) this.failSends(new ConnectionClosed({ operation: "send" }))
      }
      if (!this.closeDone || this.ops > 0) return
      this.phase = Phase.Closed
      this.driver.counters.closed++
      this.inbuf = EMPTY
      this.inStart = this.inEnd = 0
      if (this.held !== -1) {
        this.driver.recycleLater(this.held)
        this.held = -1
        this.heldLen = 0
      }
      this.recv.unpark()
      // Waiting readers wake up to ConnectionClosed, one after the other.
      this.readers.notify()
      this.failSends(new ConnectionClosed({ operation: "send" }))
      // Every op has ended: no send references transport memory any more.
      this.transport?.dispose()
      this.driver.socketSlotReleased()
      const waiters = this.closeWaiters
      this.closeWaiters = []
      for (const f of waiters) f()
    }
  }

  // ---- transport hook (TLS) --------------------------------------------------------------------

  /**
   * Puts `make`'s transport between the socket and the byte stream. Bytes that arrived before
   * (a TLS ClientHello racing the accept, or what followed a STARTTLS command) go through it.
   */
  attachTransport<T extends Transport>(make: (sink: TransportSink) => T): T {
    const t = make({
      plaintext: (bytes) => this.deliver(bytes),
      ciphertext: (addr, len, token) => this.queueCiphertext(addr, len, token),
      ended: () => {
        this.eof = true
        this.recv.sync()
        this.readers.notify()
      },
      fail: (error) => {
        this.recvError ??= error
        this.recv.sync()
        this.readers.notify()
      }
    })
    this.transport = t
    // Bytes received before (held or buffered) are ciphertext: they go through the transport.
    this.unhold()
    const early = this.inbuf.slice(this.inStart, this.inEnd)
    this.inStart = this.inEnd = 0
    if (early.length > 0) this.transportReceive(early)
    return t
  }

  /** Sends what the transport queued outside the hooks (a client's first flight, a KeyUpdate). */
  flushTransport(): void {
    this.flushCiphertext()
  }

  private transportReceive(view: Uint8Array): void {
    this.transport!.receive(view)
    this.flushCiphertext()
  }

  private transportSend(bytes: Uint8Array): number | TlsError {
    const error = this.transport!.send(bytes)
    if (error !== undefined) return error
    this.flushCiphertext()
    return this.enqueued
  }

  private transportEnd(error: SocketError | undefined): void {
    const e = this.transport!.end(error) as SocketError | TlsError | undefined
    if (e === undefined) this.eof = true
    else this.recvError ??= e
    this.flushCiphertext()
  }

  private transportClose(): void {
    this.transport!.close()
    this.flushCiphertext()
  }

  /** Appends transport memory to the send queue; contiguous bytes of one token share a segment. */
  private queueCiphertext(addr: number, len: number, token: number): void {
    const tail = this.queue[this.queue.length - 1]
    const tailInFlight = this.sendSlot !== -1 && this.queue.length <= this.inFlight
    if (tail !== undefined && tail.token === token && !tailInFlight && tail.addr + tail.len === addr) {
      tail.len += len
      this.transport!.release(token) // one reference per segment
    } else {
      const seg = segment(null, -1, -1, addr, len, this.enqueued + this.pendingCipher)
      seg.token = token
      this.queue.push(seg)
    }
    this.pendingCipher += len
  }

  private pendingCipher = 0

  private flushCiphertext(): void {
    if (this.pendingCipher === 0) return
    const len = this.pendingCipher
    this.pendingCipher = 0
    if (this.sendError !== undefined || this.phase >= Phase.Closing) {
      // Nothing will send these bytes any more.
      for (let i = this.queue.length - 1; i >= 0 && this.queue[i]!.start >= this.enqueued; i--) this.releaseSegment(this.queue[i]!)
      this.queue = this.queue.filter((seg) => seg.start < this.enqueued)
      return
    }
    this.queued(len)
  }
}

const noop = () => {}
let nextChain = 1

/** Below this size a parsed view is copied into the send pool (and coalesced) rather than lent. */
const LEND_MIN = 4096

const segment = (data: Uint8Array | null, pool: number, bid: number, addr: number, len: number, start: number): Segment => ({
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

const remove = <A>(list: Array<A>, item: A): void => {
  const i = list.indexOf(item)
  if (i >= 0) list.splice(i, 1)
}

const normaliseUnix = (a: Address, kind: "tcp" | "unix"): Address =>
  kind === "unix" && a._tag !== "UnixAddress" ? Addr.unix("") : a

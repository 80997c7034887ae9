/**
 * The generic stream connection over any {@link Wire}: the byte-stream semantics written once.
 * Owns the readers (served in order, parsed in their own fiber), receive pause/resume at the
 * high-water mark, the ordered send queue (memory choice per write, gathering, chains,
 * short-send continuation, zero-copy pinning, backpressure and waiters), the close state machine
 * (drain, cancel, close, confirm) and the transport hooks (TLS) between the wire and the stream.
 * Callback-based; the Effect-facing object is built by ../../Connection.ts (see `makeConnection`
 * below, the entry point for any wire other than the ring's).
 */
import { Exit } from "effect"
import { type Connection, make as connectionOf } from "../../Connection.js"
import { ConnectionClosed, EndOfStream, socketError, type SocketError, type TlsError } from "../../RinglineError.js"
import { Errno } from "../errno.js"
import { lentBuffers, type Transport, type TransportSink } from "../transport.js"
import { type Waiter as ReadWaiter, WaiterQueue } from "../waiters.js"
import { copyOf, EMPTY, type ReadError, type ReadResult, Reassembly, runParser } from "./readers.js"
import { LEND_MAX_PER_CONNECTION, LEND_MIN, remove, segment, SendWaiters } from "./sendQueue.js"
import type { Addresses, Callbacks, ChannelOptions, Segment, Wire, WireSink } from "./wire.js"

const enum Phase {
  Open,
  Draining,
  Cancelling,
  Closing,
  Closed
}

/**
 * Unread plaintext from which a transport's receive hurries the readers' answer (`Wire.hurry`):
 * a bulk stream's run, never one small request (whose early submit would cost a syscall each).
 */
const HURRY_MIN = 65536

/** Largest write copied (not sent from the caller's memory) on a wire without a send pool. */
const COPY_MAX = 16384

// Shared empty lists for what most connections never hold (zero-copy sends waiting for their
// notification, a vectored chain in flight, close watchers): an idle connection keeps no empty
// array of its own, and a chain's completion allocates none. Frozen: a push meant for a fresh
// list throws instead of reaching every connection.
const NO_SEGMENTS: Array<Segment> = Object.freeze([]) as unknown as Array<Segment>
const NO_CLOSE_WAITERS: Array<() => void> = Object.freeze([]) as unknown as Array<() => void>

let nextId = 1
let nextChain = 1

export class Channel implements WireSink {
  readonly id = nextId++
  private readonly highWater: number
  private readonly lowWater: number
  /** Writes at least this large are sent from the caller's memory (zero-copy while `zcUseful`). */
  private readonly zcThreshold: number
  /**
   * False once a notification said the kernel copied a zero-copy send after all (loopback, a
   * device without scatter-gather): large writes then go as plain sends, still from the
   * caller's memory, as `write` documents. (The first version of this switch, 977fad1, copied
   * them into the send pool instead; a quiet A/B measured 16 KiB stream echo 3× slower with it,
   * be3e204.) A plain send from the same memory is the zero-copy path minus the page pinning
   * and the notification CQE.
   */
  private zcUseful = true
  private readonly maxChain: number
  private readonly copyMax: number

  // receive side
  private eof = false
  private recvError: SocketError | TlsError | undefined
  private readPaused = false
  private readonly inbound: Reassembly
  /** Readers waiting for bytes, first come first served; a held buffer goes back when none is left. */
  readonly readers = new WaiterQueue(
    (w) => this.bufferedBytes >= w.need || this.ended,
    () => this.idleReaders()
  )
  private unholdQueued = false

  // send side
  private queue: Array<Segment> = []
  /** A send (or chain) is in flight: queue[0..inFlight) are its segments. */
  private sending = false
  private inFlight = 0
  private enqueued = 0
  /** Bytes the wire has taken (a stream offset). */
  private sentTotal = 0
  private zcHeld: Array<Segment> = NO_SEGMENTS
  private sendError: SocketError | ConnectionClosed | TlsError | undefined
  private sendPaused = false
  private writeShut = false
  private readonly waiters = new SendWaiters()
  /** Receive buffers lent to this connection's queued sends (see LEND_MAX_PER_CONNECTION). */
  private lent = 0

  // lifecycle
  private phase = Phase.Open
  private closeSubmitted = false
  private closeWaiters: Array<() => void> = NO_CLOSE_WAITERS
  /** Called once when the receive side ends, whether or not a reader waits (see `onReceiveEnd`). */
  private endWatchers: Array<() => void> | undefined = undefined
  private addresses: Addresses | undefined
  bytesIn = 0
  bytesOut = 0
  /** TLS (or another transform) between the wire and the byte stream; see transport.ts. */
  private transport: Transport | undefined

  constructor(readonly wire: Wire, options: ChannelOptions) {
    this.highWater = options.highWater
    this.lowWater = options.lowWater
    // AF_UNIX has no zero-copy send path: SEND_ZC/SENDMSG_ZC on a Unix socket complete with
    // -EOPNOTSUPP (found by the conformance suite's stream-into-sink echo over a Unix socket).
    this.zcThreshold = wire.kind === "unix" ? 0 : options.zeroCopyThreshold
    this.maxChain = wire.sendChain === undefined ? 0 : options.maxChainLength
    this.copyMax = wire.slotSize > 0 ? wire.slotSize : COPY_MAX
    this.inbound = new Reassembly(wire)
    wire.bind(this)
    wire.syncReceive()
  }

  get kind(): "tcp" | "unix" {
    return this.wire.kind
  }

  get isClosed(): boolean {
    return this.phase === Phase.Closed
  }

  /** Closing, and still waiting for queued sends to go out (the only wait a timeout must bound). */
  get isDraining(): boolean {
    return this.phase === Phase.Draining
  }

  /** Bytes received and not yet consumed by a reader. */
  get bufferedBytes(): number {
    return this.inbound.size
  }

  /**
   * A reader is waiting, nothing is buffered and nothing is queued to send: ending the reader's
   * fiber now loses no byte either way (a graceful shutdown interrupts such handlers at once).
   */
  get idle(): boolean {
    return this.phase === Phase.Open && this.readers.length > 0 && this.inbound.copied === 0 &&
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

  // ---- receive --------------------------------------------------------------------------------
  //
  // Bytes are consumed only by the fiber that returns them (see `tryRead`): a completion only
  // stores the bytes and wakes the first waiting reader, so a reader whose fiber was interrupted
  // (even in the same dispatch batch) has consumed nothing and the bytes stay for the next one.

  get wantsData(): boolean {
    return !this.eof && this.recvError === undefined && this.phase === Phase.Open && !this.sendPaused &&
      !this.readPaused
  }

  received(buf: number, len: number): void {
    this.bytesIn += len
    if (this.transport !== undefined) {
      const before = this.inbound.size
      // Transport hook: ciphertext goes through the transport, which hands plaintext to deliver().
      this.transportReceive(this.wire.view(buf, 0, len))
      // The view must not be used past this point: the buffer is the wire's again.
      this.wire.recycle(buf)
      // A large run decrypted for a waiting reader while nothing is queued to send: its answer
      // leaves now rather than after the rest of the completion batch (often the peer's whole
      // window, every record of it to decrypt first: stop-and-wait, bench/TLS.md).
      const size = this.inbound.size
      if (size >= HURRY_MIN && size > before && this.queue.length === 0 && this.readers.length > 0) {
        this.wire.hurry?.()
      }
    } else {
      // Held for a waiting reader's zero-copy parse, or copied and given back at once.
      this.inbound.receive(buf, len, this.readers.firstNeed)
    }
    this.pauseIfFull()
    this.readers.notify()
  }

  receiveEnded(res: number): void {
    if (res === 0) {
      if (this.transport === undefined) this.eof = true
      else this.transportEnd(undefined)
    } else if (res !== -Errno.ECANCELED) {
      const error = socketError("recv", res)
      this.wire.countError(error.code)
      if (this.transport === undefined) this.recvError = error
      else this.transportEnd(error)
    }
    this.readers.notify()
    this.notifyEnd()
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  receiveStopped(): void {
    this.readers.notify()
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  /**
   * The last reader left the line with receive buffers still held (a piecewise read took the
   * first of several, see readers.ts "Pieces"). They are not copied at once: a reader that reads
   * again in the same run (an echo loop) takes the next one uncopied. Whatever is still held
   * when no reader is back by the next microtask is copied and given back, so a connection
   * whose reader went away pins no receive buffer.
   */
  private idleReaders(): void {
    if (this.inbound.heldCount === 0 || this.unholdQueued) return
    this.unholdQueued = true
    queueMicrotask(() => {
      this.unholdQueued = false
      if (this.readers.length === 0) this.inbound.unhold()
    })
  }

  /** Above the high-water mark of unread bytes: stop receiving until reads bring it down. */
  private pauseIfFull(): void {
    if (this.inbound.size > this.highWater && !this.readPaused) {
      this.readPaused = true
      this.wire.syncReceive()
    }
  }

  /** A transport's plaintext for the readers (copied: the view is the transport's memory). */
  private deliver(view: Uint8Array): void {
    this.inbound.unhold()
    this.inbound.append(view)
    this.readers.notify()
  }

  private get ended(): boolean {
    return this.eof || this.recvError !== undefined || this.phase === Phase.Closed
  }

  /**
   * Calls `f` (once) when the receive side has ended: end of stream, a receive error, or the
   * connection closed; at once if it already has. Unlike a read, it waits for nothing and
   * consumes nothing, so an owner that is busy elsewhere (an HTTP server running a handler, not
   * reading) still learns that its peer went away.
   */
  onReceiveEnd(f: () => void): void {
    if (this.ended) return f()
    ;(this.endWatchers ??= []).push(f)
  }

  private notifyEnd(): void {
    const watchers = this.endWatchers
    if (watchers === undefined || !this.ended) return
    this.endWatchers = undefined
    for (const f of watchers) f()
  }

  /**
   * One attempt of a read, run synchronously by the fiber that will return its result: parses
   * what is buffered and consumes what the parser used. Returns undefined when it must wait (for
   * bytes, or behind an earlier reader: `w` is this read's waiter once it has one). Never throws:
   * a throwing parser, or one answering anything but `done`/`needMore`, fails this read with a
   * defect naming the answer, and the connection stays usable.
   */
  tryRead<A>(
    parse: (bytes: Uint8Array) => ReadResult<A>,
    w: ReadWaiter,
    piecewise = false
  ): Exit.Exit<A, ReadError> | undefined {
    if (!this.readers.mayTake(w)) return undefined
    const exit = this.parseBuffered(parse, w, piecewise)
    if (exit !== undefined) this.readers.withdraw(w)
    return exit
  }

  private parseBuffered<A>(
    parse: (bytes: Uint8Array) => ReadResult<A>,
    w: ReadWaiter,
    piecewise: boolean
  ): Exit.Exit<A, ReadError> | undefined {
    if (this.phase === Phase.Closed) return Exit.fail(new ConnectionClosed({ operation: "read" }))
    const inbound = this.inbound
    const avail = inbound.size
    if (avail > 0 && avail >= w.need) {
      // The first of several held receive buffers alone, uncopied (readers.ts "Pieces"); a parser
      // that needs more than it sees them all, copied together.
      const piece = piecewise ? inbound.piece() : undefined
      if (piece !== undefined) {
        const first = runParser(parse, piece)
        if (first._tag === "Done" && first.consumed > 0) {
          inbound.consumePiece(first.consumed)
          // A take without waiting never leaves the line: the rest must not stay held for good.
          this.idleReaders()
          return this.parsed(first.value)
        }
        if (first._tag === "Bad") {
          inbound.unhold()
          return Exit.die(first.defect)
        }
      }
      // Zero-copy: the parser sees a held receive buffer itself.
      const answer = runParser(parse, inbound.view())
      if (answer._tag === "Done") {
        inbound.consume(answer.consumed)
        return this.parsed(answer.value)
      }
      if (answer._tag === "Bad") {
        inbound.unhold()
        return Exit.die(answer.defect)
      }
      w.need = Math.max(avail + 1, answer.atLeast)
      // Not enough: the bytes must outlive this call, and a held buffer goes back to the wire.
      inbound.unhold()
    }
    if (!this.ended) return undefined
    if (this.recvError !== undefined) return Exit.fail(this.recvError)
    if (avail > 0) {
      // The parser already said these bytes are not a whole message.
      return Exit.fail(new EndOfStream({ leftover: inbound.leftover() }))
    }
    // A clean end: the parser gets one look at the empty stream to produce a final value.
    const answer = runParser(parse, EMPTY)
    if (answer._tag === "Done") return Exit.succeed(answer.value)
    if (answer._tag === "Bad") return Exit.die(answer.defect)
    return Exit.fail(new EndOfStream({ leftover: EMPTY }))
  }

  /** A read's value, its bytes consumed: receiving resumes once below the low-water mark. */
  private parsed<A>(value: A): Exit.Exit<A, ReadError> {
    if (this.readPaused && this.inbound.size <= this.lowWater) {
      this.readPaused = false
      this.wire.syncReceive()
    }
    return Exit.succeed(value)
  }

  // ---- send -----------------------------------------------------------------------------------

  /**
   * A parser's view of the buffered bytes as memory its reader may keep (a `recv` chunk): the
   * reassembly buffer itself when the view is most of it, else a copy (readers.ts, "Handing over").
   */
  keep(bytes: Uint8Array): Uint8Array {
    return this.inbound.keep(bytes)
  }

  /**
   * Whether `bytes` is memory that is reused once a parser returns (so a send must copy it). A
   * large view of the reassembly buffer is not: that buffer is handed over to the send instead.
   */
  private borrowed(bytes: Uint8Array): boolean {
    const b = bytes.buffer
    if (this.inbound.isMine(b)) return !this.inbound.handOver(bytes)
    return this.wire.owns(b) || lentBuffers.has(b)
  }

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
    const wire = this.wire
    const slotSize = wire.slotSize
    const small = len <= this.copyMax && (this.zcThreshold === 0 || len < this.zcThreshold)
    // A parser's view (a receive buffer, or this connection's reassembly buffer) is reused as
    // soon as the read callback returns, so it is always copied. Small writes are copied anyway;
    // only large ones need the check (and `.buffer` would materialise small on-heap arrays).
    const borrowed = !small && this.borrowed(bytes)
    let bid: number
    if (len >= LEND_MIN && this.lent < LEND_MAX_PER_CONNECTION && (bid = wire.lend(bytes)) >= 0) {
      this.lent++
      // Echoing a parsed view: send straight from the receive buffer, which goes back to the
      // wire once this send completes (no copy at all).
      this.queue.push(segment(bytes, -1, bid, 0, len, this.enqueued))
    } else if (small || (borrowed && len <= slotSize)) {
      const tail = this.queue[this.queue.length - 1]
      const tailInFlight = this.sending && this.queue.length <= this.inFlight
      if (tail !== undefined && tail.pool >= 0 && tail.chain === 0 && !tailInFlight && tail.len + len <= slotSize) {
        wire.fillSlot(tail.pool, tail.len, bytes)
        tail.len += len
      } else {
        const pool = slotSize > 0 && len <= slotSize ? wire.takeSlot() : -1
        if (pool >= 0) {
          wire.fillSlot(pool, 0, bytes)
          this.queue.push(segment(null, pool, -1, wire.slotAddress(pool), len, this.enqueued))
        } else {
          this.queue.push(segment(copyOf(bytes), -1, -1, 0, len, this.enqueued))
        }
      }
    } else {
      this.queue.push(segment(borrowed ? copyOf(bytes) : bytes, -1, -1, 0, len, this.enqueued))
    }
    return this.queued(len)
  }

  private queued(len: number): number {
    this.enqueued += len
    if (!this.sendPaused && this.enqueued - this.completed > this.highWater) {
      this.sendPaused = true
      this.wire.countPause()
      this.wire.syncReceive()
    }
    this.pumpSend()
    return this.enqueued
  }

  /**
   * Queues `parts` as one linked chain per `maxChainLength` parts (a wire without linked sends, or
   * `maxChainLength` 0: ordinary gathered sends). Each part is its own segment, never coalesced.
   * Returns the stream offset after the last part.
   */
  enqueueChain(parts: ReadonlyArray<Uint8Array>): number | SocketError | ConnectionClosed | TlsError {
    if (this.sendError !== undefined) return this.sendError
    if (this.writeShut || this.phase !== Phase.Open) return new ConnectionClosed({ operation: "chain" })
    if (this.transport !== undefined) {
      // Records cannot be linked sends: over a transport a chain is an ordinary ordered write.
      let r: number | SocketError | ConnectionClosed | TlsError = this.enqueued
      for (const part of parts) if (typeof (r = this.enqueue(part)) !== "number") return r
      return r
    }
    const wire = this.wire
    const max = this.maxChain
    const slotSize = wire.slotSize
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
      const pool = part.length <= slotSize ? wire.takeSlot() : -1
      let seg: Segment
      if (pool >= 0) {
        wire.fillSlot(pool, 0, part)
        seg = segment(null, pool, -1, wire.slotAddress(pool), part.length, this.enqueued + total)
      } else {
        seg = segment(this.borrowed(part) || slotSize === 0 ? copyOf(part) : part, -1, -1, 0, part.length, this.enqueued + total)
      }
      seg.chain = max > 0 ? id : 0
      this.queue.push(seg)
      total += part.length
    }
    return this.queued(total)
  }

  private zeroCopy(seg: Segment): boolean {
    return this.zcUseful && seg.pool < 0 && seg.token < 0 && seg.chain === 0 && this.zcThreshold > 0 &&
      seg.len >= this.zcThreshold
  }

  /**
   * Sends the head of the queue: one segment, or up to `maxGather` consecutive segments of the
   * same kind (copied or zero-copy) gathered into one send, so that a backlog of chunks costs
   * one op and one loop turn, not one per chunk.
   */
  private pumpSend(): void {
    if (this.sending || this.queue.length === 0 || this.sendError !== undefined) return
    if (this.phase >= Phase.Cancelling) return
    const queue = this.queue
    if (queue[0]!.chain !== 0) return this.submitChain()
    const zc = this.zeroCopy(queue[0]!)
    const max = this.wire.maxGather
    let n = 1
    while (n < queue.length && n < max && queue[n]!.chain === 0 && this.zeroCopy(queue[n]!) === zc) n++
    this.sending = true
    this.inFlight = n
    this.wire.send(queue.slice(0, n), n, zc)
  }

  private chainLeft = 0
  private chainError = 0
  private chainSegs: Array<Segment> = NO_SEGMENTS

  private submitChain(): void {
    const id = this.queue[0]!.chain
    let n = 0
    while (n < this.queue.length && this.queue[n]!.chain === id) n++
    this.chainSegs = this.queue.slice(0, n)
    this.sending = true
    this.inFlight = n
    this.chainLeft = n
    this.chainError = 0
    this.wire.sendChain!(this.chainSegs, n)
  }

  chainLink(seg: Segment, res: number): void {
    if (res >= 0) {
      seg.sent += res
      this.sentTotal += res
      this.bytesOut += res
    } else if (this.chainError === 0 && (res !== -Errno.ECANCELED || this.phase !== Phase.Open)) {
      // Links after a failed (or short) one end with -ECANCELED; the first real error is the one.
      this.chainError = res
    }
    if (--this.chainLeft > 0) return
    this.sending = false
    this.inFlight = 0
    const segs = this.chainSegs
    this.chainSegs = NO_SEGMENTS
    if (this.sendError !== undefined) {
      for (const seg of segs) this.releaseSegment(seg)
    } else if (this.chainError !== 0) {
      this.failSends(this.chainError === -Errno.ECANCELED ? new ConnectionClosed({ operation: "send" }) : socketError("send", this.chainError))
    } else {
      // Links cancelled after a short one keep their chain id and are re-submitted as a chain.
      while (this.queue.length > 0 && this.queue[0]!.sent === this.queue[0]!.len) this.releaseSegment(this.queue.shift()!)
      this.settleSends()
      this.pumpSend()
    }
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  released(segs: ReadonlyArray<Segment>, copied: boolean): void {
    // On this route the kernel copies zero-copy sends (loopback, no scatter-gather): each one
    // cost page pinning and a notification for nothing. Plain sends from now on.
    if (copied) this.zcUseful = false
    // The kernel no longer references the pages of this zero-copy send.
    for (const seg of segs) {
      if (--seg.notifs === 0) {
        remove(this.zcHeld, seg)
        if (seg.sent === seg.len || this.sendError !== undefined) this.releaseSegment(seg)
      }
    }
    this.settleSends()
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  sent(segs: ReadonlyArray<Segment>, res: number, notifications: boolean): void {
    this.sending = false
    this.inFlight = 0
    if (notifications) {
      for (const seg of segs) if (seg.notifs++ === 0) (this.zcHeld === NO_SEGMENTS ? (this.zcHeld = []) : this.zcHeld).push(seg)
    }
    if (this.sendError !== undefined) {
      // The queue was already failed while this send was in flight: only its memory is left.
      for (const seg of segs) if (seg.notifs === 0) this.releaseSegment(seg)
    } else if (res < 0) {
      this.failSends(res === -Errno.ECANCELED && this.phase !== Phase.Open
        ? new ConnectionClosed({ operation: "send" })
        : socketError("send", res))
    } else {
      // A short send is normal under pressure: continue from where the kernel stopped.
      this.sentTotal += res
      this.bytesOut += res
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
    if (this.phase !== Phase.Open) this.advanceClose()
  }

  /** The wire is done with this segment's memory: return its pool slot, lent buffer or transport memory. */
  private releaseSegment(seg: Segment): void {
    if (seg.pool >= 0) this.wire.giveSlot(seg.pool)
    if (seg.bid >= 0) {
      this.wire.giveBack(seg.bid)
      this.lent--
    }
    if (seg.token >= 0) this.transport!.release(seg.token)
    seg.pool = -1
    seg.bid = -1
    seg.token = -1
  }

  /** Stream offset up to which the wire has taken the bytes and released their memory. */
  private get completed(): number {
    let c = this.sentTotal
    for (const seg of this.zcHeld) if (seg.start < c) c = seg.start
    return c
  }

  private settleSends(): void {
    const completed = this.completed
    const queued = this.enqueued - completed
    this.waiters.settle(completed, queued)
    if (this.sendPaused && queued <= this.lowWater) {
      this.sendPaused = false
      this.wire.syncReceive()
    }
  }

  private failSends(error: SocketError | ConnectionClosed | TlsError): void {
    if (this.sendError === undefined && error._tag === "SocketError") this.wire.countError(error.code)
    this.sendError ??= error
    if (error._tag === "SocketError" && this.recvError === undefined && !this.eof) {
      // A send failing with a socket error (ECONNRESET, EPIPE, ETIMEDOUT...) means the connection
      // is gone both ways. The kernel reports a reset once, to whichever op sees it first; when
      // that is the send, a multishot recv armed on the dead socket was seen to wait forever
      // (issue 9, item 8: parse-mode echo handlers never ended after client resets). So reads
      // fail with the same error once the bytes already received are consumed, and the recv is
      // cancelled.
      this.recvError = socketError("recv", -error.errno)
      this.wire.syncReceive()
      this.readers.notify()
    }
    // The segments in flight (queue[0..inFlight)) keep their memory until their completion,
    // zero-copy ones until their notifications.
    for (let i = this.sending ? this.inFlight : 0; i < this.queue.length; i++) {
      const seg = this.queue[i]!
      if (seg.notifs === 0) this.releaseSegment(seg)
    }
    this.queue = []
    this.sentTotal = this.enqueued
    // Pinned zero-copy memory stays with the wire; this connection has nothing to wait for.
    this.zcHeld = NO_SEGMENTS
    this.waiters.fail(this.sendError)
    if (this.sendPaused) {
      this.sendPaused = false
      this.wire.syncReceive()
    }
  }

  /** Calls back once the wire has taken (and released) every byte up to `target`. */
  whenSent(target: number, ok: () => void, fail: (e: unknown) => void): () => void {
    if (this.completed >= target) {
      ok()
      return noop
    }
    if (this.sendError !== undefined) {
      fail(this.sendError)
      return noop
    }
    return this.waiters.whenSent(target, ok, fail)
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
    return this.waiters.whenDrained(threshold, ok, fail)
  }

  get overHighWater(): boolean {
    return this.sendPaused
  }

  get lowWaterMark(): number {
    return this.lowWater
  }

  /** Half-close once everything queued is sent; `cb` hears the result. */
  shutdownWrite(cb: Callbacks<void>): void {
    if (this.phase !== Phase.Open) return cb.fail(new ConnectionClosed({ operation: "shutdownWrite" }))
    this.writeShut = true
    if (this.transport !== undefined) this.transportClose()
    this.whenDrained(0, () => {
      if (this.phase !== Phase.Open) return cb.fail(new ConnectionClosed({ operation: "shutdownWrite" }))
      this.wire.shutdownWrite((res) => (res < 0 ? cb.fail(socketError("shutdown", res)) : cb.ok()))
    }, (e) => cb.fail(e))
  }

  // ---- addresses and options --------------------------------------------------------------------

  /** Local and peer addresses (asked of the wire once, then remembered). */
  addressesOf(cb: Callbacks<Addresses>): void {
    if (this.addresses !== undefined) return cb.ok(this.addresses)
    this.wire.addresses({
      ok: (a) => cb.ok(this.addresses = a),
      fail: cb.fail
    })
  }

  /** An integer socket option (getsockopt). */
  intOption(level: number, name: number, cb: Callbacks<number>): void {
    this.wire.intOption(level, name, cb)
  }

  /** Sets an integer socket option (setsockopt). */
  setIntOption(level: number, name: number, value: number, cb: Callbacks<void>): void {
    this.wire.setIntOption(level, name, value, cb)
  }

  // ---- close ----------------------------------------------------------------------------------

  /** Starts closing: queued sends drain first (until `force`), then receiving stops and the wire closes. */
  beginClose(): void {
    if (this.phase !== Phase.Open) return
    this.phase = Phase.Draining
    // close_notify goes out behind everything queued, then the socket closes (FIN).
    if (this.transport !== undefined && !this.writeShut) this.transportClose()
    this.wire.syncReceive()
    this.advanceClose()
  }

  /** Stops waiting for queued sends (drain timeout): cancels the send in flight and drops the rest. */
  force(): void {
    if (this.phase === Phase.Open) this.beginClose()
    if (this.phase !== Phase.Draining) return
    this.phase = Phase.Cancelling
    if (this.sending) this.wire.cancelSend()
    else this.failSends(new ConnectionClosed({ operation: "send" }))
    this.advanceClose()
  }

  onClosed(f: () => void): void {
    if (this.phase === Phase.Closed) f()
    else (this.closeWaiters === NO_CLOSE_WAITERS ? (this.closeWaiters = []) : this.closeWaiters).push(f)
  }

  private advanceClose(): void {
    if (this.phase === Phase.Draining) {
      if (this.sendError === undefined && (this.queue.length > 0 || this.sending)) return
      this.phase = Phase.Cancelling
    }
    if (this.phase === Phase.Cancelling) {
      if (this.wire.receiving || this.sending) return
      this.phase = Phase.Closing
    }
    if (this.phase === Phase.Closing && !this.closeSubmitted) {
      this.closeSubmitted = true
      this.wire.close()
      if (this.queue.length > 0 || this.waiters.sendWaiting) this.failSends(new ConnectionClosed({ operation: "send" }))
    }
  }

  closed(): void {
    if (this.phase === Phase.Closed) return
    this.phase = Phase.Closed
    this.inbound.clear()
    // Waiting readers wake up to ConnectionClosed, one after the other.
    this.readers.notify()
    // The error (a stack trace to build) only when something is left to fail: after a clean
    // close nothing is, and a later write is refused by the phase check alone.
    if (this.queue.length > 0 || this.zcHeld.length > 0 || this.waiters.waiting || this.sendPaused || this.sentTotal !== this.enqueued) {
      this.failSends(new ConnectionClosed({ operation: "send" }))
    }
    // Every op has ended: no send references transport memory any more.
    this.transport?.dispose()
    this.notifyEnd()
    const waiters = this.closeWaiters
    this.closeWaiters = NO_CLOSE_WAITERS
    for (const f of waiters) f()
  }

  // ---- transport hook (TLS) --------------------------------------------------------------------

  /**
   * Puts `make`'s transport between the wire and the byte stream. Bytes that arrived before
   * (a TLS ClientHello racing the accept, or what followed a STARTTLS command) go through it.
   */
  attachTransport<T extends Transport>(make: (sink: TransportSink) => T): T {
    const t = make({
      plaintext: (bytes) => this.deliver(bytes),
      reserve: (n) => this.inbound.tail(n),
      written: (n) => {
        this.inbound.commit(n)
        this.readers.notify()
      },
      ciphertext: (addr, len, token) => this.queueCiphertext(addr, len, token),
      ended: () => {
        this.eof = true
        this.wire.syncReceive()
        this.readers.notify()
        this.notifyEnd()
      },
      fail: (error) => {
        this.recvError ??= error
        this.wire.syncReceive()
        this.readers.notify()
        this.notifyEnd()
      }
    })
    this.transport = t
    // Bytes received before (held or buffered) are ciphertext: they go through the transport.
    const early = this.inbound.takeAll()
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
    if (!this.wire.addressable) {
      // The wire sends from JS memory only: take the bytes now, the transport's memory back at once.
      const bytes = this.transport!.copy(addr, len, token)
      this.transport!.release(token)
      this.queue.push(segment(bytes, -1, -1, 0, len, this.enqueued + this.pendingCipher))
      this.pendingCipher += len
      return
    }
    const tail = this.queue[this.queue.length - 1]
    const tailInFlight = this.sending && this.queue.length <= this.inFlight
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

/** A channel's policy plus how long `close` drains queued sends before forcing. */
export interface ConnectionOptions extends ChannelOptions {
  readonly shutdownTimeoutMs: number
}

/**
 * A full `Connection` over `wire` (read, recv, stream, sink, send, write, sendv, chain, shutdownWrite,
 * close, addresses), and the channel behind it (for an accept source's `take`, or to close it from
 * the owner's release). `onClose` runs when the connection's `close` has completed.
 */
export const makeConnection = (
  wire: Wire,
  options: ConnectionOptions,
  onClose: (channel: Channel) => void = noop
): { readonly connection: Connection; readonly channel: Channel } => {
  const channel = new Channel(wire, options)
  return { connection: connectionOf(channel, options.shutdownTimeoutMs, onClose), channel }
}

/** The `Connection` over an existing channel (a Listener's `wrap`); each call is a new handle on it. */
export { connectionOf }

function noop() {}

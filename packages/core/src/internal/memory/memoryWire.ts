/**
 * The in-memory Wire (see ../net/wire.ts for the contract): one end of a RinglineTest connection.
 * The generic channel over it is the very code that runs over the ring, so reads, parsers,
 * streams, sinks, backpressure and close behave the same; only what the kernel would do is done
 * here, with the fault plan applied to this side's receives and sends.
 *
 * Receive buffers are fresh Uint8Arrays of at most `receiveSize` bytes (the size of a provided
 * buffer), one per completion; sends copy what fits into the peer's pipe (a short send when only
 * part fits, a wait when nothing does). No send pool, no zero-copy, no linked chains: the channel
 * copies small writes itself and sends chains as ordinary sends.
 */
import type { Addresses, Callbacks, Segment, Wire, WireSink } from "../net/wire.js"
import { ConnectionClosed, socketError } from "../../RinglineError.js"
import { Errno } from "../errno.js"
import { SOCK_STREAM } from "../sockaddr.js"
import { IPPROTO_TCP, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SOL_SOCKET, TCP_KEEPIDLE, TCP_NODELAY } from "../sockopt.js"
import type { Fault } from "./faults.js"
import { type Endpoint, errnoOf, type Network } from "./network.js"

const enum Recv {
  Idle,
  Armed,
  /** Cancelled or parked; `receiveStopped` is on its way. */
  Stopping
}

const SO_TYPE = 3
const SO_ERROR = 4

export class MemoryWire implements Wire {
  private sink!: WireSink
  private recv = Recv.Idle
  private ended = false
  private nextBuf = 1
  private readonly bufs = new Map<number, Uint8Array>()
  private readonly mine = new WeakSet<ArrayBufferLike>()
  private stopWaitingForBytes: (() => void) | undefined
  /** The send in flight: its segments, and how to withdraw its wait for room. */
  private sending: { segs: ReadonlyArray<Segment>; count: number; withdraw: (() => void) | undefined } | undefined
  private isClosed = false
  /** Integer socket options by `level:name`, as getsockopt would answer them. */
  private readonly options: Map<string, number>
  /** Receiving is parked by a Pause fault until its timer re-arms it. */
  private parked = false

  readonly addressable = false
  readonly maxGather = 1024
  readonly slotSize = 0

  constructor(
    readonly kind: "tcp" | "unix",
    private readonly ep: Endpoint,
    private readonly net: Network,
    tcpNoDelay: boolean
  ) {
    const buffer = net.options.bufferSize
    this.options = new Map([
      [`${IPPROTO_TCP}:${TCP_NODELAY}`, tcpNoDelay ? 1 : 0],
      [`${IPPROTO_TCP}:${TCP_KEEPIDLE}`, 7200],
      [`${SOL_SOCKET}:${SO_KEEPALIVE}`, 0],
      [`${SOL_SOCKET}:${SO_SNDBUF}`, buffer],
      [`${SOL_SOCKET}:${SO_RCVBUF}`, buffer]
    ])
  }

  bind(sink: WireSink): void {
    this.sink = sink
  }

  // ---- receive --------------------------------------------------------------------------------

  get receiving(): boolean {
    return this.recv !== Recv.Idle
  }

  syncReceive(): void {
    const wanted = this.sink.wantsData && !this.ended && !this.parked
    if (wanted && this.recv === Recv.Idle) {
      this.recv = Recv.Armed
      this.net.inFlight++
      this.net.schedule(() => this.pump())
    } else if (!wanted && this.recv === Recv.Armed) {
      this.stop()
    }
  }

  /** Stops the armed receive; `receiveStopped` follows from the task queue (a terminal CQE). */
  private stop(): void {
    this.recv = Recv.Stopping
    this.stopWaitingForBytes?.()
    this.stopWaitingForBytes = undefined
    this.net.schedule(() => {
      this.recv = Recv.Idle
      this.net.inFlight--
      this.sink.receiveStopped()
    })
  }

  /** Delivers what the pipe holds while the receive is armed and wanted, then waits for more. */
  private pump(): void {
    const pipe = this.ep.inbound
    while (this.recv === Recv.Armed && this.sink.wantsData) {
      if (pipe.length === 0) {
        if (pipe.reset || pipe.fin) return this.end(pipe.reset ? -Errno.ECONNRESET : 0)
        this.stopWaitingForBytes = pipe.whenReadable(() => {
          this.stopWaitingForBytes = undefined
          this.pump()
        })
        return
      }
      const fault = this.net.faults.decide("recv", this.ep.ordinal)
      if (fault !== undefined && this.recvFault(fault)) return
      const bytes = pipe.take(this.net.options.receiveSize)
      this.deliver(bytes)
    }
    // No longer wanted (the channel paused it at its high-water mark or is closing).
    if (this.recv === Recv.Armed) this.stop()
  }

  private deliver(bytes: Uint8Array): void {
    const buf = this.nextBuf++
    this.bufs.set(buf, bytes)
    this.mine.add(bytes.buffer)
    this.net.counters.bytesIn += bytes.length
    this.sink.received(buf, bytes.length)
  }

  /** Applies a receive fault; true when the pump must stop for now. */
  private recvFault(fault: Fault): boolean {
    switch (fault._tag) {
      case "Reset":
        this.ep.peer.abort()
        this.end(-Errno.ECONNRESET)
        return true
      case "Fail":
        this.end(-errnoOf(fault.code))
        return true
      case "Pause":
        // The provided-buffer ring ran empty: the multishot receive ends with ENOBUFS, the wire
        // parks it and re-arms by itself once buffers are back.
        this.net.counters.enobufs++
        this.parked = true
        this.stop()
        this.net.after(fault.duration, () => {
          this.parked = false
          if (!this.isClosed && this.recv === Recv.Idle) this.syncReceive()
        })
        return true
      case "Delay": {
        const bytes = this.ep.inbound.take(this.net.options.receiveSize)
        this.recv = Recv.Stopping
        this.net.after(fault.duration, () => {
          if (this.recv !== Recv.Stopping || this.isClosed) return
          this.recv = Recv.Armed
          this.deliver(bytes)
          this.pump()
        })
        return true
      }
      default:
        return false
    }
  }

  /** The terminal completion of the receive: end of stream (0) or -errno. */
  private end(res: number): void {
    this.ended = true
    this.recv = Recv.Idle
    this.net.inFlight--
    this.sink.receiveEnded(res)
    this.sink.receiveStopped()
  }

  view(buf: number, offset: number, len: number): Uint8Array {
    return this.bufs.get(buf)!.subarray(offset, offset + len)
  }

  recycle(buf: number): void {
    this.bufs.delete(buf)
  }

  recycleLater(buf: number): void {
    this.recycle(buf)
  }

  lend(_view: Uint8Array): number {
    // Sends copy into the pipe anyway: lending would save nothing.
    return -1
  }

  giveBack(_buf: number): void {
    // Nothing is ever lent (see lend).
  }

  owns(buffer: ArrayBufferLike): boolean {
    return this.mine.has(buffer)
  }

  // ---- send -----------------------------------------------------------------------------------

  send(segments: ReadonlyArray<Segment>, count: number, _zeroCopy: boolean): void {
    this.net.inFlight++
    this.sending = { segs: segments, count, withdraw: undefined }
    const fault = this.net.faults.decide("send", this.ep.ordinal)
    if (fault?._tag === "Delay") {
      const cancel = this.net.after(fault.duration, () => this.trySend(undefined))
      this.sending.withdraw = cancel
      return
    }
    this.net.schedule(() => this.trySend(fault))
  }

  /** Copies what fits of the send in flight into the peer's pipe, or waits for room. */
  private trySend(fault: Fault | undefined): void {
    const s = this.sending
    if (s === undefined) return
    s.withdraw = undefined
    if (fault?._tag === "Reset") {
      this.ep.peer.abort()
      return this.complete(this.ep.write(EMPTY))
    }
    if (fault?._tag === "Fail") return this.complete(-errnoOf(fault.code))
    let limit = Infinity
    if (fault?._tag === "ShortSend") limit = this.net.faults.shortLength(fault, this.pendingBytes(s.segs, s.count))
    const pipe = this.ep.outbound
    if (pipe.room === 0 && this.ep.error === 0 && !pipe.readerGone && !pipe.fin && !this.ep.closed) {
      s.withdraw = pipe.whenWritable(() => this.trySend(fault))
      return
    }
    let total = 0
    for (let i = 0; i < s.count && total < limit; i++) {
      const seg = s.segs[i]!
      if (seg.data === null) return this.complete(total > 0 ? total : -errnoOf("EFAULT"))
      const rest = seg.data.subarray(seg.sent, seg.len)
      const part = rest.length > limit - total ? rest.subarray(0, limit - total) : rest
      const n = this.ep.write(part)
      if (n < 0) return this.complete(total > 0 ? total : n)
      total += n
      if (n < part.length) break
    }
    this.complete(total)
  }

  private pendingBytes(segs: ReadonlyArray<Segment>, count: number): number {
    let n = 0
    for (let i = 0; i < count; i++) n += segs[i]!.len - segs[i]!.sent
    return n
  }

  private complete(res: number): void {
    const s = this.sending!
    this.sending = undefined
    this.net.inFlight--
    if (res > 0) this.net.counters.bytesOut += res
    this.sink.sent(s.segs, res, false)
  }

  cancelSend(): void {
    const s = this.sending
    if (s?.withdraw === undefined) return
    s.withdraw()
    s.withdraw = undefined
    this.net.schedule(() => this.complete(-Errno.ECANCELED))
  }

  takeSlot(): number {
    return -1
  }

  fillSlot(): void {
    throw new Error("the in-memory wire has no send pool")
  }

  slotAddress(): number {
    throw new Error("the in-memory wire has no send pool")
  }

  giveSlot(): void {
    throw new Error("the in-memory wire has no send pool")
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  shutdownWrite(done: (res: number) => void): void {
    this.net.inFlight++
    this.net.schedule(() => {
      this.net.inFlight--
      if (this.ep.closed) return done(-Errno.ENOTCONN)
      this.ep.shutdownWrite()
      done(0)
    })
  }

  close(): void {
    this.isClosed = true
    this.stopWaitingForBytes?.()
    this.ep.close()
    this.net.counters.closed++
    this.net.inFlight++
    this.net.schedule(() => {
      this.net.inFlight--
      this.sink.closed()
    })
  }

  addresses(cb: Callbacks<Addresses>): void {
    const { local, remote } = this.ep
    this.net.schedule(() => cb.ok({ local, peer: remote }))
  }

  intOption(level: number, name: number, cb: Callbacks<number>): void {
    this.net.schedule(() => {
      if (this.isClosed) return cb.fail(new ConnectionClosed({ operation: "getsockopt" }))
      if (level === SOL_SOCKET && name === SO_TYPE) return cb.ok(SOCK_STREAM)
      if (level === SOL_SOCKET && name === SO_ERROR) return cb.ok(0)
      const bad = this.badOption(level)
      if (bad !== undefined) return cb.fail(socketError("getsockopt", bad))
      const v = this.options.get(`${level}:${name}`)
      return v === undefined ? cb.fail(socketError("getsockopt", errnoOf("ENOPROTOOPT"))) : cb.ok(v)
    })
  }

  setIntOption(level: number, name: number, value: number, cb: Callbacks<void>): void {
    this.net.schedule(() => {
      if (this.isClosed) return cb.fail(new ConnectionClosed({ operation: "setsockopt" }))
      const bad = this.badOption(level)
      if (bad !== undefined) return cb.fail(socketError("setsockopt", bad))
      this.options.set(`${level}:${name}`, value)
      cb.ok()
    })
  }

  /** TCP options on a Unix socket fail as the kernel fails them. */
  private badOption(level: number): number | undefined {
    return level === IPPROTO_TCP && this.kind === "unix" ? errnoOf("EOPNOTSUPP") : undefined
  }

  countError(_code: string): void {
    // Error counts by code feed RinglineMetrics, which reads the ring's driver: nothing to keep.
  }

  countPause(): void {
    this.net.counters.backpressurePauses++
  }
}

const EMPTY = new Uint8Array(0)

/**
 * The in-memory network of RinglineTest: an address space (TCP host:port and Unix paths) with
 * listeners and their accept queues, and connections made of two byte pipes with bounded
 * buffers. It keeps the kernel's observable rules: a connect to an unbound TCP port is refused
 * (a missing Unix path is ENOENT), a full accept queue makes connects wait, a full pipe makes
 * sends wait (short sends when only part fits), FIN after the queued bytes, RST on a close with
 * unread bytes, ECONNRESET then EPIPE for the writer after its peer reset.
 *
 * Everything that completes does so from the network's own task queue (drained in a setImmediate), never
 * re-entrantly inside a call, and time (delays, pauses) runs on Effect's Clock through the
 * runtime the Layer was built in, so `TestClock.adjust` drives it.
 */
import { type Duration, Effect, type Fiber, Runtime } from "effect"
import { constants } from "node:os"
import type { Address, UnixAddress } from "../../Address.js"
import * as Addr from "../../Address.js"
import { Errno } from "../errno.js"
import { Faults } from "./faults.js"
import type { FaultPlan } from "./faults.js"

/** Bytes in arrival order, taken from the front (a pipe's buffer, a peer's received bytes). */
export class ByteQueue {
  private chunks: Array<Uint8Array> = []
  length = 0

  /** Appends `bytes` (kept as given: pass a copy when the caller may reuse them). */
  append(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.chunks.push(bytes)
    this.length += bytes.length
  }

  /** Removes up to `max` bytes as one new Uint8Array (its own ArrayBuffer). */
  take(max: number): Uint8Array {
    const n = Math.min(max, this.length)
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const c = this.chunks[0]!
      const k = Math.min(c.length, n - at)
      out.set(c.subarray(0, k), at)
      at += k
      if (k === c.length) this.chunks.shift()
      else this.chunks[0] = c.subarray(k)
    }
    this.length -= n
    return out
  }

  clear(): void {
    this.chunks = []
    this.length = 0
  }
}

/** One direction of a connection: bytes written by one endpoint, read by the other. */
export class Pipe {
  private readonly bytes = new ByteQueue()
  /** The writer shut down: after the bytes, the reader sees the end of the stream. */
  fin = false
  /** The writer reset the connection: after the bytes, the reader sees ECONNRESET. */
  reset = false
  /** The reader closed: nothing written here is read any more. */
  readerGone = false
  private readonly readable = new Set<() => void>()
  private readonly writable = new Set<() => void>()

  constructor(readonly capacity: number, private readonly net: Network) {}

  get length(): number {
    return this.bytes.length
  }

  get room(): number {
    return Math.max(0, this.capacity - this.bytes.length)
  }

  /** Copies as much of `bytes` as fits; returns how many bytes were taken. */
  push(bytes: Uint8Array): number {
    const n = Math.min(this.room, bytes.length)
    if (n > 0) {
      this.bytes.append(bytes.slice(0, n))
      this.wake(this.readable)
    }
    return n
  }

  /** Removes up to `max` bytes as one new Uint8Array (its own ArrayBuffer). */
  take(max: number): Uint8Array {
    const out = this.bytes.take(max)
    if (out.length > 0) this.wake(this.writable)
    return out
  }

  clear(): void {
    this.bytes.clear()
    this.wake(this.writable)
  }

  /** Something changed for readers (bytes, FIN, RST). */
  signal(): void {
    this.wake(this.readable)
    this.wake(this.writable)
  }

  /** Calls `f` once, from the task queue, when bytes arrive or the stream ends. */
  whenReadable(f: () => void): () => void {
    this.readable.add(f)
    return () => this.readable.delete(f)
  }

  /** Calls `f` once, from the task queue, when room appears or the reader went away. */
  whenWritable(f: () => void): () => void {
    this.writable.add(f)
    return () => this.writable.delete(f)
  }

  private wake(set: Set<() => void>): void {
    if (set.size === 0) return
    const fs = [...set]
    set.clear()
    for (const f of fs) this.net.schedule(f)
  }
}

/** One end of a connection. */
export class Endpoint {
  peer!: Endpoint
  /** An error the next operation reports (ECONNRESET after the peer's RST), then EPIPE for sends. */
  error = 0
  closed = false
  /** Closed by a reset (ours, or a fault acting for this end). */
  aborted = false
  /** Called when an accept of the side under test took this endpoint's peer (for peer handles). */
  onAccepted: (() => void) | undefined

  constructor(
    readonly ordinal: number,
    readonly inbound: Pipe,
    readonly outbound: Pipe,
    readonly local: Address,
    readonly remote: Address,
    private readonly net: Network
  ) {}

  /**
   * Writes what fits of `bytes`; the number taken, or -errno. A reset peer answers ECONNRESET
   * once, then EPIPE, as the kernel does; so does a write after our own shutdown.
   */
  write(bytes: Uint8Array): number {
    if (this.error !== 0) {
      const e = this.error
      this.error = Errno.EPIPE
      return -e
    }
    if (this.outbound.fin || this.closed) return -Errno.EPIPE
    if (this.outbound.readerGone) {
      // The peer closed: the kernel accepts these bytes and the peer answers with RST.
      this.error = Errno.ECONNRESET
      return bytes.length
    }
    return this.outbound.push(bytes)
  }

  shutdownWrite(): void {
    if (this.outbound.fin) return
    this.outbound.fin = true
    this.outbound.signal()
  }

  /** RST: the peer's reads end with ECONNRESET after what it had, its writes fail. */
  abort(): void {
    if (this.closed) return
    this.closed = true
    this.aborted = true
    this.outbound.reset = true
    this.outbound.signal()
    this.inbound.readerGone = true
    this.inbound.clear()
    this.inbound.signal()
    if (!this.peer.closed) this.peer.error = Errno.ECONNRESET
    this.net.endpointClosed(this)
  }

  /** close(2): FIN, or RST when received bytes were never read (as Linux does). */
  close(): void {
    if (this.closed) return
    if (this.inbound.length > 0) return this.abort()
    this.closed = true
    this.shutdownWrite()
    this.inbound.readerGone = true
    this.inbound.signal()
    this.net.endpointClosed(this)
  }
}

/** A bound listening address with the kernel's accept queue. */
export class MemListener {
  /** Connections the "kernel" accepted, waiting for an accept. */
  readonly queue: Array<Endpoint> = []
  /** Connects waiting for room in the queue. */
  readonly waiting = new Set<() => void>()
  closed = false
  /** Called (from the task queue) when a connection was queued or the listener closed. */
  onChange: () => void = () => {}

  constructor(readonly address: Address, readonly backlog: number, readonly underTest: boolean, private readonly net: Network) {}

  /** Linux keeps backlog + 1 established connections before it stops answering SYNs. */
  get full(): boolean {
    return this.queue.length > this.backlog
  }

  take(): Endpoint | undefined {
    const ep = this.queue.shift()
    if (ep !== undefined) this.wakeWaiting()
    return ep
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.net.unbind(this)
    // Established but never accepted: closed (FIN, or RST when the client already sent bytes),
    // as ringline closes the connections its listener's accepts never took.
    for (const ep of this.queue.splice(0)) {
      if (this.underTest) this.net.counters.acceptsAbandoned++
      ep.close()
    }
    this.wakeWaiting()
    this.net.schedule(() => this.onChange())
  }

  wakeWaiting(): void {
    const ws = [...this.waiting]
    this.waiting.clear()
    for (const w of ws) this.net.schedule(w)
  }
}

export interface NetworkOptions {
  /** Bytes each direction of a connection buffers (both socket buffers together); default 256 KiB. */
  readonly bufferSize: number
  /** Bytes one receive completion delivers at most (like a provided buffer); default 16 KiB. */
  readonly receiveSize: number
  readonly faults?: FaultPlan
}

/** Counters of the network, reported through `Ringline.stats`. */
export interface NetCounters {
  accepted: number
  connected: number
  closed: number
  acceptsAbandoned: number
  bytesIn: number
  bytesOut: number
  enobufs: number
  backpressurePauses: number
}

const EPHEMERAL_FIRST = 49152

export class Network {
  private readonly bound = new Map<string, MemListener>()
  private nextPort = EPHEMERAL_FIRST
  private connections = 0
  private tasks: Array<() => void> = []
  private draining = false
  private readonly timers = new Set<Fiber.RuntimeFiber<void>>()
  readonly faults: Faults
  readonly open = new Set<Endpoint>()
  readonly counters: NetCounters = {
    accepted: 0,
    connected: 0,
    closed: 0,
    acceptsAbandoned: 0,
    bytesIn: 0,
    bytesOut: 0,
    enobufs: 0,
    backpressurePauses: 0
  }
  /** Operations of the side under test still waiting for their completion. */
  inFlight = 0

  constructor(readonly options: NetworkOptions, private readonly runtime: Runtime.Runtime<never>) {
    this.faults = new Faults(options.faults)
  }

  /** Runs `f` from the task queue, after the current call returned. */
  schedule(f: () => void): void {
    this.tasks.push(f)
    if (this.draining) return
    this.draining = true
    // A macrotask, as the ring's completions come from libuv's poll phase: a program and a peer
    // that stream to each other forever must not starve timers and I/O in a microtask loop.
    setImmediate(() => this.drain())
  }

  private drain(): void {
    // Tasks scheduled while draining run in the same drain, in order.
    for (let i = 0; i < this.tasks.length; i++) this.tasks[i]!()
    this.tasks = []
    this.draining = false
  }

  /** Runs `f` from the task queue once `duration` passed on the Layer's Clock. */
  after(duration: Duration.DurationInput, f: () => void): () => void {
    const fiber = Runtime.runFork(this.runtime)(Effect.zipRight(Effect.sleep(duration), Effect.sync(() => this.schedule(f))))
    this.timers.add(fiber)
    fiber.addObserver(() => this.timers.delete(fiber))
    return () => void fiber.unsafeInterruptAsFork(fiber.id())
  }

  /** Stops every timer (the Layer is released). */
  shutdown(): void {
    for (const f of this.timers) f.unsafeInterruptAsFork(f.id())
    this.timers.clear()
  }

  /** The Address at which `address` is bound; wildcard listeners answer for every host. */
  lookup(address: Address): MemListener | undefined {
    const exact = this.bound.get(key(address))
    if (exact !== undefined || address._tag === "UnixAddress") return exact
    const any = address.family === 6 ? "::" : "0.0.0.0"
    return this.bound.get(key(Addr.tcp(any, address.port, address.family)))
  }

  /** Binds a listener; a port of 0 takes the next free one. -errno when the address is taken. */
  bind(address: Address, backlog: number, underTest: boolean): MemListener | number {
    let at = address
    if (at._tag === "TcpAddress" && at.port === 0) at = Addr.tcp(at.host, this.freePort(), at.family)
    if (this.bound.has(key(at))) return -Errno.EADDRINUSE
    const l = new MemListener(at, backlog, underTest, this)
    this.bound.set(key(at), l)
    return l
  }

  unbind(l: MemListener): void {
    if (this.bound.get(key(l.address)) === l) this.bound.delete(key(l.address))
  }

  private freePort(): number {
    for (;;) {
      const p = this.nextPort
      this.nextPort = this.nextPort >= 65535 ? EPHEMERAL_FIRST : this.nextPort + 1
      let used = false
      for (const k of this.bound.keys()) if (k.endsWith(`:${p}`)) used = true
      if (!used) return p
    }
  }

  /** The ordinal the next connection will get (what a connect rule's `connection` matches). */
  get nextOrdinal(): number {
    return this.connections + 1
  }

  /**
   * Connects to `target`; `done` gets the client's endpoint or -errno, from the task queue.
   * Returns a canceller (the connect is withdrawn; an established connection is not undone).
   */
  connect(target: Address, underTest: boolean, done: (r: Endpoint | number) => void): () => void {
    let cancelled = false
    let stopTimer: (() => void) | undefined
    let listener: MemListener | undefined
    const attempt = (): void => {
      if (cancelled) return
      const l = this.lookup(target)
      if (l === undefined || l.closed) {
        return done(target._tag === "UnixAddress" && l === undefined ? -Errno.ENOENT : -Errno.ECONNREFUSED)
      }
      if (l.full) {
        // The kernel stops answering SYNs: the connect waits (a timeout is the caller's).
        listener = l
        l.waiting.add(attempt)
        return
      }
      const [client, server] = this.pair(target, l)
      const fault = l.underTest ? this.faults.decide("accept", client.ordinal) : undefined
      if (fault?._tag === "Fail") {
        // The accept completed with an error: the connection is dropped (the client sees a
        // reset) and the listener keeps accepting, as on the ring.
        server.abort()
      } else if (fault?._tag === "Delay") {
        this.after(fault.duration, () => queue(l, server))
      } else {
        queue(l, server)
      }
      done(client)
    }
    const queue = (l: MemListener, server: Endpoint) => {
      if (l.closed) return server.abort()
      l.queue.push(server)
      l.onChange()
    }
    const fault = underTest ? this.faults.decide("connect", this.nextOrdinal) : undefined
    if (fault?._tag === "Refuse") this.schedule(() => done(-Errno.ECONNREFUSED))
    else if (fault?._tag === "Fail") this.schedule(() => done(-errnoOf(fault.code)))
    else if (fault?._tag === "Delay") stopTimer = this.after(fault.duration, attempt)
    else this.schedule(attempt)
    return () => {
      cancelled = true
      stopTimer?.()
      listener?.waiting.delete(attempt)
    }
  }

  private pair(target: Address, l: MemListener): [Endpoint, Endpoint] {
    const ordinal = ++this.connections
    const toServer = new Pipe(this.options.bufferSize, this)
    const toClient = new Pipe(this.options.bufferSize, this)
    const clientAddress: Address = target._tag === "UnixAddress"
      ? Addr.unix("")
      : Addr.tcp(target.host === "0.0.0.0" || target.host === "::" ? (target.family === 6 ? "::1" : "127.0.0.1") : target.host, this.freePort(), target.family)
    const serverAddress: Address = target._tag === "UnixAddress" ? l.address as UnixAddress : { ...target, port: l.address._tag === "TcpAddress" ? l.address.port : 0 }
    const client = new Endpoint(ordinal, toClient, toServer, clientAddress, serverAddress, this)
    const server = new Endpoint(ordinal, toServer, toClient, serverAddress, clientAddress, this)
    client.peer = server
    server.peer = client
    this.open.add(client)
    this.open.add(server)
    return [client, server]
  }

  endpointClosed(ep: Endpoint): void {
    this.open.delete(ep)
  }
}

const key = (a: Address): string => a._tag === "UnixAddress" ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`

/** The errno of an errno name (`"EMFILE"` → 24); EIO for a name this platform does not know. */
export const errnoOf = (code: string): number => {
  const n = (Errno as Record<string, number>)[code] ?? (constants.errno as Record<string, number>)[code]
  return n ?? 5
}

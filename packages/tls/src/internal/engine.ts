/**
 * The TLS transport of one connection: drives a native TlsSession (packages/native/src/tls.cc)
 * from the connection's two hook points (see @ringline/core/Transport).
 *
 * - receive: one `feed` per received chunk; OpenSSL reads the ciphertext straight from the
 *   provided buffer, and once the handshake is done decrypts straight into the readers' buffer
 *   (`sink.reserve`, as much room as the chunk has ciphertext: its records' plaintext is no
 *   larger, and a larger tail would spoil the buffer's hand-over to `recv`). Before that (and
 *   for what a full tail leaves) plaintext lands in a per-thread scratch view, copied.
 * - send: one `write` per call (at most MAX_WRITE plaintext bytes each; small ones copied into the
 *   scratch view first, `writeScratch`); the records stay in
 *   native chunks, which the send queue points at. A chunk goes back to native code once no
 *   queued segment references it (`Refs`), batched into the next call through the io area.
 * - Whatever OpenSSL writes inside a call (handshake, alerts, tickets, KeyUpdate replies) is
 *   queued right after that call.
 */
import { lentBuffers, type Transport, type TransportSink } from "@ringline/core/Transport"
import { TlsError } from "@ringline/core/RinglineError"
import type * as Native from "@ringline/native"
import { createRequire } from "node:module"

let loaded: typeof Native | undefined
/** The addon, loaded on first use (importing this package never needs the native build). */
const load = (): typeof Native => {
  if (loaded === undefined) loaded = createRequire(import.meta.url)("@ringline/native") as typeof Native
  return loaded
}

/** Layout of the shared io area; keep in sync with TlsIo in packages/native/src/tls.h. */
const Io = {
  plain: 0,
  events: 1,
  spans: 2,
  consumed: 3,
  releases: 4,
  releaseBase: 64,
  releaseMax: 960,
  spanBase: 1024,
  length: 1024 + 3 * 1024
} as const

export const Ev = {
  HandshakeDone: 1,
  CloseNotify: 2,
  Error: 4,
  More: 8,
  Parked: 16
} as const

/** Plaintext per `write` call: ≤ 16 records, a handful of spans. */
const MAX_WRITE = 256 * 1024
const PLAIN_BYTES = 64 * 1024
/**
 * Writes up to this size are copied into the scratch view and encrypted from there
 * (`writeScratch`): cheaper than the native side reading a typed array's info, which for a small
 * array V8 keeps on its heap (a 64 B echo's chunk) also moves it off-heap (an allocation and a
 * copy per record). Larger ones are passed as they are (a copy would cost more).
 */
const SCRATCH_WRITE = 4096

// One io area and one plaintext view per thread: calls never overlap, and every call's results
// are read before anything else can run. Both live in one buffer, the view right after the io
// area, where native code finds it for `writeScratch` (the io area's reference keeps it alive).
let io: Float64Array | undefined
let plain: Uint8Array | undefined

const shared = (): { io: Float64Array; plain: Uint8Array } => {
  if (io === undefined || plain === undefined) {
    const memory = new ArrayBuffer(Io.length * 8 + PLAIN_BYTES)
    io = new Float64Array(memory, 0, Io.length)
    plain = new Uint8Array(memory, Io.length * 8, PLAIN_BYTES)
    lentBuffers.add(memory)
  }
  return { io, plain }
}

export interface HandshakeFailure {
  /** OpenSSL's reason ("hostname mismatch", "unable to get local issuer certificate", ...). */
  readonly detail: string
  readonly verify: boolean
}

/**
 * Queued segments per native chunk id. A connection has only a few chunks in flight (the send
 * queue's high-water mark over 64 KiB chunks), so two small arrays searched linearly cost less
 * per record than a Map. Order does not matter (a removal moves the last entry into the hole).
 */
class Refs {
  private readonly ids: Array<number> = []
  private readonly counts: Array<number> = []

  add(id: number): void {
    const ids = this.ids
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === id) {
        this.counts[i]!++
        return
      }
    }
    ids.push(id)
    this.counts.push(1)
  }

  /** Drops one reference; true when it was the chunk's last (or the chunk was unknown). */
  drop(id: number): boolean {
    const ids = this.ids
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== id) continue
      const counts = this.counts
      if (--counts[i]! > 0) return false
      const last = ids.length - 1
      ids[i] = ids[last]!
      counts[i] = counts[last]!
      ids.pop()
      counts.pop()
      return true
    }
    return true
  }
}

export class TlsTransport implements Transport {
  private readonly io: Float64Array
  private readonly plain: Uint8Array
  private readonly refs = new Refs()
  /** Chunk ids nothing references any more (the first `released`), for the next native call. */
  private readonly releases: Array<number> = []
  private released = 0
  private waiter: ((failure: HandshakeFailure | undefined) => void) | undefined
  handshakeDone = false
  closeNotifyReceived = false
  private closeSent = false
  private failure: TlsError | undefined
  private disposed = false

  constructor(private readonly sink: TransportSink, readonly session: Native.TlsSession) {
    const s = shared()
    this.io = s.io
    this.plain = s.plain
  }

  /** Calls back once when the handshake finished (undefined) or failed. */
  onHandshake(f: (failure: HandshakeFailure | undefined) => void): void {
    if (this.handshakeDone) f(undefined)
    else if (this.failure !== undefined) f({ detail: this.failure.detail, verify: false })
    else this.waiter = f
  }

  /** A client's first flight (ClientHello). */
  start(): void {
    this.prepare()
    this.after(this.session.handshake())
  }

  receive(bytes: Uint8Array): void {
    if (this.disposed) return
    this.prepare()
    let out = this.handshakeDone ? this.sink.reserve(bytes.length) : this.plain
    let ev = this.session.feed(bytes, out)
    this.after(ev, out)
    while ((ev & Ev.More) !== 0 && !this.disposed) {
      // Records OpenSSL kept from an earlier chunk: the scratch view has room for all of them.
      this.prepare()
      ev = this.session.feed(null, this.plain)
      this.after(ev, this.plain)
    }
  }

  send(bytes: Uint8Array): TlsError | undefined {
    if (this.failure !== undefined) return this.failure
    if (bytes.length <= SCRATCH_WRITE) {
      this.prepare()
      this.plain.set(bytes)
      this.after(this.session.writeScratch(bytes.length))
      return this.failure
    }
    for (let off = 0; off < bytes.length; off += MAX_WRITE) {
      this.prepare()
      const end = Math.min(bytes.length, off + MAX_WRITE)
      this.after(this.session.write(off === 0 && end === bytes.length ? bytes : bytes.subarray(off, end)))
      if (this.failure !== undefined) return this.failure
    }
    return undefined
  }

  end(error: unknown): unknown {
    if (!this.handshakeDone) {
      this.settle({
        detail: error === undefined
          ? "the peer closed the connection during the handshake"
          : `the connection failed during the handshake: ${(error as { code?: string }).code ?? String(error)}`,
        verify: false
      })
    }
    if (error !== undefined) return error
    if (this.closeNotifyReceived) return undefined
    return new TlsError({
      reason: "Truncated",
      operation: "read",
      detail: "unexpected eof while reading: the peer closed TCP without a close_notify alert"
    })
  }

  close(): void {
    if (this.closeSent || this.disposed || !this.handshakeDone || this.failure !== undefined) return
    this.closeSent = true
    this.prepare()
    this.after(this.session.shutdown())
  }

  keyUpdate(requestPeer: boolean): void {
    this.prepare()
    this.after(this.session.keyUpdate(requestPeer))
  }

  release(token: number): void {
    if (!this.refs.drop(token) || this.disposed) return
    this.releases[this.released++] = token
    if (this.released >= Io.releaseMax) {
      this.prepare()
      this.session.release()
    }
  }

  copy(addr: number, len: number, token: number): Uint8Array {
    return this.session.copy(token, addr, len)
  }

  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.session.free()
    this.settle({ detail: "the connection closed during the handshake", verify: false })
  }

  private settle(failure: HandshakeFailure | undefined): void {
    const w = this.waiter
    this.waiter = undefined
    w?.(failure)
  }

  /** Hands the chunk ids nothing references any more to the next native call. */
  private prepare(): void {
    const io = this.io
    const releases = this.releases
    const n = Math.min(this.released, Io.releaseMax)
    for (let i = 0; i < n; i++) io[Io.releaseBase + i] = releases[i]!
    io[Io.releases] = n
    // (Never more than releaseMax are waiting: release() hands them over at that count.)
    this.released = 0
  }

  /**
   * Reads a call's results (all of them first: the callbacks below may call in again); `out` is
   * where the call put plaintext (the scratch view, or room the sink reserved).
   */
  private after(ev: number, out: Uint8Array = this.plain): void {
    const io = this.io
    const spans = io[Io.spans]!
    const plainLen = io[Io.plain]!
    for (let i = 0; i < spans; i++) {
      const b = Io.spanBase + 3 * i
      const id = io[b]!
      this.refs.add(id)
      this.sink.ciphertext(io[b + 1]!, io[b + 2]!, id)
    }
    if ((ev & Ev.HandshakeDone) !== 0) {
      this.handshakeDone = true
      this.settle(undefined)
    }
    if (out !== this.plain) this.sink.written(plainLen)
    else if (plainLen > 0) this.sink.plaintext(this.plain.subarray(0, plainLen))
    if ((ev & Ev.Error) !== 0 && this.failure === undefined) {
      const detail = this.session.error() ?? "protocol error"
      this.failure = new TlsError({ reason: "Protocol", operation: this.handshakeDone ? "read" : "handshake", detail })
      if (!this.handshakeDone) {
        const verifyError = this.session.info().verifyError
        this.settle({ detail, verify: verifyError !== null && verifyError === detail })
      }
      this.sink.fail(this.failure)
    }
    if ((ev & Ev.CloseNotify) !== 0 && !this.closeNotifyReceived) {
      this.closeNotifyReceived = true
      this.sink.ended()
    }
  }
}

/** The native addon's TLS classes. */
export const native = () => load()

/** A native session writing its results into this thread's io area. */
export const newSession = (
  context: Native.TlsContext,
  options: { servername?: string; verifyHost?: string; verifyIp?: string; sessionKey?: string } | undefined
): Native.TlsSession => new (load().TlsSession)(context, shared().io, options)

/**
 * The seam under a stream connection: what the generic connection (channel.ts, which owns
 * reassembly, parsers, the send queue, backpressure, the close state machine and the TLS
 * transform hooks) needs from whatever moves its bytes. The io_uring implementation is
 * ringWire.ts; the in-memory test Layer (RinglineTest) implements the same interface.
 *
 * Two halves, both monomorphic method calls, nothing allocated per op by the seam itself:
 * - `Wire`: called by the channel (start/stop receiving, send segments, shut down, close, ...);
 * - `WireSink`: implemented by the channel, called back by the wire when an op completes.
 *
 * Contract (the kernel's semantics, which the test Layer must keep too):
 *
 * Receive memory. Received bytes sit in the wire's receive buffers, named by an integer `buf`.
 * `sink.received(buf, len)` hands one over; from then on the channel owns it until it calls
 * `recycle(buf)` (inside the completion call) or `recycleLater(buf)` (from a reader's fiber,
 * outside any completion). `view(buf, offset, len)` returns the bytes; a view must never be used
 * after the buffer was given back (parsers are told: copy what you keep). The channel holds at
 * most one buffer unrecycled while a reader is waiting (the zero-copy parse of a provided buffer);
 * every other buffer is copied into its reassembly buffer and recycled in the same call.
 *
 * Lending. `lend(view)` lets a send point into a receive buffer (echoing a parsed view without a
 * copy): it answers the buffer's id (the buffer is not reused until `giveBack(id)`, even if
 * recycled meanwhile) or -1 when the view is not in a receive buffer or the wire lends no more.
 * A wire that never lends answers -1; `owns(buffer)` must still say whether an ArrayBuffer is
 * receive memory, so that the channel copies writes of such views.
 *
 * Receiving. `syncReceive()` makes the wire's state match `sink.wantsData`: arms the receive when
 * wanted and not armed, cancels it when armed and no longer wanted. Paused receiving may still
 * deliver what was already in flight (a cancel races with completions). `receiving` stays true
 * until the receive has completely stopped (its terminal completion arrived), which the close
 * state machine waits for: every terminal completion of a receive is followed by
 * `sink.receiveStopped()` (after a cancel, an end, an error, or the wire parking it because
 * receive buffers ran out, which it re-arms by itself later without telling the channel). The end
 * of the stream is `sink.receiveEnded(0)`; a receive error `sink.receiveEnded(-errno)`; a cancel
 * the channel asked for is not an end.
 *
 * Sending. At most one send is in flight. `send(segments, count, zeroCopy)` sends the first
 * `count` segments of the array, gathered, in order, from `segment.sent` on; the wire pins their
 * memory until it reports them. `sink.sent(segments, res)` follows: `res` >= 0 bytes taken (maybe
 * fewer than asked, a short send: the channel continues from there), or -errno. With `zeroCopy`
 * the kernel may still read the memory after `sent`: `sink.sent(segments, res, true)` says
 * notifications follow, one `sink.released(segments, copied)` per such send once the memory is
 * free; `copied` when the kernel copied the bytes after all (zero-copy bought nothing there).
 * `sendChain(segments, count)` (optional: a wire without it gets ordinary sends) submits linked
 * sends that run back to back, each segment whole; `sink.chainLink(segment, res)` reports each
 * link, in order. `cancelSend()` stops the send or chain in flight (its completion still comes).
 *
 * Segment memory. A segment points at `data` (a Uint8Array), a slot of the wire's send pool
 * (`pool`, filled with `fillSlot`; address `slotAddress`), a lent receive buffer (`bid` + `data`),
 * or transport memory (`addr` + `token`, TLS ciphertext at a native address). The channel gives
 * pool slots back with `giveSlot` and lent buffers with `giveBack` once the wire reported the
 * segment done. A wire without a pool has `slotSize` 0 (every small write is copied instead).
 *
 * Closing. `shutdownWrite(done)` half-closes (FIN) and calls `done(res)`. `close()` is called once,
 * when nothing is in flight but what the wire itself owns (no send, receive stopped); the wire
 * calls `sink.closed()` exactly once after the socket is closed and every op of this connection
 * has completed. After that only `addresses` and the socket options may still be called (they answer
 * known addresses, or fail with ConnectionClosed).
 *
 * Callbacks may fire only from the wire's completion dispatch (or, for an in-memory wire, from a
 * microtask/timer of its own), never re-entrantly from inside a `Wire` method call, with the one
 * exception of `sink.closed()`, which may follow directly from `close()` when nothing is pending.
 */
import type { Address } from "../../Address.js"

/** Success or failure of a callback-style operation (no Effect on the hot path). */
export interface Callbacks<A> {
  ok(value: A): void
  fail(error: unknown, defect?: boolean): void
}

/** A queued run of bytes; see "Segment memory" above. Mutable: the send queue advances `sent`. */
export interface Segment {
  /** The bytes (caller's, a private copy, or a lent view); null for pool and transport memory. */
  data: Uint8Array | null
  /** Send-pool slot, or -1. */
  pool: number
  /** Receive buffer lent to this send (echo of a parsed view), or -1. */
  bid: number
  /** Native address of the first byte, or 0 until the wire resolves it from `data`. */
  addr: number
  len: number
  /** Bytes of this segment the wire has taken so far. */
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

/** Both addresses of a connected socket. */
export interface Addresses {
  readonly local: Address
  readonly peer: Address
}

/** What a wire reports back; implemented by the channel. */
export interface WireSink {
  /** Whether the channel wants bytes now (read by `syncReceive` and by a wire re-arming itself). */
  readonly wantsData: boolean
  /** `len` (> 0) bytes arrived in receive buffer `buf`, which the channel now owns. */
  received(buf: number, len: number): void
  /** The stream ended: 0 at end of stream (FIN), -errno on a receive error. */
  receiveEnded(res: number): void
  /** The armed receive has stopped (terminal completion); `receiving` may be true again if re-armed. */
  receiveStopped(): void
  /** The send of `segments[0..count)` completed: `res` bytes taken, or -errno. */
  sent(segments: ReadonlyArray<Segment>, res: number, notifications: boolean): void
  /**
   * A zero-copy send's memory is free again (one call per send that announced notifications);
   * `copied`: the kernel copied the bytes anyway (loopback, a device without scatter-gather).
   */
  released(segments: ReadonlyArray<Segment>, copied: boolean): void
  /** One link of a chain completed: `res` bytes of `segment`, or -errno (-ECANCELED after a failed link). */
  chainLink(segment: Segment, res: number): void
  /** Every op of this connection is over and the socket is closed. */
  closed(): void
}

/** The kernel-facing side of one stream connection; see the file header for the contract. */
export interface Wire {
  readonly kind: "tcp" | "unix"
  /** Called once, before anything else: where completions go. */
  bind(sink: WireSink): void

  // receive
  syncReceive(): void
  /** A receive is armed or still being cancelled. */
  readonly receiving: boolean
  view(buf: number, offset: number, len: number): Uint8Array
  recycle(buf: number): void
  recycleLater(buf: number): void
  lend(view: Uint8Array): number
  giveBack(buf: number): void
  owns(buffer: ArrayBufferLike): boolean

  // send
  /**
   * Sends may point at native memory (segments without `data`: pool slots, a transport's
   * ciphertext). False for a wire that reads every segment's bytes from `data`.
   */
  readonly addressable: boolean
  /** Most segments one `send` takes (an iovec array's length). */
  readonly maxGather: number
  send(segments: ReadonlyArray<Segment>, count: number, zeroCopy: boolean): void
  /** Linked sends; absent when the wire cannot link (chains then go out as ordinary sends). */
  sendChain?(segments: ReadonlyArray<Segment>, count: number): void
  cancelSend(): void
  /**
   * Called from `sink.received`: what the channel's readers answer to these bytes should reach
   * the kernel before the wire reports anything else (the ring's early turn: the woken fibers
   * run and their sends are submitted before the batch's next completion). Optional: a wire
   * that delivers one callback per turn anyway has nothing to hurry.
   */
  hurry?(): void
  /** Bytes per send-pool slot; 0 when the wire has no pool. */
  readonly slotSize: number
  /** A free pool slot, or -1. */
  takeSlot(): number
  fillSlot(slot: number, offset: number, bytes: Uint8Array): void
  slotAddress(slot: number): number
  giveSlot(slot: number): void

  // lifecycle
  shutdownWrite(done: (res: number) => void): void
  close(): void
  addresses(cb: Callbacks<Addresses>): void
  /** An integer socket option (getsockopt). */
  intOption(level: number, name: number, cb: Callbacks<number>): void
  /** Sets an integer socket option (setsockopt). */
  setIntOption(level: number, name: number, value: number, cb: Callbacks<void>): void

  // accounting (the wire's owner keeps the totals)
  countError(code: string): void
  countPause(): void
}

/** Per-connection policy the channel applies over any wire. */
export interface ChannelOptions {
  /** Queued bytes above which writes wait and receiving pauses. */
  readonly highWater: number
  /** Queued bytes at which they resume. */
  readonly lowWater: number
  /** Sends at least this large go out zero-copy (0: never). */
  readonly zeroCopyThreshold: number
  /** Most links per chain (0: chains are ordinary sends). */
  readonly maxChainLength: number
}

/**
 * The receive side's bytes: the reassembly buffer, the one receive buffer a waiting reader may
 * parse in place (zero-copy), and the guarded call of a user parser. Knows nothing of sockets:
 * it asks its wire only for receive-buffer views and gives buffers back through it.
 */
import type { EndOfStream, SocketError, ConnectionClosed, TlsError } from "../../RinglineError.js"
import { noteRun } from "../mallocPolicy.js"
import { KeepSlab } from "./keepSlab.js"
import { LEND_MIN } from "./sendQueue.js"
import { show } from "../validate.js"
import type { Wire } from "./wire.js"

/** What a `read` parser answers. */
export type ReadResult<A> =
  | { readonly _tag: "Done"; readonly consumed: number; readonly value: A }
  | { readonly _tag: "NeedMore"; readonly atLeast: number }

/** Errors of a read. */
export type ReadError = EndOfStream | SocketError | ConnectionClosed | TlsError

export type Answer<A> =
  | { readonly _tag: "Done"; readonly consumed: number; readonly value: A }
  | { readonly _tag: "NeedMore"; readonly atLeast: number }
  | { readonly _tag: "Bad"; readonly defect: unknown }

export const EMPTY = new Uint8Array(0)

/**
 * Calls a user parser and checks its answer. Nothing the parser does (throw, return garbage,
 * answer through throwing getters) escapes: it becomes a `Bad` answer carrying a defect that
 * names what was returned.
 */
export const runParser = <A>(parse: (bytes: Uint8Array) => ReadResult<A>, bytes: Uint8Array): Answer<A> => {
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
        defect: new RangeError(`read parser consumed ${show(consumed)} of ${bytes.length} bytes (must be an integer 0..${bytes.length})`)
      }
    }
    if (tag === "NeedMore") {
      const atLeast = r.atLeast === undefined ? 0 : r.atLeast
      if (typeof atLeast === "number" && atLeast >= 0 && !Number.isNaN(atLeast)) return { _tag: "NeedMore", atLeast }
      return { _tag: "Bad", defect: new RangeError(`read parser answered needMore(${show(atLeast)}): atLeast must be a number >= 0`) }
    }
  } catch (defect) {
    return { _tag: "Bad", defect }
  }
  return {
    _tag: "Bad",
    defect: new TypeError(`read parser returned ${show(result)}; expected done(consumed, value) or needMore(atLeast?)`)
  }
}

/**
 * `n` bytes of fresh memory in an ArrayBuffer of their own, not zero-filled (every byte is
 * written before anyone reads it; zeroing a 64 KiB buffer costs as much as copying into it).
 */
export const uninitialized = (n: number): Uint8Array => {
  noteRun(n)
  const b = Buffer.allocUnsafeSlow(n)
  return new Uint8Array(b.buffer, b.byteOffset, n)
}

/**
 * A copy of `bytes` in memory of its own (a chunk handed to the user). Small ones through
 * `slice` (V8 allocates those cheaply, zeroing is nothing next to a native buffer allocation).
 */
export const copyOf = (bytes: Uint8Array): Uint8Array => {
  if (bytes.length < 4096) return bytes.slice()
  const out = uninitialized(bytes.length)
  out.set(bytes)
  return out
}

/**
 * At most this many receive buffers are held for one waiting reader (the rest of a completion
 * batch is copied): holding takes buffers out of the provided ring until the reader runs, which
 * is the end of the batch, but a ring shared by many connections must not run dry for it.
 */
const HOLD_MAX = 8

/**
 * Received bytes not yet consumed: a growable reassembly buffer, plus receive buffers held as
 * they are (received while a reader waited with nothing buffered). One held buffer is parsed in
 * place (zero-copy); several (a completion batch brought more than one receive for the reader)
 * are copied once, together, into a buffer of exactly their size when the reader looks: the
 * reader usually takes them whole, so that buffer is handed over full (no unwritten tail to
 * zero, no regrowth), where appending them one by one as they came grew a buffer of twice the
 * previous size and zeroed what the run left of it. Held buffers, when there are any, come
 * after nothing: either they or the reassembly buffer have bytes, never both once a parse starts.
 *
 * Pieces. A reader that only needs a prefix (a `read` parser: an echo, a framing parser) can be
 * shown the first of several held buffers alone (`piece`): when it takes that buffer whole, the
 * next one becomes the first, still uncopied, and a write of the parsed view is sent from the
 * receive buffer itself (the channel lends it). Only a parser that needs more than the piece
 * sees the buffers copied together. (Measured at bulk c16, 64 KiB writes: 75-90 % of received
 * bytes reached the reader as several held buffers, which copying together made the rule.)
 *
 * Handing over. A reader that takes the whole buffered run as its own (a `recv` chunk), or a
 * write of a parser's view of it, can have the reassembly memory itself instead of a copy
 * (`keep`): the buffer is then frozen, never written again, and the next append starts a new
 * one. Bytes still unconsumed in a frozen buffer stay readable there until that append moves them.
 */
export class Reassembly {
  private buf: Uint8Array = EMPTY
  private start = 0
  private end = 0
  /** `buf` was handed over: it is read, never written (see "Handing over"). */
  private frozen = false
  /** The first receive buffer held for the waiting reader, or -1; its length. */
  private held = -1
  private firstLen = 0
  /** Bytes in every held receive buffer. */
  private heldLen = 0
  /** Held receive buffers after the first, as (buffer, length) pairs; made on first use. */
  private more: Array<number> | undefined = undefined
  /** Where `keep` copies small chunks; made on first use. */
  private slab: KeepSlab | undefined = undefined

  constructor(private readonly wire: Wire) {}

  /** Bytes received and not yet consumed. */
  get size(): number {
    return this.end - this.start + this.heldLen
  }

  /** Bytes in the reassembly buffer (not counting held receive buffers). */
  get copied(): number {
    return this.end - this.start
  }

  /** More than one receive buffer is held (they are one view only once copied together). */
  private get several(): boolean {
    return this.more !== undefined && this.more.length > 0
  }

  /** Whether `buffer` is this reassembly buffer's memory (a parser's view of it). */
  isMine(buffer: ArrayBufferLike): boolean {
    return buffer === this.buf.buffer
  }

  /**
   * Holds receive buffer `buf` as is while a reader waits (`need`: the bytes it waits for, -1
   * for none) and nothing else is buffered; else copies it. A further buffer is held only when
   * what is held already wakes the reader (which then runs at the end of this completion
   * batch): one that waits for more would hold buffers for as long as its peer trickles.
   */
  receive(buf: number, len: number, need: number): void {
    if (need >= 0 && this.end === this.start) {
      if (this.held === -1) {
        this.held = buf
        this.firstLen = this.heldLen = len
        return
      }
      const more = this.more ??= []
      if (this.heldLen >= need && more.length < 2 * (HOLD_MAX - 1)) {
        more.push(buf, len)
        this.heldLen += len
        return
      }
    }
    this.unhold(len)
    this.append(this.wire.view(buf, 0, len))
    // The view must not be used past this point: the buffer is the wire's again.
    this.wire.recycle(buf)
  }

  /**
   * Copies the held receive buffers into the reassembly buffer (room for `extra` bytes more
   * made at the same time) and gives them back; the first buffer's first `skip` bytes are
   * dropped (consumed by a parser that saw only that buffer, see `piece`).
   */
  unhold(extra = 0, skip = 0): void {
    if (this.held === -1) return
    this.reserve(this.heldLen - skip + extra)
    const bid = this.held
    this.held = -1
    if (skip < this.firstLen) this.append(this.wire.view(bid, skip, this.firstLen - skip))
    this.wire.recycleLater(bid)
    const more = this.more
    if (more !== undefined && more.length > 0) {
      for (let i = 0; i < more.length; i += 2) {
        this.append(this.wire.view(more[i]!, 0, more[i + 1]!))
        this.wire.recycleLater(more[i]!)
      }
      more.length = 0
    }
    this.firstLen = this.heldLen = 0
  }

  /**
   * Room for `n` more bytes. Nothing buffered (or only a frozen buffer's rest): a buffer of
   * exactly what is buffered plus `n`, since the reader takes what is there; else the usual
   * doubling.
   */
  private reserve(n: number): void {
    if (!this.frozen && this.end + n <= this.buf.length) return
    const live = this.end - this.start
    if (live === 0 || this.frozen) this.regrow(live + n)
  }

  private regrow(size: number): void {
    const live = this.end - this.start
    const grown = uninitialized(size)
    grown.set(this.buf.subarray(this.start, this.end))
    this.buf = grown
    this.frozen = false
    this.start = 0
    this.end = live
  }

  append(bytes: Uint8Array): void {
    this.room(bytes.length)
    this.buf.set(bytes, this.end)
    this.end += bytes.length
  }

  /**
   * `n` writable bytes right after the buffered ones (a transport decrypts into them instead of
   * into memory of its own that `append` would then copy); `commit` says how many it wrote.
   * Nothing else may touch this reassembly in between. Ask for what will probably be written:
   * a large unused tail makes the buffer fail `keep`'s hand-over test. Sized like `append`
   * (4 KiB at least), not exactly like `reserve`: a small record in a buffer of its own size
   * would be handed over, and the next one would need a fresh native buffer each time.
   */
  tail(n: number): Uint8Array {
    this.unhold()
    this.room(n)
    return this.buf.subarray(this.end, this.end + n)
  }

  /** `n` bytes of the last `tail` were written. */
  commit(n: number): void {
    this.end += n
  }

  /** Makes room for `len` more bytes at `end` (moving or regrowing; see "Handing over"). */
  private room(len: number): void {
    if (this.frozen || this.end + len > this.buf.length) {
      const live = this.end - this.start
      if (!this.frozen && this.start > 0 && live + len <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end)
        this.start = 0
        this.end = live
      } else {
        // A frozen buffer's successor keeps its size: a stream that hands over every run would
        // otherwise regrow (and copy) from 4 KiB each time.
        this.regrow(Math.max(live + len, this.frozen ? this.buf.length : this.buf.length * 2, 4096))
      }
    }
  }

  /**
   * `bytes` (a parser's view of what is buffered) as memory the caller may keep: the reassembly
   * buffer itself when `bytes` is in it and fills at least half of it (it is frozen, see
   * "Handing over"; a small run is copied rather than pinning a large buffer), else a copy (a
   * small one into this connection's slab, see keepSlab.ts).
   */
  keep(bytes: Uint8Array): Uint8Array {
    if (this.handOver(bytes)) return bytes
    if (KeepSlab.fits(bytes.length)) return (this.slab ??= new KeepSlab()).copy(bytes)
    return copyOf(bytes)
  }

  /**
   * Freezes the reassembly buffer when `bytes` is a view of it worth handing over (see `keep`);
   * false when `bytes` is not in it or is too small a part of it (the caller copies).
   */
  handOver(bytes: Uint8Array): boolean {
    if (bytes.buffer !== this.buf.buffer || bytes.length * 2 < this.buf.length) return false
    // The buffer came uninitialized: its unwritten tail may hold whatever that memory held
    // before (other connections' bytes). The user can reach it through `bytes.buffer`: zero it.
    if (!this.frozen) this.buf.fill(0, this.end)
    this.frozen = true
    return true
  }

  /** Everything buffered as one view for a parser (the held buffer itself when only one is held). */
  view(): Uint8Array {
    if (this.several) this.unhold()
    return this.held !== -1 ? this.wire.view(this.held, 0, this.firstLen) : this.buf.subarray(this.start, this.end)
  }

  /**
   * The first held receive buffer alone when several are held (a parser may take it whole, and
   * a write of it is then sent from the receive buffer: see "Pieces"), else undefined; also
   * when it is too small to be lent (LEND_MIN): one copy of small requests costs less than a
   * read per receive (64 B echo at depth 16 brings several small receives per batch).
   */
  piece(): Uint8Array | undefined {
    return this.several && this.firstLen >= LEND_MIN ? this.wire.view(this.held, 0, this.firstLen) : undefined
  }

  /**
   * A parser used `n` bytes of `piece()`: the whole first buffer goes back and the next held
   * one becomes the first (no copy); a part of it moves its rest and the other held buffers
   * into the reassembly buffer.
   */
  consumePiece(n: number): void {
    if (n < this.firstLen) return this.unhold(0, n)
    this.wire.recycleLater(this.held)
    const more = this.more!
    this.heldLen -= this.firstLen
    this.held = more[0]!
    this.firstLen = more[1]!
    more.splice(0, 2)
  }

  /** How many receive buffers are held (0 when none). */
  get heldCount(): number {
    return this.held === -1 ? 0 : 1 + (this.more === undefined ? 0 : this.more.length >> 1)
  }

  /** The parser used `n` bytes: drop them (a held buffer's rest moves to the reassembly buffer). */
  consume(n: number): void {
    // Several held buffers were one view only once copied together (`view`).
    if (this.several) this.unhold()
    if (this.held !== -1) {
      const bid = this.held
      this.held = -1
      if (n < this.firstLen) this.append(this.wire.view(bid, n, this.firstLen - n))
      this.firstLen = this.heldLen = 0
      this.wire.recycleLater(bid)
    } else {
      this.start += n
      if (this.start === this.end) this.start = this.end = 0
    }
  }

  /** A copy of every buffered byte. */
  leftover(): Uint8Array {
    this.unhold()
    return this.buf.slice(this.start, this.end)
  }

  /** A copy of every buffered byte, which are dropped (bytes that turn out to be ciphertext). */
  takeAll(): Uint8Array {
    const all = this.leftover()
    this.start = this.end = 0
    return all
  }

  /** Drops everything (the connection closed); held buffers go back. */
  clear(): void {
    this.buf = EMPTY
    this.frozen = false
    this.start = this.end = 0
    if (this.held !== -1) {
      this.wire.recycleLater(this.held)
      this.held = -1
      this.firstLen = this.heldLen = 0
      const more = this.more
      if (more !== undefined) {
        for (let i = 0; i < more.length; i += 2) this.wire.recycleLater(more[i]!)
        more.length = 0
      }
    }
  }
}

/**
 * Bodies of cross-worker messages: one single-producer single-consumer byte ring per ordered pair
 * of workers (i → j), all in one SharedArrayBuffer made by the launcher. The wake-up travels as
 * an IORING_OP_MSG_RING CQE (msgRing.ts), so neither side needs the main thread's event loop.
 *
 * Box layout: Int32 head (consumer's), Int32 tail (producer's), 8 bytes padding, then `cap` bytes
 * of records [u32 length][bytes, padded to 4]. head/tail are free-running u32 counters (cap is a
 * power of two, so `counter & (cap - 1)` is the position even after they wrap). A record that
 * would not fit before the end is preceded by a wrap mark (length 0xffffffff) and starts at 0.
 * The producer publishes with Atomics.store(tail) after writing the bytes; the consumer frees with
 * Atomics.store(head) after copying one out.
 */
const HEADER = 16
const WRAP = 0xffffffff

export const mailboxBytes = (workers: number, cap: number): number => workers * workers * (HEADER + cap)

export class Mailboxes {
  private readonly words: Int32Array
  private readonly bytes: Uint8Array
  private readonly view: DataView
  private readonly mask: number

  constructor(readonly sab: SharedArrayBuffer, readonly workers: number, readonly cap: number) {
    this.words = new Int32Array(sab)
    this.bytes = new Uint8Array(sab)
    this.view = new DataView(sab)
    this.mask = cap - 1
  }

  private base(from: number, to: number): number {
    return (from * this.workers + to) * (HEADER + this.cap)
  }

  /** Largest body that always fits in an empty box, wherever its counters stand. */
  get maxBody(): number {
    return this.cap / 2 - 4
  }

  /** Appends `body` to the box from → to; false when the box has no room for it now. */
  put(from: number, to: number, body: Uint8Array): boolean {
    const b = this.base(from, to)
    const hw = b >> 2
    const head = Atomics.load(this.words, hw) >>> 0
    const tail = Atomics.load(this.words, hw + 1) >>> 0
    const free = this.cap - ((tail - head) >>> 0)
    const need = 4 + ((body.length + 3) & ~3)
    const pos = tail & this.mask
    const contiguous = this.cap - pos
    const skip = need > contiguous ? contiguous : 0
    if (need + skip > free) return false
    const data = b + HEADER
    if (skip > 0) this.view.setUint32(data + pos, WRAP, true)
    const at = skip > 0 ? 0 : pos
    this.view.setUint32(data + at, body.length, true)
    this.bytes.set(body, data + at + 4)
    Atomics.store(this.words, hw + 1, (tail + skip + need) | 0)
    return true
  }

  /**
   * Takes the oldest body waiting in the box from → to (a copy; its space is freed), or undefined.
   * One wake-up announces one body, so the receiver takes one per wake-up it handles: a receiver
   * that does not read leaves the bodies in the box, and the sender sees MailboxFull.
   */
  take(from: number, to: number): Uint8Array | undefined {
    const b = this.base(from, to)
    const hw = b >> 2
    let head = Atomics.load(this.words, hw) >>> 0
    const tail = Atomics.load(this.words, hw + 1) >>> 0
    const data = b + HEADER
    while (head !== tail) {
      const pos = head & this.mask
      const len = this.view.getUint32(data + pos, true)
      if (len === WRAP) {
        head = (head + this.cap - pos) >>> 0
        continue
      }
      const body = this.bytes.slice(data + pos + 4, data + pos + 4 + len)
      Atomics.store(this.words, hw, (head + 4 + ((len + 3) & ~3)) | 0)
      return body
    }
    Atomics.store(this.words, hw, head | 0)
    return undefined
  }
}

/**
 * Memory for the small chunks one connection's readers keep (a `recv` chunk, a serveChunks
 * chunk, the platform Socket's): copies carved one after the other out of a slab of this
 * connection's own, instead of an ArrayBuffer each.
 *
 * Why: a typed array of more than 64 bytes cannot live on V8's heap, so `slice()` of a 1 KiB
 * receive allocates a backing store (malloc, an ArrayBuffer, external-memory accounting) that the
 * young generation's sweeper frees again: ~10× the cost of a view over existing memory, once per
 * received chunk (bench/README, "Stream mode per chunk"). A view into a slab costs an object.
 *
 * What a user can reach: `chunk.buffer` is the slab, which holds this connection's earlier
 * chunks (bytes its reader already had) and zeros (a fresh ArrayBuffer), never another
 * connection's bytes or stale memory. Transferring a chunk's buffer detaches the slab: the next
 * copy sees a detached buffer (byteLength 0) and starts a new slab.
 *
 * How long a slab lives: the connection refers to it only through a WeakRef, so an idle
 * connection does not keep one. Scavenges keep WeakRef targets; the next full collection frees
 * a slab no chunk refers to any more.
 */

/** Bytes per slab: 16 chunks of 1 KiB (a 64 B echo 16 deep). */
const SLAB = 16384

/**
 * Copies this small or smaller stay `slice()`s: V8 keeps a typed array of at most 64 bytes on its
 * own heap (no backing store to allocate), which is as cheap as a view.
 */
const ON_HEAP_MAX = 64

/** Larger copies get memory of their own (a slab holds at least four). */
export const SLAB_CHUNK_MAX = SLAB / 4

/** One connection's slab: where the next copy goes. */
export class KeepSlab {
  private weak: WeakRef<ArrayBuffer> | undefined = undefined
  private used = 0

  /** Whether `n` bytes are copied here (else the caller copies them into memory of their own). */
  static fits(n: number): boolean {
    return n > ON_HEAP_MAX && n <= SLAB_CHUNK_MAX
  }

  /** A copy of `bytes` (for which `fits` holds) in this connection's slab. */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length
    let slab = this.weak?.deref()
    // Detached (a transfer) reads as byteLength 0: a new slab then too.
    if (slab === undefined || slab.byteLength - this.used < n) {
      slab = new ArrayBuffer(SLAB)
      this.weak = new WeakRef(slab)
      this.used = 0
    }
    const out = new Uint8Array(slab, this.used, n)
    out.set(bytes)
    // 8-byte aligned, as a fresh ArrayBuffer is: a Float64Array over a chunk still works.
    this.used += (n + 7) & ~7
    return out
  }
}

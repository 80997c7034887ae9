/**
 * The seam between a connection's socket and its byte stream: a Transport (TLS) sees every
 * received byte before reassembly and every queued byte before the send queue. Without one a
 * connection moves bytes unchanged.
 *
 *   kernel bytes ──receive──▶ transport ──sink.plaintext──▶ readers (same view rules as plain bytes)
 *   enqueue ──send──▶ transport ──sink.ciphertext──▶ ordered send queue (same backpressure)
 *
 * Ciphertext segments point at transport-owned memory (`addr`); `release(token)` hands it back
 * once the kernel is done with it, and `dispose` runs after every op of the connection ended.
 */
import type { TlsError } from "../RinglineError.js"

export interface TransportSink {
  /** Bytes for the readers; valid only during the call (like a provided buffer). */
  plaintext(bytes: Uint8Array): void
  /**
   * Room for up to `n` bytes of plaintext at the end of the readers' buffer, to write into
   * directly (saves `plaintext`'s copy); `written` then says how many were. Valid until
   * `written`; no other sink call may come in between.
   */
  reserve(n: number): Uint8Array
  /** `n` bytes of the last `reserve` hold plaintext for the readers. */
  written(n: number): void
  /** Bytes to send, in order, from transport memory that stays put until `release(token)`. */
  ciphertext(addr: number, len: number, token: number): void
  /** The peer ended the stream cleanly (TLS close_notify). */
  ended(): void
  /** A fatal error: readers and later writes fail with it. */
  fail(error: TlsError): void
}

export interface Transport {
  receive(bytes: Uint8Array): void
  /** Plaintext to send; undefined when queued (as ciphertext), else why not. */
  send(bytes: Uint8Array): TlsError | undefined
  /** The socket reported end of stream (`error` undefined: FIN) or an error; returns what readers get. */
  end(error: unknown): unknown
  /** No more writes: queue the closing message (close_notify). */
  close(): void
  release(token: number): void
  /**
   * A copy of ciphertext it handed to `sink.ciphertext`, for a wire that sends from JS memory
   * only (RinglineTest's in-memory network): the channel copies, then releases the token at once.
   */
  copy(addr: number, len: number, token: number): Uint8Array
  /** Every op of the connection has ended: free what the transport holds. */
  dispose(): void
}

/**
 * Memory a transport lends to parsers (its plaintext views): like receive buffers, it is reused
 * as soon as the parser returns, so a write of such a view must be copied.
 */
export const lentBuffers = new WeakSet<ArrayBufferLike>()

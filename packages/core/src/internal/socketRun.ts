/**
 * The per-chunk machinery of the platform socket's `run` (../RinglineSocket.ts) on a ringline
 * connection, without a fiber per chunk:
 * - {@link pushReads}: the connection hands every chunk to `run`'s handler as it arrives, like a
 *   net.Socket "data" event (what `NodeSocket.run` is built on), instead of a fiber waking up
 *   for each `recv`;
 * - {@link DirectWrites}: bytes the handler asked to write (`socket.run(write)`) are queued on
 *   the connection at once, and one watcher per connection (not one fiber per write) learns
 *   when the kernel took them or that the send failed.
 */
import { Effect, Exit } from "effect"
import type { Channel } from "./net/channel.js"
import type { ReadError, ReadResult } from "./net/readers.js"

const END: ReadResult<null> = { _tag: "Done", consumed: 0, value: null }

/**
 * Calls `deliver` with every chunk the connection receives (everything buffered
 * at that moment), from the completion that brought it, until end of stream (then succeeds) or
 * a receive error (fails with `toError` of it). A throwing `deliver` ends it with that defect.
 *
 * Interrupting it stops the delivery: bytes not yet delivered stay buffered for the next reader;
 * what was delivered belongs to `deliver`. It takes its place among the connection's readers,
 * so reads started elsewhere at the same time are served in turn, as with `recv`.
 */
export const pushReads = <E>(
  conn: Channel,
  deliver: (chunk: Uint8Array) => void,
  toError: (error: Exclude<ReadError, { readonly _tag: "EndOfStream" }>) => E
): Effect.Effect<void, E> =>
  Effect.async<void, E>((resume) => {
    // Everything buffered, as memory `deliver` keeps; null at end of stream.
    const takeAll = (bytes: Uint8Array): ReadResult<Uint8Array | null> =>
      bytes.length === 0 ? END : { _tag: "Done", consumed: bytes.length, value: conn.keep(bytes) }
    const w = conn.readers.waiter()
    let ended = false
    const wake = (): void => {
      if (ended) return
      // tryRead takes the bytes and leaves the queue (or answers undefined: not our turn yet).
      const exit = conn.tryRead(takeAll, w)
      if (exit === undefined) return conn.readers.wait(w, wake)
      if (Exit.isFailure(exit)) {
        ended = true
        return resume(Effect.mapError(exit, (e) => toError(e as Exclude<ReadError, { readonly _tag: "EndOfStream" }>)))
      }
      if (exit.value === null) {
        ended = true
        return resume(Effect.void)
      }
      try {
        deliver(exit.value)
      } catch (defect) {
        ended = true
        return resume(Effect.die(defect))
      }
      if (!ended) conn.readers.wait(w, wake)
    }
    conn.readers.wait(w, wake)
    return Effect.sync(() => {
      ended = true
      conn.readers.withdraw(w)
    })
  })

/**
 * Writes queued straight on a connection on behalf of `run`'s handler. `onFail` hears the first
 * failure (refused at queueing, or a later send error); {@link settled} waits until the kernel
 * took every byte queued here.
 */
export class DirectWrites {
  /** Stream offset after the last byte queued here. */
  private target = 0
  /** Offset the watcher waits for, or -1 when none is registered. */
  private watched = -1
  private unwatch: (() => void) | undefined
  private failed = false
  private onSettled: (() => void) | undefined

  constructor(private readonly conn: Channel, private readonly onFail: (error: unknown) => void) {}

  /** Queues `bytes` behind everything queued before on the connection. */
  write(bytes: Uint8Array): void {
    if (this.failed) return
    const r = this.conn.enqueue(bytes)
    if (typeof r !== "number") return this.fail(r)
    this.target = r
    if (this.watched === -1) this.watch()
  }

  private watch(): void {
    this.watched = this.target
    this.unwatch = this.conn.whenSent(this.target, this.sent, this.fail)
  }

  private readonly sent = (): void => {
    const reached = this.watched
    this.watched = -1
    this.unwatch = undefined
    // More was queued while the watcher waited: watch the new end.
    if (this.target > reached) return this.watch()
    const f = this.onSettled
    this.onSettled = undefined
    f?.()
  }

  private readonly fail = (error: unknown): void => {
    if (this.failed) return
    this.failed = true
    this.watched = -1
    this.unwatch = undefined
    this.onFail(error)
    const f = this.onSettled
    this.onSettled = undefined
    f?.()
  }

  /** Completes once every byte queued here was taken by the kernel (or a write failed). */
  readonly settled: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.watched === -1) return resume(Effect.void)
    this.onSettled = () => resume(Effect.void)
    return Effect.sync(() => {
      this.onSettled = undefined
    })
  })

  /** Stops watching (run has ended): the bytes still go out, nobody waits for them. */
  dispose(): void {
    this.failed = true
    this.unwatch?.()
    this.unwatch = undefined
    this.watched = -1
  }
}

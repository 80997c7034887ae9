/**
 * The per-chunk machinery of the platform socket's `run` (../RinglineSocket.ts) on a ringline
 * connection, without a fiber per chunk:
 * - {@link pushReads}: the connection hands every chunk to `run`'s handler as it arrives, like a
 *   net.Socket "data" event (what `NodeSocket.run` is built on), instead of a fiber waking up
 *   for each `recv`;
 * - {@link DirectWrites}: bytes the handler asked to write (`socket.run(write)`) are queued on
 *   the connection at once, and one watcher per connection (not one fiber per write) learns
 *   when the kernel took them or that the send failed;
 * - {@link RunState}: the fibers forked for the handler's other effects and how `run` ends,
 *   without a fiber of its own: an idle connection's `run` is its caller's suspended fiber, this
 *   object and a reader registration.
 */
import { Cause, Effect, Exit, Fiber } from "effect"
import type { Channel } from "./net/channel.js"
import type { ReadError, ReadResult } from "./net/readers.js"

const END: ReadResult<null> = { _tag: "Done", consumed: 0, value: null }

/**
 * Calls `deliver` with every chunk the connection receives (everything buffered
 * at that moment), from the completion that brought it, until end of stream (then `onEnd` with
 * a success) or a receive error (`onEnd` with a failure of `toError` of it). A throwing
 * `deliver` ends it with that defect. Registers a callback, not a fiber: an idle connection
 * costs its reader registration only.
 *
 * The returned function stops the delivery (no `onEnd` afterwards): bytes not yet delivered stay
 * buffered for the next reader; what was delivered belongs to `deliver`. It takes its place
 * among the connection's readers, so reads started elsewhere at the same time are served in
 * turn, as with `recv`.
 */
export const pushReads = <E>(
  conn: Channel,
  deliver: (chunk: Uint8Array) => void,
  toError: (error: Exclude<ReadError, { readonly _tag: "EndOfStream" }>) => E,
  onEnd: (exit: Exit.Exit<void, E>) => void
): () => void => {
  // Everything buffered, as memory `deliver` keeps; null at end of stream.
  const takeAll = (bytes: Uint8Array): ReadResult<Uint8Array | null> =>
    bytes.length === 0 ? END : { _tag: "Done", consumed: bytes.length, value: conn.keep(bytes) }
  const w = conn.readers.waiter()
  let ended = false
  let scheduled = false
  // Woken from a completion: the delivery waits until the rest of the completion batch is in
  // (a microtask, after the batch's dispatch). Delivering at each CQE hands `deliver` one copy
  // of a held receive buffer per CQE (a fresh ArrayBuffer each: bulk on one connection ran at
  // a third of the speed); after the batch, the CQEs' bytes are one reassembly run, handed over
  // without a copy.
  const wake = (): void => {
    if (ended || scheduled) return
    scheduled = true
    queueMicrotask(take)
  }
  const take = (): void => {
    scheduled = false
    if (ended) return
    // tryRead takes the bytes and leaves the queue (or answers undefined: not our turn yet).
    const exit = conn.tryRead(takeAll, w)
    if (exit === undefined) return conn.readers.wait(w, wake)
    if (Exit.isFailure(exit)) {
      ended = true
      return onEnd(Exit.failCause(Cause.map(exit.cause, (e) => toError(e as Exclude<ReadError, { readonly _tag: "EndOfStream" }>))))
    }
    if (exit.value === null) {
      ended = true
      return onEnd(Exit.void)
    }
    try {
      deliver(exit.value)
    } catch (defect) {
      ended = true
      return onEnd(Exit.die(defect))
    }
    if (!ended) conn.readers.wait(w, wake)
  }
  conn.readers.wait(w, wake)
  return () => {
    if (ended) return
    ended = true
    conn.readers.withdraw(w)
  }
}

/**
 * Writes queued straight on a connection on behalf of `run`'s handler. `onFail` hears the first
 * failure (refused at queueing, or a later send error); {@link whenSettled} hears when the kernel
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

  /** Calls `f` once every byte queued here was taken by the kernel (or a write failed). */
  whenSettled(f: () => void): void {
    if (this.watched === -1) return f()
    this.onSettled = f
  }

  /** Stops watching (run has ended): the bytes still go out, nobody waits for them. */
  dispose(): void {
    this.failed = true
    this.unwatch?.()
    this.unwatch = undefined
    this.watched = -1
  }
}

/**
 * How one `run` ends, decided by whichever comes first: a failure (receive error, a forked
 * effect's failure or defect, a failed write, a `CloseEvent`) ends it at once; the end of stream
 * ends it once the effects forked for earlier chunks have finished and the queued writes were
 * taken (on the ring the end of stream is often seen in the same turn as the last bytes, and
 * ending at once would interrupt the replies to them). Like `FiberSet`, a forked effect that was
 * only interrupted does not end it.
 */
export class RunState<E> {
  /** Fibers forked for the handler and still running; made on the first fork. */
  private fibers: Set<Fiber.RuntimeFiber<unknown, unknown>> | undefined
  private outcome: Exit.Exit<void, E> | undefined
  private endOfStream = false
  private waiter: ((exit: Exit.Exit<void, E>) => void) | undefined
  /** Set by the owner: stops the delivery of chunks (withdraws the reader). */
  stopReads: (() => void) | undefined
  /** Set by the owner: the writes queued for the handler, whose settling end of stream waits for. */
  writes: DirectWrites | undefined

  constructor(private readonly runFork: (effect: Effect.Effect<unknown, unknown>) => Fiber.RuntimeFiber<unknown, unknown>) {}

  /** Runs `effect` in a fiber of this run: its failure ends the run, the run's end interrupts it. */
  fork(effect: Effect.Effect<unknown, unknown>): void {
    const fiber = this.runFork(effect)
    const fibers = this.fibers ??= new Set()
    fibers.add(fiber)
    fiber.addObserver((exit) => {
      fibers.delete(fiber)
      if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) return this.decide(exit as Exit.Exit<void, E>)
      if (this.endOfStream) this.checkDone()
    })
  }

  /** Whether a forked effect is still running (the handler's next writes must queue behind it). */
  get forking(): boolean {
    return this.fibers !== undefined && this.fibers.size > 0
  }

  /** The read side ended: a failure ends the run now, the end of stream once the rest is done. */
  readonly readsEnded = (exit: Exit.Exit<void, E>): void => {
    if (Exit.isFailure(exit)) return this.decide(exit)
    this.endOfStream = true
    this.checkDone()
  }

  /** Ends the run with `exit` unless it has ended already (the first outcome wins). */
  decide(exit: Exit.Exit<void, E>): void {
    if (this.outcome !== undefined) return
    this.outcome = exit
    const w = this.waiter
    this.waiter = undefined
    w?.(exit)
  }

  private checkDone(): void {
    if (this.outcome !== undefined || this.forking) return
    if (this.writes === undefined) return this.decide(Exit.void)
    this.writes.whenSettled(() => this.decide(Exit.void))
  }

  /** Completes with the run's outcome. */
  await(): Effect.Effect<void, E> {
    return Effect.async<void, E>((resume) => {
      if (this.outcome !== undefined) return resume(this.outcome)
      this.waiter = resume
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
  }

  /**
   * The run's finalizer: stops reading and watching writes, interrupts the forked fibers and
   * waits for them (their writes are queued before the connection's own finalizer drains it).
   */
  stop(): Effect.Effect<void> {
    this.stopReads?.()
    this.writes?.dispose()
    const fibers = this.fibers
    return fibers === undefined || fibers.size === 0 ? Effect.void : Fiber.interruptAll(fibers)
  }
}

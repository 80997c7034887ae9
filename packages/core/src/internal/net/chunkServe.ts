/**
 * One connection served by `Listener.serveChunks` (../../Listener.ts): its chunks handed to the
 * handler from the completion that brought them, with no fiber while the handler's answers are
 * synchronous. An idle connection is this object (itself its channel's read waiter), two
 * closures and the connection; a fiber exists only while an Effect the handler returned runs,
 * and for the close at the end. The listener's side (accepting, tracking for the graceful
 * shutdown, reporting failures) is serve.ts.
 */
import { Cause, Effect, Exit, type Fiber, type Scheduler } from "effect"
import type { Connection } from "../../Connection.js"
import type { SocketError, TlsError } from "../../RinglineError.js"
import type { Waiter } from "../waiters.js"
import type { Channel } from "./channel.js"
import { EMPTY, type ReadResult } from "./readers.js"
import { show } from "../validate.js"

/** What a `serveChunks` handler is called with, and may answer. */
export type ChunkHandler<E, R> = (chunk: Uint8Array, connection: Connection) => void | Effect.Effect<unknown, E, R>

/** Errors that end a served connection besides the handler's own: the receive's. */
export type ReceiveError = SocketError | TlsError

/** What every connection of one `serveChunks` call shares (made once per call, not per connection). */
export interface ChunkServing<E, R> {
  readonly handler: ChunkHandler<E, R>
  /**
   * The scheduler of the fiber that called serveChunks: the ring's dispatch scheduler
   * (../ring/dispatchScheduler.ts) runs a delivery at the end of the completion batch that woke
   * it, inside the dispatch, so the replies it queues go out with that batch's submit.
   */
  readonly scheduler: Scheduler.Scheduler
  /** Forks into the listener's handler set (interrupted by its shutdown). */
  readonly run: (effect: Effect.Effect<unknown, never, R>) => Fiber.RuntimeFiber<unknown, unknown>
  /**
   * The connection's end: forgets it, reports `cause` unless there is none or it is only an
   * interruption, then closes the connection (queued sends drained).
   */
  readonly finish: (serve: ChunkServe<E, R>, cause: Cause.Cause<E | ReceiveError> | undefined) => Effect.Effect<void, never, R>
}

/** Everything buffered, as memory the handler may keep; the empty chunk at end of stream. */
const takeAll = (channel: Channel) => (bytes: Uint8Array): ReadResult<Uint8Array> =>
  ({ _tag: "Done", consumed: bytes.length, value: bytes.length === 0 ? EMPTY : channel.keep(bytes) })

export class ChunkServe<E, R> implements Waiter {
  // Waiter: this object waits in its channel's reader queue itself (no waiter object per connection).
  need = 1
  wake: (() => void) | undefined = undefined
  queued = false
  /** A delivery is queued for after the completion batch. */
  private scheduled = false
  /** The connection's end has begun (finish forked, or about to be). */
  private done = false
  /** The fiber running an Effect the handler returned: chunks wait for it. */
  private fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  private readonly parse: (bytes: Uint8Array) => ReadResult<Uint8Array>

  constructor(
    readonly channel: Channel,
    readonly connection: Connection,
    private readonly serving: ChunkServing<E, R>
  ) {
    this.parse = takeAll(channel)
  }

  /** Starts waiting for the first chunk. */
  start(): void {
    this.channel.readers.wait(this, this.onWake)
  }

  // Woken from a completion: the delivery waits until the rest of the completion batch is in, so
  // a batch's CQEs reach the handler as one chunk (see socketRun.ts's pushReads, where delivering
  // per CQE cost a copy per CQE). Through the ring's dispatch scheduler it runs where a fiber
  // woken by the same completion would: at the end of the batch, inside the dispatch, so what
  // the handler queues goes out with that batch's submit (a microtask would run after it).
  private readonly onWake = (): void => {
    if (this.scheduled || this.done) return
    this.scheduled = true
    this.serving.scheduler.scheduleTask(this.deliver, 0)
  }

  private readonly deliver = (): void => {
    this.scheduled = false
    if (this.done) return
    // tryRead consumes the bytes and leaves the queue, or answers undefined: not our turn yet
    // (a read the handler's own Effect started is ahead).
    const exit = this.channel.tryRead(this.parse, this)
    if (exit === undefined) return this.channel.readers.wait(this, this.onWake)
    if (Exit.isFailure(exit)) {
      // ConnectionClosed: the handler closed its connection itself; nothing to report.
      const failure = Cause.failureOption(exit.cause)
      const closed = failure._tag === "Some" && failure.value._tag === "ConnectionClosed"
      return this.end(closed ? undefined : exit.cause as Cause.Cause<ReceiveError>)
    }
    const chunk = exit.value
    let answer: unknown
    try {
      answer = this.serving.handler(chunk, this.connection)
    } catch (defect) {
      return this.end(Cause.die(defect))
    }
    const last = chunk.length === 0
    if (answer === undefined) {
      if (last) return this.end(undefined)
      return this.channel.readers.wait(this, this.onWake)
    }
    if (!Effect.isEffect(answer)) {
      return this.end(Cause.die(new TypeError(`serveChunks handler returned ${show(answer)}, not undefined or an Effect`)))
    }
    this.fiber = this.serving.run(this.await(answer as Effect.Effect<unknown, E, R>, last))
  }

  /** Runs the handler's Effect; the next chunk is delivered once it succeeded. */
  private await(effect: Effect.Effect<unknown, E, R>, last: boolean): Effect.Effect<unknown, never, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(effect), {
        onFailure: (cause) => this.serving.finish(this, cause),
        onSuccess: () =>
          last ? this.serving.finish(this, undefined) : Effect.sync(() => {
            this.fiber = undefined
            if (!this.done) this.start()
          })
      })
    )
  }

  /** Ends the connection from the delivery (no Effect of the handler's is running). */
  private end(cause: Cause.Cause<E | ReceiveError> | undefined): void {
    this.done = true
    this.channel.readers.withdraw(this)
    this.serving.run(this.serving.finish(this, cause))
  }

  /** Marks the end as begun (finish calls it). */
  ending(): void {
    this.done = true
  }

  /**
   * Ends the connection on the listener's behalf (its graceful shutdown): a running Effect of
   * the handler's is interrupted (its connection then closes), otherwise the delivery stops and
   * the connection closes. Bytes not yet delivered are dropped with the connection.
   */
  stop(): void {
    const fiber = this.fiber
    if (fiber !== undefined) return fiber.unsafeInterruptAsFork(fiber.id())
    if (!this.done) this.end(undefined)
  }
}

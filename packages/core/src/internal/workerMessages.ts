/**
 * A worker's incoming messages (RinglineWorkers `receive`): notifications and "a body from worker
 * `from` waits in the mailbox" markers, queued in arrival order by the ring's message CQEs
 * (msgRing.ts), taken by the fibers that call `receive`.
 *
 * A hand-made queue rather than Effect's `Queue`: a round trip between two workers is a few
 * dozen microseconds of which Effect's queue (a Deferred per take, its taker bookkeeping) was a
 * measurable part, and the take follows the project's lossless rule (waiters.ts): the fiber that
 * returns a message takes it in the same synchronous run, so an interrupted `receive` leaves the
 * message to the next one. A body is copied out of the mailbox only when taken, so an unread
 * mailbox fills and its sender sees MailboxFull.
 */
import { Effect, Exit } from "effect"
import type { WorkerMessage } from "../RinglineWorkers.js"
import type { Mailboxes } from "./mailbox.js"
import { takeInFiber, type Waiter, WaiterQueue } from "./waiters.js"

type Pending = WorkerMessage | { readonly _tag: "BodyWaiting"; readonly from: number }

export class WorkerMessages {
  private readonly pending: Array<Pending> = []
  private readonly receivers = new WaiterQueue(() => this.pending.length > 0)

  constructor(private readonly mailboxes: Mailboxes, private readonly self: number) {}

  /** A notification (or a body given to oneself). */
  offer(m: WorkerMessage): void {
    this.pending.push(m)
    this.receivers.notify()
  }

  /** A wake-up saying one body from `from` waits in the mailbox from → self. */
  bodyWaiting(from: number): void {
    this.pending.push({ _tag: "BodyWaiting", from })
    this.receivers.notify()
  }

  /** The next message; waits for one. */
  readonly receive: Effect.Effect<WorkerMessage> = takeInFiber(this.receivers, (w) => this.take(w))

  private take(w: Waiter): Exit.Exit<WorkerMessage> | undefined {
    while (this.pending.length > 0) {
      const m = this.pending.shift()!
      if (m._tag === "BodyWaiting") {
        const body = this.mailboxes.take(m.from, this.self)
        // A wake-up whose body is gone (its box was emptied by an earlier take): skip it.
        if (body === undefined) continue
        this.receivers.withdraw(w)
        return Exit.succeed({ _tag: "Body", from: m.from, body })
      }
      this.receivers.withdraw(w)
      return Exit.succeed(m)
    }
    return undefined
  }
}

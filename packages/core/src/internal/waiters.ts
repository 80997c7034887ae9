/**
 * Taking a result in the fiber that returns it: the rule behind every read, recvFrom and accept.
 *
 * A completion never hands bytes, datagrams or connections to a fiber. It stores them in its
 * socket and wakes the first waiter of a {@link WaiterQueue}; the woken fiber then takes what it
 * needs synchronously, as the first thing it runs after the wake-up ({@link takeInFiber}). (A
 * take that finds its result already there, with nobody in line, takes it at once without
 * waiting.) So:
 * - a fiber whose interruption reached it before it ran takes nothing: the interruption wins over
 *   the wake-up, the waiter is withdrawn, and the next waiter (or the next take) gets the result;
 * - a fiber that took something returns it in the same synchronous run (no yield point between
 *   the take and the return), so what was taken is the operation's value.
 *
 * Effect's `race` and `timeout` keep the first fiber to complete and interrupt the other; a fiber
 * that completed in the same turn as the winner loses its value. Nothing that wakes fibers from
 * inside a completion batch may therefore decide such a race in that batch: RinglineClock wakes
 * its sleeps in the check phase after the batch, as libuv wakes timers in a phase of their own.
 * (Two takes raced against each other whose results arrive in one batch remain exposed to this:
 * both run and take; Effect keeps one value.)
 */
import { Effect, type Exit, RuntimeFlags } from "effect"

/** One pending take's place in a queue. */
export interface Waiter {
  /** Owner-defined threshold (for a read: bytes needed before the parser is worth calling). */
  need: number
  /** Set while the fiber is suspended waiting; cleared when it is woken or withdrawn. */
  wake: (() => void) | undefined
  queued: boolean
}

// A queue nobody has waited on yet shares this frozen empty line (a push meant for a queue's own
// list throws instead of reaching every queue).
const NO_WAITERS: Array<Waiter> = Object.freeze([]) as unknown as Array<Waiter>

/** First-come first-served waiters; the owner says when the first one can take. */
export class WaiterQueue {
  private list: Array<Waiter> = NO_WAITERS

  /**
   * `ready(w)`: whether the first waiter `w` would get a result now (a value or an error).
   * `idle()` runs when the last waiter left.
   */
  constructor(private readonly ready: (w: Waiter) => boolean, private readonly idle: () => void = noop) {}

  get length(): number {
    return this.list.length
  }

  /** The first waiter's `need` (bytes it waits for), or -1 when nobody waits. */
  get firstNeed(): number {
    const w = this.list[0]
    return w === undefined ? -1 : w.need
  }

  waiter(need = 1): Waiter {
    return { need, wake: undefined, queued: false }
  }

  /** Whether `w` may take now: it is first in line, or nobody is waiting (`w` not queued yet). */
  mayTake(w: Waiter | undefined): boolean {
    return this.list.length === 0 || this.list[0] === w
  }

  /** Queues `w` (once) and calls `wake` when it is first and ready, possibly at once. */
  wait(w: Waiter, wake: () => void): void {
    if (!w.queued) {
      w.queued = true
      // The usual line is one waiter. Its first list is made with one slot (24 B of elements):
      // a push onto an empty array grows it to 17 slots (152 B), which an idle connection's
      // queue would keep for as long as it waits. `withdraw` pops the last waiter, which keeps
      // that slot, so later waits push into it without allocating (a splice to empty would
      // drop it, and the next push allocate 17 slots again).
      if (this.list === NO_WAITERS) this.list = [w]
      else this.list.push(w)
    }
    w.wake = wake
    this.notify()
  }

  /** Takes `w` out of line (its take ended, or was interrupted); idempotent. */
  withdraw(w: Waiter): void {
    w.wake = undefined
    if (!w.queued) return
    w.queued = false
    const list = this.list
    // Almost always the only waiter; popping the last keeps the array's storage (splice allocates
    // its result, and splicing to empty drops the elements).
    const i = list[0] === w ? 0 : list.indexOf(w)
    if (i >= 0 && i === list.length - 1) list.pop()
    else if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.idle()
    else if (i === 0) this.notify()
  }

  /** Wakes the first waiter if it is suspended and ready. Call after anything it waits for changed. */
  notify(): void {
    const w = this.list[0]
    if (w === undefined || w.wake === undefined || !this.ready(w)) return
    const wake = w.wake
    w.wake = undefined
    wake()
  }
}

/**
 * Waits (interruptibly, taking nothing) until `queue` says this take is first and ready, then
 * runs `take` as the first step of the resumed fiber. `take` returns the result, or undefined to
 * wait again (a parser that needs more bytes); it must withdraw `w` when it returns a result.
 */
export const takeInFiber = <A, E>(
  queue: WaiterQueue,
  take: (w: Waiter) => Exit.Exit<A, E> | undefined
): Effect.Effect<A, E> =>
  Effect.withFiberRuntime<A, E>((_, status) => {
    const w = queue.waiter()
    if (queue.length === 0) {
      // Nobody is in line: what is already there is taken now, by this fiber, which returns it
      // in this same synchronous run (no suspension, no wake-up needed).
      try {
        const now = take(w)
        if (now !== undefined) return now
      } catch (defect) {
        return Effect.die(defect)
      }
    }
    // Run by the fiber right after its wake-up message, before anything else it could yield at:
    // an interruption queued before or with the wake-up is seen first and `take` never runs.
    const attempt: Effect.Effect<A, E> = Effect.suspend(() => {
      try {
        return take(w) ?? wait
      } catch (defect) {
        queue.withdraw(w)
        return Effect.die(defect)
      }
    })
    const suspended = Effect.async<A, E>((resume) => queue.wait(w, () => resume(attempt)))
    // Interruptible, and withdrawn from the line however it ends other than by its take (an
    // interruption while suspended): a catch frame in an uninterruptible region around the
    // interruptible wait (a catch frame is skipped by an interruption in an interruptible
    // region). Effect.async with a canceler builds the same through onInterrupt and onExit (the
    // canceler's own Effect, exitMatch's closures, a second match), which a suspended read keeps
    // for as long as its connection is idle (~0.4 KB each) and makes anew for every read that has
    // to wait. The fiber's flags are read here (withFiberRuntime, the step this take costs anyway)
    // rather than by uninterruptibleMask, one run-loop step more per wait (bench/effect-ops.mjs).
    // A fiber that cannot be interrupted needs no frame at all: its wait ends by its take only.
    const wait: Effect.Effect<A, E> = RuntimeFlags.interruption(status.runtimeFlags)
      ? Effect.uninterruptible(Effect.catchAllCause(Effect.interruptible(suspended), (cause) => {
        queue.withdraw(w)
        return Effect.failCause(cause)
      }))
      : suspended
    return wait
  })

const noop = () => {}

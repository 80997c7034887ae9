/**
 * The Effect scheduler of the fibers ringline forks for connection handlers: a fiber that a
 * completion wakes up runs right after that completion batch, in the same callback, instead of
 * from a microtask of its own.
 *
 * Effect's default scheduler queues every wake-up on a per-fiber runner and drains it from a
 * promise job: one runner lookup, one bucket and one promise per resumed fiber. Completions wake
 * fibers by the thousand per second, and the microtask queue would run them right after the
 * batch anyway (the batch is a top-level callback), so nothing observable happens in between:
 * running them at the end of the batch keeps their order (the order of the wake-ups) and every
 * guarantee of waiters.ts (a fiber still runs its take as the first thing after its wake-up).
 *
 * Only wake-ups made during a batch run inline. What those fibers schedule in turn (a yield, a
 * fork, a wake-up of another fiber) goes to the default scheduler, so a fiber that yields in a
 * loop cannot hold the event loop: the work done inline is bounded by the batch.
 */
import { type Fiber, Scheduler } from "effect"

class DispatchScheduler implements Scheduler.Scheduler {
  /** Batches in progress (a batch never starts inside another; counted to be safe). */
  private depth = 0
  private tasks: Array<Scheduler.Task> = []

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return Scheduler.defaultScheduler.shouldYield(fiber)
  }

  scheduleTask(task: Scheduler.Task, priority: number, fiber?: Fiber.RuntimeFiber<unknown, unknown>): void {
    if (this.depth > 0) this.tasks.push(task)
    else Scheduler.defaultScheduler.scheduleTask(task, priority, fiber)
  }

  /** A completion batch begins: wake-ups from here on wait for {@link end}. */
  begin(): void {
    this.depth++
  }

  /**
   * The batch is over: runs the fibers it woke, in wake-up order. Returns the first exception a
   * task threw (Effect's fibers do not throw; the rest still run).
   */
  end(): unknown {
    if (--this.depth > 0 || this.tasks.length === 0) return undefined
    const tasks = this.tasks
    this.tasks = []
    let error: unknown = undefined
    for (let i = 0; i < tasks.length; i++) {
      try {
        tasks[i]!()
      } catch (e) {
        error ??= e
      }
    }
    return error
  }
}

/** One per thread: fibers of any ring in this thread may be woken by any ring's batch. */
export const dispatchScheduler = new DispatchScheduler()

/**
 * The Effect `Scheduler` a ring's service installs for the fibers that use it: a fiber woken by
 * a completion (an op's CQE resumed its `Effect.async`) runs at the end of that completion
 * batch, still inside the driver's dispatch, instead of one microtask per fiber later through
 * Effect's default scheduler. Why: a fiber's resumption through the default scheduler costs a
 * per-fiber runner lookup, a priority bucket and a promise reaction each time (about 11 % of the
 * instructions of a 4 KiB `DirectFile.readInto`), and the reads those fibers stage next reach the
 * kernel only once all of that ran.
 *
 * What does not change: tasks scheduled while this ring is not dispatching (timers, promises,
 * other rings' completions) go to the scheduler that was current when the service was built.
 * Owners still only queue a resumption from `onCqe`; the fibers run after the batch's last CQE
 * was handled (as before, when the microtasks ran once the batch had returned), so no owner sees
 * a fiber run in the middle of its own callback. A batch runs at most `MAX_INLINE` tasks (fibers
 * woken by woken fibers, fibers that yield): the rest goes to the fallback scheduler, so a fiber
 * that keeps yielding cannot hold the event loop beyond what Effect's default scheduler allows.
 */
import type { Scheduler } from "effect"

/**
 * Tasks one batch may run inline. A batch wakes at most one fiber per CQE (the CQ holds a few
 * thousand at most); past this, fibers are waking each other or yielding in a loop.
 */
export const MAX_INLINE = 8192

export class DispatchScheduler implements Scheduler.Scheduler {
  /** Flat (task, priority, fiber) triples queued during the batch. */
  private readonly queue: Array<unknown> = []
  /** True from the start of a batch until its queue is drained (or handed over). */
  private open = false

  constructor(readonly fallback: Scheduler.Scheduler) {}

  scheduleTask(task: Scheduler.Task, priority: number, fiber?: Parameters<Scheduler.Scheduler["shouldYield"]>[0]): void {
    if (this.open) this.queue.push(task, priority, fiber)
    else this.fallback.scheduleTask(task, priority, fiber)
  }

  shouldYield(fiber: Parameters<Scheduler.Scheduler["shouldYield"]>[0]): number | false {
    return this.fallback.shouldYield(fiber)
  }

  /** A completion batch starts: fibers it wakes are queued here. */
  begin(): void {
    this.open = true
  }

  /**
   * The batch's CQEs are handled: runs the fibers it woke, and those they wake in turn, in the
   * order they were scheduled. Returns the first exception a task threw (Effect's own tasks do
   * not throw; the caller rethrows it once the driver's state is consistent), or undefined.
   */
  end(): unknown {
    const q = this.queue
    let error: unknown = undefined
    let i = 0
    try {
      for (; i < q.length && i < MAX_INLINE * 3; i += 3) {
        try {
          ;(q[i] as Scheduler.Task)()
        } catch (e) {
          error ??= e
        }
      }
    } finally {
      this.open = false
      // Beyond the bound (or after an exception escaped the loop above): the fallback runs them.
      for (; i < q.length; i += 3) {
        this.fallback.scheduleTask(q[i] as Scheduler.Task, q[i + 1] as number, q[i + 2] as never)
      }
      q.length = 0
    }
    return error
  }
}

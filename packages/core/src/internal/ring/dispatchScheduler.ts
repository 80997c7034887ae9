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
 * was handled (as before, when the microtasks ran once the batch had returned), or between two
 * CQEs when an owner asked for an early turn (Driver.earlyTurn), so no owner sees a fiber run in
 * the middle of its own callback. A batch runs at most `MAX_INLINE` tasks (fibers
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
  /** Flat (task, priority, fiber) triples queued during the batch; `head` is the next to run. */
  private readonly queue: Array<unknown> = []
  private head = 0
  /** Tasks this batch has run so far (the MAX_INLINE budget spans its early turns). */
  private ran = 0
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
    this.ran = 0
  }

  /** Fibers woken and not yet run in this batch. */
  get pending(): boolean {
    return this.head < this.queue.length
  }

  /**
   * Runs the fibers queued so far, and those they wake in turn, in the order they were
   * scheduled, within the batch's budget; the batch stays open (an early turn between two of its
   * CQEs, see Driver.earlyTurn). Returns the first exception a task threw (Effect's own tasks do
   * not throw; the caller rethrows it once the driver's state is consistent), or undefined.
   */
  run(): unknown {
    const q = this.queue
    let error: unknown = undefined
    while (this.head < q.length && this.ran < MAX_INLINE) {
      const task = q[this.head] as Scheduler.Task
      this.head += 3
      this.ran++
      try {
        task()
      } catch (e) {
        error ??= e
      }
    }
    if (this.head === q.length) q.length = this.head = 0
    return error
  }

  /**
   * The batch's CQEs are handled: runs what is still queued (see `run`), then closes the batch.
   * Beyond the budget the fallback scheduler gets the rest.
   */
  end(): unknown {
    let error: unknown = undefined
    try {
      error = this.run()
    } finally {
      this.open = false
      const q = this.queue
      for (let i = this.head; i < q.length; i += 3) {
        this.fallback.scheduleTask(q[i] as Scheduler.Task, q[i + 1] as number, q[i + 2] as never)
      }
      q.length = this.head = 0
    }
    return error
  }
}

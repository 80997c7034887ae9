/**
 * The scheduler a ring's service installs (internal/ring/dispatchScheduler.ts): fibers woken by a
 * completion run at the end of that completion batch, not a microtask each later; everything
 * else keeps the scheduler it had, and a fiber that keeps yielding cannot hold the event loop.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, FiberRef, type Scheduler } from "effect"
import { Ring } from "../src/index.js"
import type { Driver } from "../src/internal/driver.js"
import { DispatchScheduler, MAX_INLINE } from "../src/internal/ring/dispatchScheduler.js"
import { withRing } from "./helpers.js"

/** A NOP whose `finish` (called from the CQE's dispatch) queues a microtask that logs. */
class NopThenMicrotask extends Ring.Operation<number, never> {
  constructor(readonly ring: Ring.Ring, readonly log: Array<string>) {
    super()
  }
  prepare(slot: number) {
    Ring.prepNop(this.ring, slot)
  }
  finish(res: number) {
    queueMicrotask(() => this.log.push("microtask queued by the batch"))
    return Effect.succeed(res)
  }
}

const nop = (ring: Ring.Ring, log: Array<string>) =>
  Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, new NopThenMicrotask(ring, log), restore))

describe("fibers woken by completions", () => {
  it.live("run at the end of the completion batch, before the microtasks it queued", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      for (let i = 0; i < 3; i++) {
        const log: Array<string> = []
        yield* nop(ring, log)
        log.push("fiber")
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        // Through Effect's default scheduler the fiber would run in a promise reaction queued
        // after the batch's own microtask: ["microtask ...", "fiber"].
        expect(log).toEqual(["fiber", "microtask queued by the batch"])
      }
    })))

  it.live("only inside the ring's scope: before and after it, fibers keep the scheduler they had", () =>
    Effect.gen(function*() {
      const before = yield* FiberRef.get(FiberRef.currentScheduler)
      const inside = yield* withRing(Effect.gen(function*() {
        const mine = yield* FiberRef.get(FiberRef.currentScheduler)
        // Forked fibers inherit it (a server's connection handlers are forked).
        const forked = yield* Effect.fork(FiberRef.get(FiberRef.currentScheduler))
        expect(yield* Fiber.join(forked)).toBe(mine)
        return mine
      }))
      expect(inside).not.toBe(before)
      expect(yield* FiberRef.get(FiberRef.currentScheduler)).toBe(before)
    }))

  it.live("a fiber that keeps yielding after a completion does not hold the event loop: timers still fire", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      let spins = 0
      const spinner = yield* Effect.fork(
        Effect.zipRight(nop(ring, []), Effect.forever(Effect.zipRight(Effect.sync(() => spins++), Effect.yieldNow())))
      )
      const fired = yield* Effect.promise(() => new Promise<number>((resolve) => setTimeout(() => resolve(spins), 20)))
      yield* Fiber.interrupt(spinner)
      // The timer fired while the spinner was running (it had spun, and had not been stopped).
      expect(fired).toBeGreaterThan(0)
    })))

  it.live("many fibers, each woken by its own CQE, all run and leave nothing in flight", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ring.current
      const counts = yield* Effect.forEach(
        Array.from({ length: 64 }),
        () =>
          Effect.gen(function*() {
            let n = 0
            for (let k = 0; k < 50; k++) n += (yield* nop(ring, [])) === 0 ? 1 : 0
            return n
          }),
        { concurrency: "unbounded" }
      )
      expect(counts).toEqual(Array.from({ length: 64 }, () => 50))
      expect(ring.inFlight).toBe(0)
    })))
})

/** A NOP whose CQE logs itself and, for `early`, asks the driver for an early turn. */
class LoggedNop extends Ring.Operation<number, never> {
  constructor(readonly ring: Ring.Ring, readonly log: Array<string>, readonly name: string, readonly early: boolean) {
    super()
  }
  prepare(slot: number) {
    Ring.prepNop(this.ring, slot)
  }
  finish(res: number) {
    const driver = (this.ring as unknown as { driver: Driver }).driver
    this.log.push(`cqe ${this.name} (staged ${driver.staged})`)
    if (this.early) driver.earlyTurn()
    return Effect.succeed(res)
  }
}

/**
 * Two NOPs staged in one turn complete in one batch: a fiber waits for each, and the first one,
 * once resumed, stages a third NOP. Returns what happened, in order.
 */
const twoInOneBatch = (early: boolean) =>
  withRing(Effect.gen(function*() {
    const ring = yield* Ring.current
    const driver = (ring as unknown as { driver: Driver }).driver
    const log: Array<string> = []
    const op = (name: string, early: boolean) =>
      Effect.uninterruptibleMask((restore) => Ring.awaitOperation(ring, new LoggedNop(ring, log, name, early), restore))
    const turns = driver.counters.earlyTurns
    yield* Effect.all([
      Effect.gen(function*() {
        yield* op("1", early)
        log.push("fiber 1")
        yield* op("3", false)
      }),
      Effect.gen(function*() {
        yield* op("2", false)
        log.push("fiber 2")
      })
    ], { concurrency: "unbounded" })
    return { log, turns: driver.counters.earlyTurns - turns }
  }))

describe("early turn (Driver.earlyTurn)", () => {
  it.live("the fibers a CQE woke run, and what they staged is submitted, before the batch's next CQE", () =>
    Effect.gen(function*() {
      const { log, turns } = yield* twoInOneBatch(true)
      // Fiber 1 ran between the two CQEs and its NOP 3 was no longer staged when CQE 2 came.
      expect(log).toEqual(["cqe 1 (staged 0)", "fiber 1", "cqe 2 (staged 0)", "fiber 2", "cqe 3 (staged 0)"])
      expect(turns).toBe(1)
    }))

  it.live("control: without it, fibers run after the batch's last CQE", () =>
    Effect.gen(function*() {
      const { log, turns } = yield* twoInOneBatch(false)
      expect(log).toEqual(["cqe 1 (staged 0)", "cqe 2 (staged 0)", "fiber 1", "fiber 2", "cqe 3 (staged 0)"])
      expect(turns).toBe(0)
    }))
})

describe("DispatchScheduler (the queue itself)", () => {
  /** A fallback that records what it was handed. */
  const recording = () => {
    const handed: Array<[Scheduler.Task, number]> = []
    const fallback: Scheduler.Scheduler = {
      scheduleTask: (task, priority) => void handed.push([task, priority]),
      shouldYield: () => false
    }
    return { handed, fallback }
  }

  it("outside a batch every task goes to the fallback; inside, tasks run at the end in order, also those they schedule", () => {
    const { fallback, handed } = recording()
    const s = new DispatchScheduler(fallback)
    const ran: Array<string> = []
    s.scheduleTask(() => ran.push("outside"), 0)
    expect(handed.length).toBe(1)
    s.begin()
    s.scheduleTask(() => {
      ran.push("a")
      s.scheduleTask(() => ran.push("c (scheduled by a)"), 0)
    }, 0)
    s.scheduleTask(() => ran.push("b"), 0)
    expect(ran).toEqual([])
    expect(s.end()).toBeUndefined()
    expect(ran).toEqual(["a", "b", "c (scheduled by a)"])
    expect(handed.length).toBe(1)
    s.scheduleTask(() => ran.push("after"), 0)
    expect(handed.length).toBe(2)
  })

  it("runs at most MAX_INLINE tasks per batch and hands the rest to the fallback, in order, with their priority", () => {
    const { fallback, handed } = recording()
    const s = new DispatchScheduler(fallback)
    let ran = 0
    s.begin()
    // One task that reschedules itself forever (a fiber yielding in a loop).
    const spin = () => {
      ran++
      s.scheduleTask(spin, 7)
    }
    s.scheduleTask(spin, 7)
    s.end()
    expect(ran).toBe(MAX_INLINE)
    expect(handed.length).toBe(1)
    expect(handed[0]![1]).toBe(7)
  })

  it("run() mid-batch runs what is queued and keeps the batch open; the MAX_INLINE budget spans run() and end()", () => {
    const { fallback, handed } = recording()
    const s = new DispatchScheduler(fallback)
    const ran: Array<string> = []
    s.begin()
    s.scheduleTask(() => ran.push("a"), 0)
    expect(s.pending).toBe(true)
    expect(s.run()).toBeUndefined()
    expect(ran).toEqual(["a"])
    expect(s.pending).toBe(false)
    // Still inside the batch: queued here, not handed to the fallback.
    s.scheduleTask(() => ran.push("b"), 0)
    expect(handed.length).toBe(0)
    let spins = 0
    const spin = () => {
      spins++
      s.scheduleTask(spin, 3)
    }
    s.scheduleTask(spin, 3)
    s.run()
    s.end()
    expect(ran).toEqual(["a", "b"])
    // a, b and the spins together: MAX_INLINE tasks in the whole batch, the rest to the fallback.
    expect(spins).toBe(MAX_INLINE - 2)
    expect(handed.length).toBe(1)
  })

  it("a task that throws does not stop the others; end() returns the first exception", () => {
    const { fallback } = recording()
    const s = new DispatchScheduler(fallback)
    const ran: Array<number> = []
    const boom = new Error("boom")
    s.begin()
    s.scheduleTask(() => ran.push(1), 0)
    s.scheduleTask(() => {
      throw boom
    }, 0)
    s.scheduleTask(() => {
      throw new Error("second")
    }, 0)
    s.scheduleTask(() => ran.push(4), 0)
    expect(s.end()).toBe(boom)
    expect(ran).toEqual([1, 4])
  })
})

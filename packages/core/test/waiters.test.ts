/**
 * The line of waiters behind every read, recvFrom and accept (src/internal/waiters.ts): first come
 * first served whichever way a waiter leaves it (its take, or an interruption: the last one, one
 * in the middle, the first), the next one woken when the first leaves, `idle` when the last one
 * does, and a queue that went empty working again. The list keeps its one slot between waits
 * (the last waiter is popped, not spliced), so these paths are pinned here.
 */
import { describe, expect, it } from "@effect/vitest"
import { WaiterQueue } from "../src/internal/waiters.js"

/** A queue whose first waiter may take when `open` says so, recording wake-ups and idles. */
const queue = () => {
  const log: Array<string> = []
  let open = false
  const q = new WaiterQueue(() => open, () => log.push("idle"))
  const join = (name: string) => {
    const w = q.waiter()
    q.wait(w, () => log.push(`wake ${name}`))
    return w
  }
  return { q, log, join, setOpen: (v: boolean) => (open = v) }
}

describe("WaiterQueue", () => {
  it("serves in arrival order whichever waiter leaves, and wakes the next when the first leaves", () => {
    const { join, log, q, setOpen } = queue()
    const a = join("a"), b = join("b"), c = join("c"), d = join("d")
    expect(q.length).toBe(4)
    q.withdraw(d) // the last one: popped
    q.withdraw(b) // one in the middle: spliced
    expect(q.length).toBe(2)
    expect(q.mayTake(a)).toBe(true)
    expect(q.mayTake(c)).toBe(false)
    setOpen(true)
    q.notify()
    expect(log).toEqual(["wake a"])
    q.withdraw(a) // a took: c is first now and is woken
    expect(log).toEqual(["wake a", "wake c"])
    expect(q.mayTake(c)).toBe(true)
    q.withdraw(c)
    expect(q.length).toBe(0)
    expect(log).toEqual(["wake a", "wake c", "idle"])
    q.withdraw(c) // idempotent
    expect(log).toEqual(["wake a", "wake c", "idle"])
  })

  it("works again after it went empty, and queues do not share their line", () => {
    const one = queue(), two = queue()
    for (let round = 0; round < 3; round++) {
      const w = one.join(`w${round}`)
      expect(one.q.length).toBe(1)
      expect(two.q.length).toBe(0)
      expect(one.q.firstNeed).toBe(1)
      one.setOpen(true)
      one.q.notify()
      one.setOpen(false)
      one.q.withdraw(w)
      expect(one.q.length).toBe(0)
      expect(one.q.firstNeed).toBe(-1)
    }
    expect(one.log).toEqual(["wake w0", "idle", "wake w1", "idle", "wake w2", "idle"])
    const x = two.join("x"), y = two.join("y")
    two.q.withdraw(x)
    two.setOpen(true)
    two.q.notify()
    expect(two.log).toEqual(["wake y"])
    two.q.withdraw(y)
    expect(two.log).toEqual(["wake y", "idle"])
    expect(one.q.length).toBe(0)
  })

  it("a waiter that left before it was queued (a take that found its result at once) changes nothing", () => {
    const { join, log, q } = queue()
    const early = q.waiter()
    q.withdraw(early)
    const a = join("a")
    q.withdraw(early)
    expect(q.length).toBe(1)
    expect(q.mayTake(a)).toBe(true)
    expect(log).toEqual([])
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber } from "effect"
import { Ringline, RinglineClock, Tcp } from "../src/index.js"
import { fullListener, nodeClient, portOf, withRing } from "./helpers.js"

const inFlight = Effect.map(Ringline.stats, (s) => s.inFlight)

describe("races and interruption", () => {
  it.live("Effect.race of reads on two connections picks the one with data", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const a = yield* Effect.promise(() => nodeClient(portOf(l)))
      const ca = yield* l.accept
      const b = yield* Effect.promise(() => nodeClient(portOf(l)))
      const cb = yield* l.accept
      const tag = (name: string, c: typeof ca) => Effect.map(c.recv, (o) => `${name}:${o._tag === "Some" ? Buffer.from(o.value).toString() : "eof"}`)
      setTimeout(() => b.write("from b"), 20)
      const winner = yield* Effect.race(tag("a", ca), tag("b", cb))
      expect(winner).toBe("b:from b")
      // The losing read was withdrawn without losing bytes: a's data still arrives.
      a.write("from a")
      expect(yield* tag("a", ca)).toBe("a:from a")
      a.destroy()
      b.destroy()
    })))

  it.live("race of a read against a long sleep, 300 rounds, leaks nothing", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const baseline = yield* inFlight
      for (let i = 0; i < 300; i++) {
        const even = i % 2 === 0
        if (even) s.write(`m${i};`)
        const r = yield* Effect.race(
          c.read((b) => {
            const end = b.indexOf(59) // ';'
            return end < 0 ? { _tag: "NeedMore", atLeast: 0 } : { _tag: "Done", consumed: end + 1, value: Buffer.from(b.subarray(0, end)).toString() }
          }),
          Effect.as(Effect.sleep(even ? Duration.seconds(10) : Duration.millis(1)), "slept")
        )
        expect(r).toBe(even ? `m${i}` : "slept")
      }
      expect(yield* inFlight).toBe(baseline)
      s.destroy()
    })))

  it.live("timers: sleep 50ms takes at least 30ms; timeout 20ms over a 10s sleep fails fast", () =>
    withRing(Effect.gen(function*() {
      const t0 = Date.now()
      yield* Effect.sleep(50)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(30)
      const t1 = Date.now()
      const r = yield* Effect.either(Effect.timeout(Effect.sleep(Duration.seconds(10)), Duration.millis(20)))
      expect(Either.isLeft(r)).toBe(true)
      expect(Date.now() - t1).toBeLessThan(1000)
    })))

  it.live("Effect.timeout on the default clock withdraws a pending accept and read; ops balanced", () =>
    withRing(Effect.gen(function*() {
      // No RinglineClock here: these timeouts are libuv timers, the ops they stop are on the ring.
      expect(RinglineClock.isRinglineClock(yield* Effect.clock)).toBe(false)
      const l = yield* Tcp.listen({ port: 0 })
      const baseline = yield* inFlight
      const t0 = Date.now()
      const a = yield* Effect.either(Effect.timeout(Effect.scoped(l.accept), Duration.millis(30)))
      expect(Either.isLeft(a) && a.left._tag).toBe("TimeoutException")
      expect(Date.now() - t0).toBeGreaterThanOrEqual(25)
      expect(yield* inFlight).toBe(baseline)
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const withConn = yield* inFlight
      const r = yield* Effect.either(Effect.timeout(c.recv, Duration.millis(30)))
      expect(Either.isLeft(r) && r.left._tag).toBe("TimeoutException")
      expect(yield* inFlight).toBe(withConn)
      // Nothing was lost to the withdrawn read.
      s.write("late")
      const got = yield* Effect.timeout(c.recv, Duration.seconds(5))
      expect(got._tag === "Some" && Buffer.from(got.value).toString()).toBe("late")
      s.destroy()
    })))

  it.live("an interrupted accept cancels its wait and the op table returns to the listener's own accept", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const baseline = yield* inFlight
      const f = yield* Effect.fork(Effect.scoped(l.accept))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(f)
      expect(yield* inFlight).toBe(baseline)
      // The listener still works after the interruption.
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      s.write("ok")
      const got = yield* c.recv
      expect(got._tag).toBe("Some")
      s.destroy()
    })))

  it.live("an interrupted read leaves the connection usable and ops balanced", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const baseline = yield* inFlight
      const f = yield* Effect.fork(c.recv)
      yield* Effect.sleep(10)
      yield* Fiber.interrupt(f)
      expect(yield* inFlight).toBe(baseline)
      s.write("after")
      const got = yield* c.recv
      expect(got._tag === "Some" && Buffer.from(got.value).toString()).toBe("after")
      s.destroy()
    })))

  it.live("an interrupted connect submits ASYNC_CANCEL, waits for the terminal CQE and closes the socket", () =>
    withRing(Effect.gen(function*() {
      const port = yield* fullListener
      const f = yield* Effect.fork(Effect.scoped(Tcp.connect({ host: "127.0.0.1", port })))
      yield* Effect.sleep(50)
      expect(yield* inFlight).toBeGreaterThan(0)
      yield* Fiber.interrupt(f)
      // Interruption completed only after the CONNECT's terminal CQE and the slot's close.
      expect(yield* inFlight).toBe(0)
    })))
})

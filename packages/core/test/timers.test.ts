/**
 * RinglineClock: Effect sleeps timed by IORING_OP_TIMEOUT (one armed timeout for a JS heap of
 * deadlines), and the default clock / TestClock untouched when a program does not opt in.
 * "Early" is always judged against process.hrtime (CLOCK_MONOTONIC), read before the sleep starts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Either, Fiber, Layer, Option, TestClock } from "effect"
import type { Scope } from "effect"
import { spawnSync } from "node:child_process"
import { Ringline, RinglineClock, Tcp } from "../src/index.js"
import { nodeClient, portOf, withRing } from "./helpers.js"

const hr = () => process.hrtime.bigint()
const msSince = (t: bigint) => Number(hr() - t) / 1e6

/** Runs `body` with the ring clock installed (it is released, and checked, before withRing's checks). */
const onRingClock = <A, E>(body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>, options?: RinglineClock.Options) =>
  Effect.scoped(body).pipe(Effect.provide(RinglineClock.layerWith(options)))

const clockStats = Effect.map(RinglineClock.stats, Option.getOrThrow)
const inFlight = Effect.map(Ringline.stats, (s) => s.inFlight)

/** Polls `check` on libuv timers (not on the clock under test) until it holds, for at most `ms`. */
const waitUntil = (what: string, check: Effect.Effect<boolean, never, any>, ms = 3000) =>
  Effect.gen(function*() {
    const t0 = Date.now()
    while (!(yield* check)) {
      if (Date.now() - t0 > ms) return yield* Effect.die(new Error(`timed out waiting for: ${what}`))
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
    }
  })

describe("RinglineClock", () => {
  it.live("process.hrtime is the kernel's CLOCK_MONOTONIC (the clock of an absolute ring timeout)", () =>
    withRing(onRingClock(Effect.gen(function*() {
      // 1. Bracket a CLOCK_MONOTONIC reading taken by another process between two hrtime reads.
      const a = hr()
      const py = spawnSync("python3", ["-c", "import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))"], { encoding: "utf8" })
      const b = hr()
      if (py.status === 0) {
        const mono = BigInt(py.stdout.trim())
        expect(a <= mono && mono <= b).toBe(true)
      } else {
        console.log("SKIP python3 unavailable: CLOCK_MONOTONIC bracket not checked (the ring timing check below still runs)")
      }
      // 2. An absolute timeout armed from hrtime completes once, not before that hrtime, and soon after.
      // 100 ms: long enough that a stalled loop (a loaded machine) still arms the TIMEOUT before
      // the sleep is due; the CQE may be reaped after the sleep woke (a late turn), so wait for it.
      const before = yield* clockStats
      const t0 = hr()
      yield* Effect.sleep(100)
      const took = msSince(t0)
      yield* waitUntil("the TIMEOUT's completion reaped", Effect.map(clockStats, (s) => s.ringOps === 0))
      const after = yield* clockStats
      expect(took).toBeGreaterThanOrEqual(100)
      expect(took).toBeLessThan(200)
      expect(after.armedTotal - before.armedTotal).toBe(1)
      expect(after.fired - before.fired).toBe(1)
      expect(after.earlyCqes).toBe(0)
      expect(after.fallbacks).toBe(0)
    }))))

  it.live("sleep 50 ms takes >= 50 ms and < 150 ms (absolute and relative timeouts)", () =>
    withRing(Effect.gen(function*() {
      for (const mode of ["absolute", "relative"] as const) {
        yield* onRingClock(Effect.gen(function*() {
          expect(RinglineClock.isRinglineClock(yield* Effect.clock)).toBe(true)
          const t0 = hr()
          yield* Effect.sleep(50)
          const took = msSince(t0)
          expect(took).toBeGreaterThanOrEqual(50)
          expect(took).toBeLessThan(150)
          const s = yield* clockStats
          expect(s.fired).toBe(1)
          expect(s.fallbacks).toBe(0)
        }), { mode })
      }
    })))

  it.live("Effect.timeout 20 ms over a 10 s sleep fails fast and cancels the ring timeout", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const t0 = hr()
      const r = yield* Effect.either(Effect.timeout(Effect.sleep("10 seconds"), "20 millis"))
      const took = msSince(t0)
      expect(Either.isLeft(r) && r.left._tag).toBe("TimeoutException")
      expect(took).toBeGreaterThanOrEqual(20)
      expect(took).toBeLessThan(1000)
      expect((yield* clockStats).pending).toBe(0)
      // The 10 s timeout was cancelled, not left armed: the op table empties without closing the clock.
      yield* waitUntil("ops back to zero", Effect.map(inFlight, (n) => n === 0))
      const s = yield* clockStats
      expect(s.armed).toBe(false)
      expect(s.ringOps).toBe(0)
      expect(s.cancelled).toBeGreaterThanOrEqual(1)
    }))))

  it.live("100k concurrent sleeps of 1-200 ms all complete, none early, on a handful of ring ops", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const N = 100_000
      let early = 0
      let done = 0
      const lateness = new Float64Array(N)
      // Lateness here is the event loop being busy (starting 100k fibers does not yield to it),
      // the same with Effect's default clock: measure the longest gap between loop turns.
      let maxLoopGap = 0
      let lastTurn = Date.now()
      const probe = setInterval(() => {
        const now = Date.now()
        maxLoopGap = Math.max(maxLoopGap, now - lastTurn)
        lastTurn = now
      }, 1)
      const t0 = hr()
      yield* Effect.forEach(
        Array.from({ length: N }, (_, i) => i),
        (i) =>
          Effect.suspend(() => {
            const ms = 1 + Math.random() * 199
            const deadline = hr() + BigInt(Math.ceil(ms * 1e6))
            return Effect.map(Effect.sleep(ms), () => {
              const now = hr()
              if (now < deadline) early++
              lateness[i] = Number(now - deadline) / 1e6
              done++
            })
          }),
        { concurrency: "unbounded", discard: true }
      )
      const total = msSince(t0)
      clearInterval(probe)
      maxLoopGap = Math.max(maxLoopGap, Date.now() - lastTurn)
      const s = yield* clockStats
      lateness.sort()
      console.log(
        `100k sleeps: ${total.toFixed(0)} ms in all; lateness p50 ${lateness[N >> 1]!.toFixed(1)} ms, ` +
          `p99 ${lateness[Math.floor(N * 0.99)]!.toFixed(1)} ms, max ${lateness[N - 1]!.toFixed(1)} ms ` +
          `(longest event-loop stall ${maxLoopGap} ms); ` +
          `${s.armedTotal} timeouts armed, ${s.fired} fired, ${s.cancelled} cancelled, at most ${s.maxRingOps} in flight`
      )
      expect(done).toBe(N)
      expect(early).toBe(0)
      expect(s.pending).toBe(0)
      expect(s.woken).toBeGreaterThanOrEqual(N)
      expect(s.earlyCqes).toBe(0)
      expect(s.fallbacks).toBe(0)
      // One SQE per wake-up, never one per sleep.
      expect(s.maxRingOps).toBeLessThanOrEqual(8)
      expect(s.armedTotal).toBeLessThan(N / 10)
      // Nothing armed once every sleep ended.
      expect(s.armed).toBe(false)
      yield* waitUntil("ops back to zero", Effect.map(inFlight, (n) => n === 0))
    }))), 120_000)

  it.live("100k sleeps of 1-200 ms started in batches while earlier ones fire: many re-arms, none early", () =>
    withRing(onRingClock(Effect.gen(function*() {
      // Starting 100 fibers at a time and letting the loop turn in between means sleeps wake,
      // the next deadline is armed, and new earlier deadlines cancel armed timeouts, all interleaved.
      const N = 100_000
      const BATCH = 100
      let early = 0
      let done = 0
      const lateness = new Float64Array(N)
      // Completion is counted in the fibers (joining 100k fibers would itself stall the loop).
      const allDone = yield* Deferred.make<void>()
      for (let b = 0; b < N / BATCH; b++) {
        for (let i = 0; i < BATCH; i++) {
          const ms = 1 + Math.random() * 199
          const deadline = hr() + BigInt(Math.ceil(ms * 1e6))
          const k = b * BATCH + i
          yield* Effect.fork(Effect.flatMap(Effect.sleep(ms), () => {
            const now = hr()
            if (now < deadline) early++
            lateness[k] = Number(now - deadline) / 1e6
            return ++done === N ? Deferred.succeed(allDone, undefined) : Effect.void
          }))
        }
        yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      }
      yield* Deferred.await(allDone)
      const s = yield* clockStats
      lateness.sort()
      console.log(
        `100k batched sleeps: lateness p50 ${lateness[N >> 1]!.toFixed(1)} ms, p99 ${lateness[Math.floor(N * 0.99)]!.toFixed(1)} ms, ` +
          `max ${lateness[N - 1]!.toFixed(1)} ms; ${s.armedTotal} timeouts armed, ${s.fired} fired, ` +
          `${s.cancelled} cancelled, at most ${s.maxRingOps} in flight`
      )
      expect(done).toBe(N)
      expect(early).toBe(0)
      expect(s.earlyCqes).toBe(0)
      expect(s.fallbacks).toBe(0)
      expect(s.fired).toBeGreaterThan(100)
      expect(s.maxRingOps).toBeLessThanOrEqual(8)
      expect(s.armed).toBe(false)
      yield* waitUntil("ops back to zero", Effect.map(inFlight, (n) => n === 0))
    }))), 120_000)

  it.live("interrupting 10k sleeps empties the heap and the op table, without closing the clock", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const N = 10_000
      const fibers = yield* Effect.forEach(
        Array.from({ length: N }, () => 30_000 + Math.random() * 30_000),
        (ms) => Effect.fork(Effect.sleep(ms))
      )
      yield* waitUntil("all sleeps registered", Effect.map(clockStats, (s) => s.pending === N))
      expect((yield* clockStats).armed).toBe(true)
      yield* Fiber.interruptAll(fibers)
      const s = yield* clockStats
      expect(s.pending).toBe(0)
      expect(s.removed).toBe(N)
      expect(s.woken).toBe(0)
      yield* waitUntil("ring timeout cancelled and completed", Effect.map(inFlight, (n) => n === 0))
      const after = yield* clockStats
      expect(after.armed).toBe(false)
      expect(after.ringOps).toBe(0)
      expect(after.fired).toBe(0)
    }))))

  it.live("interrupting the earliest sleep re-arms for the next; an earlier new sleep re-arms too", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const t0 = hr()
      // Far apart and long: the interrupt must reach `a` before it is due even on a loaded machine.
      const a = yield* Effect.fork(Effect.sleep(500))
      const b = yield* Effect.fork(Effect.map(Effect.sleep(900), () => msSince(t0)))
      yield* waitUntil("two sleeps armed", Effect.map(clockStats, (s) => s.pending === 2 && s.armed))
      yield* Fiber.interrupt(a)
      yield* waitUntil("re-armed for the 900 ms sleep", Effect.map(clockStats, (s) => s.armedTotal === 2 && s.cancelled === 1))
      expect(yield* Fiber.join(b)).toBeGreaterThanOrEqual(900)
      // A later sleep is armed; a shorter one arrives and must not wait for it.
      const t1 = hr()
      const late = yield* Effect.fork(Effect.sleep(2_000))
      yield* waitUntil("long sleep armed", Effect.map(clockStats, (s) => s.pending === 1 && s.armed))
      yield* Effect.sleep(20)
      const took = msSince(t1)
      expect(took).toBeGreaterThanOrEqual(20)
      expect(took).toBeLessThan(1000)
      yield* Fiber.interrupt(late)
      expect((yield* clockStats).earlyCqes).toBe(0)
    }))))

  it.live("make + Effect.withClock puts only part of a program on the ring clock", () =>
    withRing(Effect.gen(function*() {
      const clock = yield* RinglineClock.make()
      const t0 = hr()
      yield* Effect.withClock(Effect.sleep(30), clock)
      expect(msSince(t0)).toBeGreaterThanOrEqual(30)
      expect((yield* clock.stats).fired).toBe(1)
      // Outside withClock the default clock is still in charge.
      expect(RinglineClock.isRinglineClock(yield* Effect.clock)).toBe(false)
      yield* Effect.sleep(10)
      expect((yield* clock.stats).armedTotal).toBe(1)
    })))

  it.live("currentTimeMillis and currentTimeNanos are sane", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const clock = yield* Effect.clock
      expect(RinglineClock.isRinglineClock(clock)).toBe(true)
      const ms = yield* Clock.currentTimeMillis
      expect(Math.abs(ms - Date.now())).toBeLessThan(1000)
      const n1 = yield* Clock.currentTimeNanos
      expect(Math.abs(Number(n1 / 1_000_000n) - Date.now())).toBeLessThan(1000)
      yield* Effect.sleep(10)
      const n2 = yield* Clock.currentTimeNanos
      expect(n2 - n1).toBeGreaterThanOrEqual(10_000_000n)
      expect(clock.unsafeCurrentTimeMillis()).toBeGreaterThanOrEqual(ms)
    }))))

  it.live("with the op table full, sleeps fall back to a libuv timer: on time, never early", () =>
    withRing(Effect.gen(function*() {
      const d = (yield* Ringline.Ringline).driver!
      // Fill every op slot with a 300 ms relative TIMEOUT of our own.
      const owner = { onCqe() {} }
      let filled = 0
      while (true) {
        let slot: number
        try {
          slot = d.alloc(owner, 0)
        } catch {
          break
        }
        const ts = new DataView(d.args.buffer, d.args.byteOffset + slot * 128 + 112, 16)
        ts.setBigInt64(0, 0n, true)
        ts.setBigInt64(8, 300_000_000n, true)
        const w = d.sqe(11, 0, -1, slot)
        d.setAddr(w, 4, d.argAddress(slot) + 112)
        d.words[w + 6] = 1
        filled++
      }
      expect(filled).toBeGreaterThan(1000)
      yield* onRingClock(Effect.gen(function*() {
        const t0 = hr()
        yield* Effect.sleep(50)
        const took = msSince(t0)
        expect(took).toBeGreaterThanOrEqual(50)
        // Generous: this runs after the 100k test, whose garbage the GC may still be collecting.
        expect(took).toBeLessThan(2000)
        expect((yield* clockStats).fallbacks).toBeGreaterThanOrEqual(1)
        // Once the fillers expired, sleeps are back on the ring.
        yield* waitUntil("fillers expired", Effect.map(inFlight, (n) => n === 0))
        const before = yield* clockStats
        yield* Effect.sleep(10)
        const after = yield* clockStats
        expect(after.fallbacks).toBe(before.fallbacks)
        expect(after.fired).toBe(before.fired + 1)
      }))
    }), { maxConnections: 1 }))

  it.live("releasing the clock with a sleep pending: the ring timeout is cancelled, the sleep still ends on time", () =>
    withRing(Effect.gen(function*() {
      const took = yield* Deferred.make<number>()
      const t0 = hr()
      yield* onRingClock(Effect.gen(function*() {
        yield* Effect.forkDaemon(Effect.sleep(100).pipe(Effect.zipRight(Effect.suspend(() => Deferred.succeed(took, msSince(t0))))))
        yield* waitUntil("sleep armed on the ring", Effect.map(clockStats, (s) => s.pending === 1 && s.armed))
      }))
      // The clock's scope closed: its TIMEOUT reached its terminal CQE before the release completed.
      expect(yield* inFlight).toBe(0)
      expect(yield* Deferred.await(took)).toBeGreaterThanOrEqual(100)
    })))

  it.live("ring ops under the ring clock: Effect.timeout and Effect.race withdraw a pending read", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const baseline = (yield* inFlight) - ((yield* clockStats).ringOps)
      const t0 = hr()
      const r = yield* Effect.either(Effect.timeout(c.recv, "30 millis"))
      expect(Either.isLeft(r)).toBe(true)
      expect(msSince(t0)).toBeGreaterThanOrEqual(30)
      const won = yield* Effect.race(Effect.as(c.recv, "read"), Effect.as(Effect.sleep(15), "slept"))
      expect(won).toBe("slept")
      yield* waitUntil("ops back to the connection's own", Effect.map(inFlight, (n) => n === baseline))
      // The connection still works: no byte was lost to the withdrawn reads.
      s.write("after")
      const got = yield* c.recv
      expect(got._tag === "Some" && Buffer.from(got.value).toString()).toBe("after")
      s.destroy()
    }))))

  it.effect("TestClock still drives sleeps and timeouts next to a ring Layer that does not opt in", () =>
    Effect.gen(function*() {
      expect(RinglineClock.isRinglineClock(yield* Effect.clock)).toBe(false)
      expect(Option.isNone(yield* RinglineClock.stats)).toBe(true)
      const l = yield* Tcp.listen({ port: 0 })
      const baseline = yield* inFlight
      const sleeper = yield* Effect.fork(Effect.sleep("1 hour"))
      const accept = yield* Effect.fork(Effect.either(Effect.timeout(Effect.scoped(l.accept), "10 seconds")))
      yield* TestClock.adjust("10 seconds")
      const r = yield* Fiber.join(accept)
      expect(Either.isLeft(r) && r.left._tag).toBe("TimeoutException")
      // The timed-out accept was withdrawn; the listener's own accept is still armed.
      expect(yield* inFlight).toBe(baseline)
      expect(sleeper.unsafePoll()).toBe(null)
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(sleeper)
      expect(yield* Clock.currentTimeMillis).toBe(3_610_000)
    }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Ringline.layer()))))
})

describe("Ringline.clockLayer", () => {
  it.live("is the ring clock under SPEC §6's name", () =>
    withRing(Effect.gen(function*() {
      const t0 = process.hrtime.bigint()
      const stats = yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.sleep("30 millis")
        return yield* RinglineClock.stats
      })).pipe(Effect.provide(Ringline.clockLayer))
      expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeGreaterThanOrEqual(30)
      expect(Option.isSome(stats)).toBe(true)
    })))
})

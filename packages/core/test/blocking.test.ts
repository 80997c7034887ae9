import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Blocking, Tcp } from "../src/index.js"
import { echo, exchange, portOf, withRing } from "./helpers.js"

const jobs = new URL("./fixtures/blocking-jobs.mjs", import.meta.url)
const broken = new URL("./fixtures/blocking-broken.mjs", import.meta.url)

/** Threads of this process (the main thread, libuv's pool, V8's platform threads, workers). */
const threadCount = (): number => readdirSync("/proc/self/task").length

const now = () => performance.now()

const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const t0 = now()
    const a = yield* self
    return [a, now() - t0] as const
  })

/** How late a 10 ms timer on the main thread fires. */
const timerLag = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const t0 = now()
    setTimeout(() => resolve(now() - t0 - 10), 10)
  })
)

describe("Blocking", () => {
  it.live("returns the function's value (sync and async, structured-cloned)", () =>
    withRing(Effect.gen(function*() {
      expect(yield* Blocking.run<number>(jobs, "add", 2, 3)).toBe(5)
      const r = yield* Blocking.run<any>(jobs, "double", 21)
      expect(r.doubled).toBe(42)
      expect(r.at).toBeInstanceOf(Date)
      expect(Array.from(r.bytes)).toEqual([1, 2, 3])
      // An absolute path works as well as a URL.
      expect(yield* Blocking.run<number>(fileURLToPath(jobs), "add", 1, 1)).toBe(2)
      // A built-in module's export.
      expect(yield* Blocking.run<string>("node:path", "join", "a", "b")).toBe("a/b")
      // The job ran on another thread.
      expect(yield* Blocking.run<number>(jobs, "whoami")).toBeGreaterThan(0)
    }).pipe(Effect.provide(Blocking.layer({ size: 2 })))))

  it.live("a thrown or rejected error fails the Effect with a typed BlockingError (message, name, stack, code)", () =>
    withRing(Effect.gen(function*() {
      const thrown = yield* Effect.flip(Blocking.run(jobs, "fail", "bad input"))
      expect(thrown._tag).toBe("BlockingError")
      expect(thrown.reason).toBe("Threw")
      expect(thrown.detail).toBe("bad input")
      expect(thrown.errorName).toBe("CustomError")
      expect(thrown.code).toBe("E_CUSTOM")
      expect(thrown.stack).toContain("blocking-jobs.mjs")
      expect(thrown.message).toContain("threw CustomError: bad input")

      const rejected = yield* Effect.flip(Blocking.run(jobs, "reject", "no luck"))
      expect(rejected.reason).toBe("Threw")
      expect(rejected.errorName).toBe("RangeError")
      expect(rejected.detail).toBe("no luck")

      const str = yield* Effect.flip(Blocking.run(jobs, "throwString"))
      expect(str.reason).toBe("Threw")
      expect(str.detail).toBe("just a string")

      // The worker survived all of that: still one worker, three jobs completed on it.
      const s = yield* Blocking.stats
      expect(s.workers).toBe(1)
      expect(s.crashed).toBe(0)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("bad modules, exports and values are typed errors", () =>
    withRing(Effect.gen(function*() {
      const missing = yield* Effect.flip(Blocking.run(jobs, "nope"))
      expect(missing.reason).toBe("Import")
      expect(missing.detail).toContain("no export \"nope\"")
      const notFn = yield* Effect.flip(Blocking.run(jobs, "notAFunction"))
      expect(notFn.reason).toBe("Import")
      expect(notFn.detail).toContain("not a function")
      const brokenModule = yield* Effect.flip(Blocking.run(broken, "anything"))
      expect(brokenModule.reason).toBe("Import")
      expect(brokenModule.detail).toBe("broken at import")
      const noFile = yield* Effect.flip(Blocking.run("/nonexistent/module.mjs", "f"))
      expect(noFile.reason).toBe("Import")
      expect(noFile.code).toBe("ERR_MODULE_NOT_FOUND")
      const relative = yield* Effect.flip(Blocking.run("./fixtures/blocking-jobs.mjs", "add"))
      expect(relative.reason).toBe("Import")
      expect(relative.detail).toContain("relative")
      const badArg = yield* Effect.flip(Blocking.run(jobs, "add", () => 1, 2))
      expect(badArg.reason).toBe("DataClone")
      const badResult = yield* Effect.flip(Blocking.run(jobs, "returnsFunction"))
      expect(badResult.reason).toBe("DataClone")
      // And the pool still works.
      expect(yield* Blocking.run(jobs, "add", 1, 2)).toBe(3)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("a worker that exits or dies of an uncaught exception fails its job (Crashed) and is replaced", () =>
    withRing(Effect.gen(function*() {
      const first = yield* Blocking.run<number>(jobs, "whoami")
      const exited = yield* Effect.flip(Blocking.run(jobs, "exit", 7))
      expect(exited.reason).toBe("Crashed")
      expect(exited.exitCode).toBe(7)
      const second = yield* Blocking.run<number>(jobs, "whoami")
      expect(second).not.toBe(first)

      const uncaught = yield* Effect.flip(Blocking.run(jobs, "uncaught", "kaboom"))
      expect(uncaught.reason).toBe("Crashed")
      expect(uncaught.detail).toBe("kaboom")
      expect(uncaught.exitCode).toBe(1)
      const third = yield* Blocking.run<number>(jobs, "whoami")
      expect(third).not.toBe(second)

      const s = yield* Blocking.stats
      expect(s.crashed).toBe(2)
      expect(s.started).toBe(3)
      expect(s.workers).toBe(1)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("interrupting a running job terminates its worker; a queued job is dropped", () =>
    withRing(Effect.gen(function*() {
      // A job that would block its thread for 20 s, interrupted after 100 ms.
      const [exit, ms] = yield* timed(Effect.exit(Effect.timeout(Blocking.run(jobs, "block", 20_000), "100 millis")))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(ms).toBeLessThan(5_000)
      let s = yield* Blocking.stats
      expect(s.recycled).toBe(1)
      // The interrupted Effect completed only after the worker's thread had exited.
      expect(s.workers).toBe(0)

      // Pool of 1: one job runs, the second waits in the queue and is interrupted there.
      const running = yield* Effect.fork(Blocking.run<number>(jobs, "block", 300))
      yield* Effect.sleep(20)
      const queued = yield* Effect.fork(Blocking.run(jobs, "add", 1, 1))
      yield* Effect.sleep(20)
      expect((yield* Blocking.stats).queued).toBe(1)
      yield* Fiber.interrupt(queued)
      expect((yield* Blocking.stats).queued).toBe(0)
      expect(yield* Fiber.join(running)).toBeGreaterThan(0)
      s = yield* Blocking.stats
      expect(s.recycled).toBe(1)
      expect(s.workers).toBe(1)
      expect(yield* Blocking.run(jobs, "add", 2, 2)).toBe(4)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("a 50 ms busy loop on a worker does not delay a 10 ms timer on the main thread", () =>
    withRing(Effect.gen(function*() {
      yield* Blocking.run(jobs, "whoami") // warm the worker up
      // Control: the same busy loop on the main thread holds the timer back by ~40 ms or more.
      const { busy } = yield* Effect.promise(() => import("./fixtures/blocking-jobs.mjs"))
      const control = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const t0 = now()
          setTimeout(() => resolve(now() - t0 - 10), 10)
          busy(50)
        })
      )
      expect(control).toBeGreaterThanOrEqual(35)
      // On the pool: best of three, as the machine is shared.
      const lags: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const [[iterations, lag], total] = yield* timed(
          Effect.all([Blocking.run<number>(jobs, "busy", 50), timerLag], { concurrency: "unbounded" })
        )
        expect(iterations).toBeGreaterThan(0)
        expect(total).toBeGreaterThanOrEqual(49)
        lags.push(lag)
      }
      console.log(`timer lag: main-thread busy loop ${control.toFixed(1)} ms; pool busy loop ${lags.map((l) => l.toFixed(1)).join(", ")} ms`)
      expect(Math.min(...lags)).toBeLessThan(25)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("three concurrent jobs on a pool of 3 take ~1x, on a pool of 1 ~3x", () =>
    withRing(Effect.gen(function*() {
      // `block` waits in Atomics.wait (a blocking call that does not burn CPU), so the measurement
      // does not depend on how many cores this shared machine gives us.
      const three = (n: number) =>
        Effect.gen(function*() {
          // Warm up: concurrent jobs make the pool start all of its workers.
          yield* Effect.all(Array.from({ length: n }, () => Blocking.run(jobs, "block", 30)), { concurrency: "unbounded" })
          return yield* timed(
            Effect.all([1, 2, 3].map(() => Blocking.run<number>(jobs, "block", 300)), { concurrency: "unbounded" })
          )
        })
      const [threads, parallel] = yield* three(3).pipe(Effect.provide(Blocking.layer({ size: 3 })))
      expect(new Set(threads).size).toBe(3)
      const [, serial] = yield* three(1).pipe(Effect.provide(Blocking.layer({ size: 1 })))
      console.log(`3 x 300 ms jobs: pool of 3 ${parallel.toFixed(0)} ms, pool of 1 ${serial.toFixed(0)} ms`)
      expect(parallel).toBeGreaterThanOrEqual(295)
      expect(parallel).toBeLessThan(600)
      expect(serial).toBeGreaterThanOrEqual(895)
    })))

  it.live("the ring keeps serving while a worker is busy", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const job = yield* Effect.fork(Blocking.run<number>(jobs, "busy", 400))
      yield* Effect.sleep(50)
      const [back, ms] = yield* timed(Effect.promise(() => exchange(portOf(l), Buffer.from("ping"))))
      expect(back.toString()).toBe("ping")
      expect(ms).toBeLessThan(300)
      expect(job.unsafePoll()).toBeNull() // the job was still running during the exchange
      yield* Fiber.join(job)
    }).pipe(Effect.provide(Blocking.layer({ size: 1 })))))

  it.live("releasing the layer terminates every worker (thread count back) and fails running jobs", () =>
    withRing(Effect.gen(function*() {
      const before = threadCount()
      const scope = yield* Scope.make()
      const pool = yield* Blocking.make({ size: 3 }).pipe(Scope.extend(scope))
      yield* Effect.all([1, 2, 3].map(() => pool.run(jobs, "block", 50)), { concurrency: "unbounded" })
      expect((yield* pool.stats).workers).toBe(3)
      expect(threadCount()).toBeGreaterThanOrEqual(before + 3)
      // A job still running when the pool shuts down fails with Shutdown (it does not hang).
      const running = yield* Effect.fork(pool.run(jobs, "block", 20_000))
      yield* Effect.sleep(50)
      const [, closeMs] = yield* timed(Scope.close(scope, Exit.void))
      expect(closeMs).toBeLessThan(5_000)
      const err = yield* Effect.flip(Fiber.join(running))
      expect(err.reason).toBe("Shutdown")
      expect((yield* pool.stats).workers).toBe(0)
      expect(threadCount()).toBeLessThanOrEqual(before)
      // A shut-down pool refuses new jobs, typed.
      expect((yield* Effect.flip(pool.run(jobs, "add", 1, 2))).reason).toBe("Shutdown")
    })))

  it.live("idle workers are terminated after idleTimeout and restarted on demand", () =>
    withRing(Effect.gen(function*() {
      yield* Effect.all([1, 2].map(() => Blocking.run(jobs, "block", 20)), { concurrency: "unbounded" })
      expect((yield* Blocking.stats).workers).toBe(2)
      yield* Effect.sleep(400)
      expect((yield* Blocking.stats).workers).toBe(0)
      expect(yield* Blocking.run(jobs, "add", 1, 2)).toBe(3)
      expect((yield* Blocking.stats).started).toBe(3)
    }).pipe(Effect.provide(Blocking.layer({ size: 2, idleTimeout: Duration.millis(100) })))))

  it.live("pool options are validated, naming the field", () =>
    Effect.gen(function*() {
      for (const size of [0, -1, 1.5, 2000, Number.NaN]) {
        const e = yield* Effect.flip(Effect.scoped(Blocking.make({ size })))
        expect(e._tag).toBe("RinglineConfigError")
        expect(e.field).toBe("blocking.size")
      }
      const e = yield* Effect.flip(Effect.scoped(Blocking.make({ idleTimeout: "soon" as any })))
      expect(e.field).toBe("blocking.idleTimeout")
      // From JavaScript: options that are no object were read as "all defaults" before.
      for (const bad of [42, null, "big"]) {
        const o = yield* Effect.flip(Effect.scoped(Blocking.make(bad as any)))
        expect(o, String(bad)).toMatchObject({ _tag: "RinglineConfigError", field: "blocking" })
        expect(o.message).toContain("options must be an object")
      }
      const layerError = yield* Effect.flip(Effect.provide(Blocking.stats, Blocking.layer({ size: 0 })))
      expect(layerError.message).toContain("blocking.size")
    }))
})

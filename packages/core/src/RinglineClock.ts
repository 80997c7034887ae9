/**
 * An opt-in Effect `Clock` whose sleeps are timed by the ring (IORING_OP_TIMEOUT) instead of
 * libuv timers. Every `Effect.sleep`, `Effect.timeout`, `Effect.race` against a sleep, `Schedule`
 * delay ... in a program that provides {@link layer} is woken by a completion on the ring.
 *
 * Sleeps live in a JS min-heap of CLOCK_MONOTONIC deadlines; the ring holds ONE timeout, for the
 * earliest deadline, so any number of concurrent sleeps costs one op-table slot. A sleep never
 * wakes before its deadline (checked against `process.hrtime`) and never hangs: if the ring cannot
 * take a timeout (op table full, kernel error, the clock already released) a libuv timer stands in.
 *
 * Without this Layer, ringline programs use Effect's default clock (and `TestClock` in tests).
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Layer, Option } from "effect"
import type { Scope } from "effect"
import { Timers, type TimerMode, type TimerStats as InternalTimerStats } from "./internal/timers.js"
import { Op } from "./internal/ring/abi.js"
import { Ringline } from "./internal/tag.js"
import { notAvailable, RELEASED, RinglineUnavailable } from "./RinglineError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@ringline/core/RinglineClock")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Counters of a ring clock.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimerStats extends InternalTimerStats {}

/**
 * A `Clock` whose sleeps are timed by IORING_OP_TIMEOUT.
 *
 * @since 0.1.0
 * @category models
 */
export interface RinglineClock extends Clock.Clock {
  readonly [TypeId]: TypeId
  /** How many sleeps are waiting, how many timeouts the ring fired, fallbacks, ... */
  readonly stats: Effect.Effect<TimerStats>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * `absolute` (default): the ring timeout carries the deadline itself (IORING_TIMEOUT_ABS on
   * CLOCK_MONOTONIC). `relative`: it carries the time left when armed.
   */
  readonly mode?: TimerMode
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isRinglineClock = (u: unknown): u is RinglineClock => typeof u === "object" && u !== null && TypeId in u

// Wall-clock-anchored nanoseconds that advance with CLOCK_MONOTONIC, like Effect's default clock.
const hrOrigin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()

class RingClockImpl implements RinglineClock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  readonly [TypeId]: TypeId = TypeId
  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.unsafeCurrentTimeMillis())
  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.unsafeCurrentTimeNanos())
  readonly stats: Effect.Effect<TimerStats>

  constructor(private readonly timers: Timers) {
    this.stats = Effect.sync(() => timers.stats())
  }

  unsafeCurrentTimeMillis(): number {
    return Date.now()
  }

  unsafeCurrentTimeNanos(): bigint {
    return hrOrigin + process.hrtime.bigint()
  }

  sleep(duration: Duration.Duration): Effect.Effect<void> {
    const v = duration.value
    if (v._tag === "Infinity") return Effect.never
    const ns = v._tag === "Nanos" ? Number(v.nanos) : v.millis * 1e6
    const timers = this.timers
    return Effect.async<void>((resume) => {
      const s = timers.add(ns, () => resume(Effect.void))
      // Interruption takes the sleep out of the heap (and re-arms the ring if it was the earliest).
      return Effect.sync(() => timers.remove(s))
    })
  }
}

/**
 * Builds a ring clock on the current Ringline ring. Releasing the scope cancels the armed ring
 * timeout and waits for its completion; a sleep still pending then (a fiber that outlives the
 * scope) finishes on a libuv timer. Fails with `RinglineUnavailable` when the Ringline service has
 * no io_uring driver or the kernel lacks IORING_OP_TIMEOUT.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<RinglineClock, RinglineUnavailable, Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const ring = yield* Ringline
    const driver = ring.driver
    if (driver === undefined) return yield* notAvailable("RinglineClock", ring.mode)
    if (driver.released || driver.closed) {
      return yield* new RinglineUnavailable({ reason: "Other", detail: RELEASED })
    }
    if (driver.opcodes[Op.TIMEOUT] !== 1) {
      return yield* new RinglineUnavailable({
        reason: "MissingOpcode",
        detail: "the kernel lacks IORING_OP_TIMEOUT; use the default clock"
      })
    }
    const timers = new Timers(driver, options?.mode ?? "absolute")
    yield* Effect.addFinalizer(() => Effect.async<void>((resume) => timers.close(() => resume(Effect.void))))
    return new RingClockImpl(timers)
  })

/**
 * Makes the ring clock the `Clock` of everything it is provided to (`Layer.setClock`).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Ringline, RinglineClock } from "@ringline/core"
 *
 * const program = Effect.timeout(Effect.sleep("10 seconds"), "20 millis")
 * Ringline.runMain(program.pipe(Effect.provide(RinglineClock.layer.pipe(Layer.provideMerge(Ringline.layer())))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options?: Options): Layer.Layer<never, RinglineUnavailable, Ringline> =>
  Layer.unwrapScoped(Effect.map(make(options), (clock) => Layer.setClock(clock)))

/**
 * {@link layerWith} with absolute CLOCK_MONOTONIC timeouts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, RinglineUnavailable, Ringline> = layerWith()

/**
 * The counters of the current clock when it is a ring clock.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<Option.Option<TimerStats>> = Clock.clockWith((clock) =>
  isRinglineClock(clock) ? Effect.map(clock.stats, Option.some) : Effect.succeed(Option.none())
)

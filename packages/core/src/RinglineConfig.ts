/**
 * Configuration of the ringline driver, validated with Schema. Defaults follow the Rust ringline.
 *
 * @since 0.1.0
 */
import { Config, Duration, Effect, Either, ParseResult, Schema } from "effect"
import { show } from "./internal/validate.js"
import { RinglineConfigError } from "./RinglineError.js"

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const powerOfTwo = (max: number) =>
  Schema.Int.pipe(
    Schema.filter((n) => n >= 1 && n <= max && (n & (n - 1)) === 0 || `must be a power of two between 1 and ${max}`)
  )
const between = (min: number, max: number) =>
  Schema.Int.pipe(Schema.filter((n) => (n >= min && n <= max) || `must be an integer between ${min} and ${max}`))
const positive = Schema.Int.pipe(Schema.filter((n) => n > 0 || "must be a positive integer"))
const nonNegative = Schema.Int.pipe(Schema.filter((n) => n >= 0 || "must be a non-negative integer"))
const millis = Schema.Number.pipe(Schema.filter((n) => (Number.isFinite(n) && n >= 0) || "must be a number of milliseconds >= 0"))

/**
 * The validated configuration.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RinglineConfig = Schema.Struct({
  /** Submission queue entries; the completion queue gets 4×. */
  sqEntries: powerOfTwo(32768),
  /**
   * SQEs staged before the driver submits them without waiting for the end of the event-loop
   * turn. While a batch of completions is being handled, early submission keeps the device busy
   * (O_DIRECT reads at queue depth 32: +60 % IOPS with 8–16 against end-of-turn only). 0 submits
   * only at the end of the turn (and when the staging area is full).
   */
  submitBatch: between(0, 32768),
  recvBuffer: Schema.Struct({
    /** Number of kernel-provided receive buffers. */
    ringSize: powerOfTwo(32768),
    /**
     * Size of each receive buffer in bytes. One multishot completion carries at most one buffer,
     * so a bulk stream costs a completion (and a wake-up) per `bufferSize` bytes: 64 KiB buffers
     * take a 64 KiB write in one. Small messages use a buffer's first bytes only (the pages
     * behind them are never touched).
     */
    bufferSize: between(1, 1048576)
  }),
  /** Size of the fixed-file table, i.e. the most connections open at once. */
  maxConnections: between(1, 2 ** 24 - 1),
  backlog: positive,
  sendPool: Schema.Struct({ slots: positive, slotSize: positive }),
  /** Sends of at least this many bytes use SEND_ZC; 0 disables zero-copy. */
  sendZeroCopyThreshold: nonNegative,
  /** Most SQEs linked in one chain; 0 disables chains. */
  maxChainLength: nonNegative,
  tcpNoDelay: Schema.Boolean,
  /** Queued send bytes above which recv pauses and `write` waits. */
  sendQueueHighWater: positive,
  /** Queued send bytes at or below which recv resumes and waiting writes continue. */
  sendQueueLowWater: nonNegative,
  /**
   * Longest wait for queued sends to drain when closing, in milliseconds: the validated form of
   * the input's `shutdownTimeout` (a `Duration.DurationInput`).
   */
  shutdownTimeoutMs: millis,
  sqpoll: Schema.Boolean,
  sqpollIdleMs: between(0, 2 ** 31 - 1),
  timestamps: Schema.Boolean
}).pipe(
  Schema.filter((c) =>
    c.sendQueueLowWater <= c.sendQueueHighWater ||
    { path: ["sendQueueLowWater"], message: "must not exceed sendQueueHighWater" }
  )
)

/**
 * @since 0.1.0
 * @category models
 */
export type RinglineConfig = typeof RinglineConfig.Type

type DeepPartial<T> = { readonly [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] }

/**
 * What a caller may pass: any subset of the fields; the rest take their defaults. Durations are
 * `Duration.DurationInput`s (`"5 seconds"`, `Duration.millis(200)`, a number of milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export type RinglineConfigInput = Omit<DeepPartial<RinglineConfig>, "shutdownTimeoutMs"> & {
  /**
   * Longest wait for queued sends to drain, and for running handlers to finish, when closing
   * (default 5 seconds).
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * The same in milliseconds.
   * @deprecated since 0.2.0: use `shutdownTimeout` (a `Duration.DurationInput`); both at once are rejected.
   */
  readonly shutdownTimeoutMs?: number | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaults: RinglineConfig = {
  sqEntries: 256,
  submitBatch: 16,
  recvBuffer: { ringSize: 256, bufferSize: 65536 },
  maxConnections: 16000,
  backlog: 1024,
  sendPool: { slots: 1024, slotSize: 16384 },
  sendZeroCopyThreshold: 16384,
  maxChainLength: 16,
  tcpNoDelay: true,
  sendQueueHighWater: 1024 * 1024,
  sendQueueLowWater: 256 * 1024,
  shutdownTimeoutMs: 5000,
  sqpoll: false,
  sqpollIdleMs: 1000,
  timestamps: false
}

/**
 * Merges `input` over the defaults and validates the result. A bad value fails with a
 * {@link RinglineConfigError} naming the field and its rule.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: RinglineConfigInput = {}): Either.Either<RinglineConfig, RinglineConfigError> => {
  // Shapes first: spreading a string or an array would turn its characters into bogus keys.
  if (!isRecord(input)) return Either.left(new RinglineConfigError({ field: "(config)", detail: `must be an object, got ${show(input)}` }))
  for (const key of ["recvBuffer", "sendPool"] as const) {
    const v: unknown = input[key]
    if (v !== undefined && !isRecord(v)) {
      return Either.left(new RinglineConfigError({ field: key, detail: `must be an object, got ${show(v)}` }))
    }
  }
  // shutdownTimeout (a Duration input) is checked here and carried as shutdownTimeoutMs.
  const { shutdownTimeout, ...given } = input
  let timeoutMs: { shutdownTimeoutMs: number } | undefined = undefined
  if (shutdownTimeout !== undefined) {
    if (given.shutdownTimeoutMs !== undefined) {
      return Either.left(new RinglineConfigError({ field: "shutdownTimeout", detail: "give either shutdownTimeout or the deprecated shutdownTimeoutMs, not both" }))
    }
    // Duration would turn a negative or NaN number into zero: refuse it instead.
    const d = typeof shutdownTimeout === "number" && !(shutdownTimeout >= 0) ? undefined : Duration.decodeUnknown(shutdownTimeout)
    if (d === undefined || d._tag === "None" || !Duration.isFinite(d.value)) {
      return Either.left(new RinglineConfigError({ field: "shutdownTimeout", detail: `must be a finite duration, got ${show(shutdownTimeout)}` }))
    }
    timeoutMs = { shutdownTimeoutMs: Duration.toMillis(d.value) }
  }
  const merged = {
    ...defaults,
    ...given,
    ...timeoutMs,
    recvBuffer: { ...defaults.recvBuffer, ...input.recvBuffer },
    sendPool: { ...defaults.sendPool, ...input.sendPool }
  }
  // An unknown key is an error, not ignored: a misspelt option (`maxConnection`) must not
  // silently run with the default.
  return Schema.decodeUnknownEither(RinglineConfig, { errors: "first", onExcessProperty: "error" })(merged).pipe(
    Either.mapLeft((error) => {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
      const field = issue === undefined || issue.path.length === 0 ? "(config)" : issue.path.join(".")
      const value = issue === undefined ? undefined : issue.path.reduce<any>((o, k) => o?.[k], merged)
      return new RinglineConfigError({
        field,
        detail: `${issue?.message ?? String(error)} (got ${show(value)})`
      })
    })
  )
}

/**
 * Reads the configuration from Effect's `Config` (by default the environment):
 * `RINGLINE_SQ_ENTRIES`, `RINGLINE_SUBMIT_BATCH`, `RINGLINE_RECV_RING_SIZE`, `RINGLINE_RECV_BUFFER_SIZE`,
 * `RINGLINE_MAX_CONNECTIONS`, `RINGLINE_BACKLOG`, `RINGLINE_SEND_POOL_SLOTS`,
 * `RINGLINE_SEND_POOL_SLOT_SIZE`, `RINGLINE_SEND_ZC_THRESHOLD`, `RINGLINE_MAX_CHAIN_LENGTH`,
 * `RINGLINE_TCP_NODELAY`, `RINGLINE_SEND_HIGH_WATER`, `RINGLINE_SEND_LOW_WATER`,
 * `RINGLINE_SHUTDOWN_TIMEOUT` (a duration, e.g. `5 seconds`), `RINGLINE_SQPOLL`,
 * `RINGLINE_SQPOLL_IDLE_MS`, `RINGLINE_TIMESTAMPS`. Unset keys keep their defaults.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<RinglineConfigInput> = Config.all({
  sqEntries: Config.option(Config.integer("RINGLINE_SQ_ENTRIES")),
  submitBatch: Config.option(Config.integer("RINGLINE_SUBMIT_BATCH")),
  ringSize: Config.option(Config.integer("RINGLINE_RECV_RING_SIZE")),
  bufferSize: Config.option(Config.integer("RINGLINE_RECV_BUFFER_SIZE")),
  maxConnections: Config.option(Config.integer("RINGLINE_MAX_CONNECTIONS")),
  backlog: Config.option(Config.integer("RINGLINE_BACKLOG")),
  slots: Config.option(Config.integer("RINGLINE_SEND_POOL_SLOTS")),
  slotSize: Config.option(Config.integer("RINGLINE_SEND_POOL_SLOT_SIZE")),
  sendZeroCopyThreshold: Config.option(Config.integer("RINGLINE_SEND_ZC_THRESHOLD")),
  maxChainLength: Config.option(Config.integer("RINGLINE_MAX_CHAIN_LENGTH")),
  tcpNoDelay: Config.option(Config.boolean("RINGLINE_TCP_NODELAY")),
  sendQueueHighWater: Config.option(Config.integer("RINGLINE_SEND_HIGH_WATER")),
  sendQueueLowWater: Config.option(Config.integer("RINGLINE_SEND_LOW_WATER")),
  shutdownTimeout: Config.option(Config.duration("RINGLINE_SHUTDOWN_TIMEOUT")),
  sqpoll: Config.option(Config.boolean("RINGLINE_SQPOLL")),
  sqpollIdleMs: Config.option(Config.integer("RINGLINE_SQPOLL_IDLE_MS")),
  timestamps: Config.option(Config.boolean("RINGLINE_TIMESTAMPS"))
}).pipe(
  Config.map((o) => {
    const pick = <A>(opt: { _tag: "Some"; value: A } | { _tag: "None" }): A | undefined =>
      opt._tag === "Some" ? opt.value : undefined
    const out: Record<string, unknown> = {}
    const set = (key: string, v: unknown) => {
      if (v !== undefined) out[key] = v
    }
    set("sqEntries", pick(o.sqEntries))
    set("submitBatch", pick(o.submitBatch))
    set("maxConnections", pick(o.maxConnections))
    set("backlog", pick(o.backlog))
    set("sendZeroCopyThreshold", pick(o.sendZeroCopyThreshold))
    set("maxChainLength", pick(o.maxChainLength))
    set("tcpNoDelay", pick(o.tcpNoDelay))
    set("sendQueueHighWater", pick(o.sendQueueHighWater))
    set("sendQueueLowWater", pick(o.sendQueueLowWater))
    set("shutdownTimeout", pick(o.shutdownTimeout))
    set("sqpoll", pick(o.sqpoll))
    set("sqpollIdleMs", pick(o.sqpollIdleMs))
    set("timestamps", pick(o.timestamps))
    const ringSize = pick(o.ringSize), bufferSize = pick(o.bufferSize)
    if (ringSize !== undefined || bufferSize !== undefined) {
      out.recvBuffer = { ...(ringSize === undefined ? {} : { ringSize }), ...(bufferSize === undefined ? {} : { bufferSize }) }
    }
    const slots = pick(o.slots), slotSize = pick(o.slotSize)
    if (slots !== undefined || slotSize !== undefined) {
      out.sendPool = { ...(slots === undefined ? {} : { slots }), ...(slotSize === undefined ? {} : { slotSize }) }
    }
    return out as RinglineConfigInput
  })
)

/**
 * {@link make} as an Effect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validate = (input?: RinglineConfigInput): Effect.Effect<RinglineConfig, RinglineConfigError> =>
  Either.match(make(input), { onLeft: Effect.fail, onRight: Effect.succeed })

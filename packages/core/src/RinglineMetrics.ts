/**
 * Effect `Metric`s for ringline, named `ringline_*`.
 *
 * The driver keeps plain integer counters on its hot path (no Effect call per CQE); this module
 * copies them into Effect metrics: on demand with {@link update}, periodically with {@link layer},
 * and once more when that layer is released.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import type { Driver } from "./internal/driver.js"
import { Ringline } from "./Ringline.js"

/** @since 0.1.0 @category metrics */
export const connectionsAccepted = Metric.counter("ringline_connections_accepted", {
  description: "Connections accepted by ringline listeners",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const connectionsConnected = Metric.counter("ringline_connections_connected", {
  description: "Outbound connections established",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const connectionsClosed = Metric.counter("ringline_connections_closed", {
  description: "Connections closed (inbound and outbound)",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const connectionsActive = Metric.gauge("ringline_connections_active", { description: "Connections open now" })
/** @since 0.1.0 @category metrics */
export const bytesReceived = Metric.counter("ringline_bytes_received", { description: "Bytes received", incremental: true })
/** @since 0.1.0 @category metrics */
export const bytesSent = Metric.counter("ringline_bytes_sent", { description: "Bytes taken by the kernel for sending", incremental: true })
/** @since 0.1.0 @category metrics */
export const udpDatagramsReceived = Metric.counter("ringline_udp_datagrams_received", {
  description: "UDP datagrams received",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const udpDatagramsSent = Metric.counter("ringline_udp_datagrams_sent", {
  description: "UDP datagrams taken by the kernel for sending",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const cqes = Metric.counter("ringline_cqes", { description: "Completion queue entries processed", incremental: true })
/** @since 0.1.0 @category metrics */
export const submissions = Metric.counter("ringline_submissions", { description: "SQEs submitted to the kernel", incremental: true })
/** @since 0.1.0 @category metrics */
export const sqFullRetries = Metric.counter("ringline_sq_full_retries", {
  description: "Times the submission queue filled up and was submitted early",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const enobufsParks = Metric.counter("ringline_enobufs_parks", {
  description: "Multishot receives stopped by an empty provided-buffer ring (-ENOBUFS)",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const backpressurePauses = Metric.counter("ringline_backpressure_pauses", {
  description: "Times a connection crossed sendQueueHighWater and stopped receiving",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const zeroCopySends = Metric.counter("ringline_zero_copy_sends", { description: "SEND_ZC/SENDMSG_ZC requests", incremental: true })
/** @since 0.1.0 @category metrics */
export const zeroCopyCopied = Metric.counter("ringline_zero_copy_copied", {
  description: "Zero-copy sends the kernel copied anyway (the connection then stops using zero-copy)",
  incremental: true
})
/**
 * Accepted connections that no accept took before their listener closed (closed unserved).
 *
 * @since 0.1.0
 * @category metrics
 */
export const acceptsAbandoned = Metric.counter("ringline_accepts_abandoned", {
  description: "Accepted connections closed unserved because no accept took them before the listener closed",
  incremental: true
})
/**
 * Milliseconds during which listeners did not accept because sockets held every fixed-file slot
 * (`maxConnections`); clients waited in the kernel's listen backlog meanwhile.
 *
 * @since 0.1.0
 * @category metrics
 */
export const acceptFullMillis = Metric.counter("ringline_accept_full_ms", {
  description: "Milliseconds listeners spent not accepting because the fixed-file table was full",
  incremental: true
})
/** @since 0.1.0 @category metrics */
export const inFlightOps = Metric.gauge("ringline_inflight_ops", { description: "Operations submitted and not yet completed" })
/**
 * Failed operations by errno code; the `code` tag carries the name (ECONNRESET, EPIPE, ...).
 *
 * @since 0.1.0
 * @category metrics
 */
export const errors = Metric.counter("ringline_errors", { description: "Failed operations by errno", incremental: true })

/** What was last copied, so that each update adds only the difference. */
const published = new WeakMap<Driver, Record<string, number>>()

const publish = (driver: Driver) =>
  Effect.suspend(() => {
    const c = driver.counters
    const s = driver.stats()
    const now: Record<string, number> = {
      accepted: c.accepted,
      connected: c.connected,
      closed: c.closed,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      datagramsIn: c.datagramsIn,
      datagramsOut: c.datagramsOut,
      cqes: c.cqes,
      submitted: s.submitted,
      sqFull: s.sqFull,
      enobufs: c.enobufs,
      backpressurePauses: c.backpressurePauses,
      zeroCopySends: c.zeroCopySends,
      zeroCopyCopied: c.zeroCopyCopied,
      acceptsAbandoned: c.acceptsAbandoned,
      acceptFullMs: s.acceptFullMs
    }
    for (const [code, n] of driver.errors) now[`error:${code}`] = n
    const before = published.get(driver) ?? {}
    published.set(driver, now)
    const delta = (key: string) => now[key]! - (before[key] ?? 0)
    const effects: Array<Effect.Effect<void>> = [
      Metric.incrementBy(connectionsAccepted, delta("accepted")),
      Metric.incrementBy(connectionsConnected, delta("connected")),
      Metric.incrementBy(connectionsClosed, delta("closed")),
      Metric.incrementBy(bytesReceived, delta("bytesIn")),
      Metric.incrementBy(bytesSent, delta("bytesOut")),
      Metric.incrementBy(udpDatagramsReceived, delta("datagramsIn")),
      Metric.incrementBy(udpDatagramsSent, delta("datagramsOut")),
      Metric.incrementBy(cqes, delta("cqes")),
      Metric.incrementBy(submissions, delta("submitted")),
      Metric.incrementBy(sqFullRetries, delta("sqFull")),
      Metric.incrementBy(enobufsParks, delta("enobufs")),
      Metric.incrementBy(backpressurePauses, delta("backpressurePauses")),
      Metric.incrementBy(zeroCopySends, delta("zeroCopySends")),
      Metric.incrementBy(zeroCopyCopied, delta("zeroCopyCopied")),
      Metric.incrementBy(acceptsAbandoned, delta("acceptsAbandoned")),
      Metric.incrementBy(acceptFullMillis, delta("acceptFullMs")),
      Metric.set(connectionsActive, c.accepted + c.connected - c.closed),
      Metric.set(inFlightOps, s.inFlight)
    ]
    for (const [code] of driver.errors) {
      const d = delta(`error:${code}`)
      if (d > 0) effects.push(Metric.incrementBy(Metric.tagged(errors, "code", code), d))
    }
    return Effect.all(effects, { discard: true })
  })

/**
 * Copies the driver's counters into the `ringline_*` metrics now.
 *
 * @since 0.1.0
 * @category updates
 */
export const update: Effect.Effect<void, never, Ringline> = Effect.flatMap(Ringline, (r) =>
  r.driver === undefined ? Effect.void : publish(r.driver)
)

/**
 * Keeps the metrics current: updates every `interval` (default 1 second) and once more on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: { readonly interval?: Duration.DurationInput }): Layer.Layer<never, never, Ringline> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => update)
      yield* Effect.forkScoped(Effect.repeat(update, Schedule.spaced(options?.interval ?? Duration.seconds(1))))
    })
  )

import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, MetricState } from "effect"
import { RinglineMetrics } from "../src/index.js"
import { echoServer, exchange, portOf, random, withRing } from "./helpers.js"

const count = (m: Metric.Metric.Counter<number>) =>
  Effect.map(Metric.value(m), (s: MetricState.MetricState.Counter<number>) => s.count)

describe("metrics", () => {
  it.live("counters move by exactly the known workload: 10 connections × 1 MiB echoed", () =>
    withRing(Effect.gen(function*() {
      yield* RinglineMetrics.update
      const before = {
        accepted: yield* count(RinglineMetrics.connectionsAccepted),
        closed: yield* count(RinglineMetrics.connectionsClosed),
        bytesIn: yield* count(RinglineMetrics.bytesReceived),
        bytesOut: yield* count(RinglineMetrics.bytesSent),
        cqes: yield* count(RinglineMetrics.cqes)
      }
      const l = yield* echoServer()
      const mib = 1024 * 1024
      const payloads = Array.from({ length: 10 }, () => random(mib))
      const back = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
      back.forEach((b, i) => expect(b.equals(payloads[i]!)).toBe(true))
      // Server-side closes trail the clients' EOF by a moment.
      for (let i = 0; i < 100; i++) {
        yield* RinglineMetrics.update
        if ((yield* count(RinglineMetrics.connectionsClosed)) - before.closed === 10) break
        yield* Effect.sleep(10)
      }
      expect((yield* count(RinglineMetrics.connectionsAccepted)) - before.accepted).toBe(10)
      expect((yield* count(RinglineMetrics.connectionsClosed)) - before.closed).toBe(10)
      expect((yield* count(RinglineMetrics.bytesReceived)) - before.bytesIn).toBe(10 * mib)
      expect((yield* count(RinglineMetrics.bytesSent)) - before.bytesOut).toBe(10 * mib)
      expect((yield* count(RinglineMetrics.cqes)) - before.cqes).toBeGreaterThan(20)
      const active = yield* Metric.value(RinglineMetrics.connectionsActive)
      expect(active.value).toBe(0)
      const inflight = yield* Metric.value(RinglineMetrics.inFlightOps)
      expect(inflight.value).toBe(1) // the listener's multishot accept
    })))

  it.live("UDP datagrams in and out are counted", () =>
    withRing(Effect.gen(function*() {
      const { Udp } = yield* Effect.promise(() => import("../src/index.js"))
      yield* RinglineMetrics.update
      const inBefore = yield* count(RinglineMetrics.udpDatagramsReceived)
      const outBefore = yield* count(RinglineMetrics.udpDatagramsSent)
      const a = yield* Udp.bind({ port: 0 })
      const b = yield* Udp.bind({ port: 0 })
      for (let i = 0; i < 10; i++) yield* a.sendTo(Buffer.from(`d${i}`), b.address)
      for (let i = 0; i < 10; i++) yield* b.recvFrom
      yield* RinglineMetrics.update
      expect((yield* count(RinglineMetrics.udpDatagramsReceived)) - inBefore).toBe(10)
      expect((yield* count(RinglineMetrics.udpDatagramsSent)) - outBefore).toBe(10)
    })))

  it.live("errors are counted by errno code", () =>
    withRing(Effect.gen(function*() {
      const { Tcp } = yield* Effect.promise(() => import("../src/index.js"))
      const port = yield* Effect.scoped(Effect.map(Tcp.listen({ port: 0 }), portOf))
      yield* RinglineMetrics.update
      const refused = Metric.tagged(RinglineMetrics.errors, "code", "ECONNREFUSED")
      const before = yield* count(refused)
      yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port }))
      yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port }))
      yield* RinglineMetrics.update
      expect((yield* count(refused)) - before).toBe(2)
    })))
})

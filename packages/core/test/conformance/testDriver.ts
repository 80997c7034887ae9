/**
 * The conformance driver for RinglineTest: a fresh in-memory network per scenario (leak-checked:
 * no op in flight and no connection open once the scenario's scope closed), its peer handles as
 * the peer, TestClock time.
 */
import { it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import * as Addr from "../../src/Address.js"
import { Ringline, RinglineTest } from "../../src/index.js"
import { type DriverUnderTest, PeerSide } from "./driver.js"

/** Lets the network's task queue and every woken fiber run until nothing moves. */
const settle = Effect.promise(async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
})

const targetOf = (a: Addr.Address) => a._tag === "UnixAddress" ? a : { host: a.host, port: a.port }

export const testDriver: DriverUnderTest = {
  name: "RinglineTest",
  it: it.effect,
  run: (body, config) =>
    Effect.gen(function*() {
      const network = yield* RinglineTest.Network
      const result = yield* Effect.scoped(Effect.provideService(body, PeerSide, {
        connect: (address) => network.connect(address),
        listen: Effect.map(network.listen(), (l) => ({ target: targetOf(l.address), accept: l.accept })),
        unbound: Effect.succeed({ host: "127.0.0.1", port: 1 }),
        hanging: Effect.gen(function*() {
          // A full accept queue (backlog 0 holds one connection) makes further connects wait.
          const l = yield* network.listen({ backlog: 0 })
          yield* network.connect(l.address)
          return targetOf(l.address)
        }),
        advance: (d) => TestClock.adjust(d),
        settle
      }))
      const stats = yield* Ringline.stats
      if (stats.inFlight !== 0 || stats.connections !== 0 || stats.listeners !== 0) {
        return yield* Effect.fail(
          new Error(`leak: ${stats.inFlight} ops in flight, ${stats.connections} connections, ${stats.listeners} listeners`)
        )
      }
      return result
    }).pipe(Effect.provide(Layer.fresh(RinglineTest.layer(config === undefined ? {} : { config }))))
}

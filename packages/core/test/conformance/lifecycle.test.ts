/**
 * Conformance: listeners ending, interrupted reads losing nothing, backpressure from a peer that
 * does not read, and the shutdown timeout of a close.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { Connection, Ringline, Tcp } from "../../src/index.js"
import { acceptedPair, advance, connectPeer, settle, text } from "./driver.js"
import { drivers } from "./drivers.js"

const exactly = (n: number): Connection.Parser<string> => (bytes) =>
  bytes.length < n ? Connection.needMore(n) : Connection.done(n, text(bytes.subarray(0, n)))

describe.each(drivers)("lifecycle ($name)", (d) => {
  d.it("closing a listener's scope fails its pending accept and refuses new connects", () =>
    d.run(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const l = yield* Scope.extend(Tcp.listen({ port: 0 }), scope)
      const accepting = yield* Effect.fork(Effect.scoped(l.accept))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const err = yield* Effect.flip(Fiber.join(accepting))
      expect(err._tag).toBe("ConnectionClosed")
      const refused = yield* Effect.flip(connectPeer(l.address))
      expect(refused).toBeDefined()
      expect((yield* Ringline.stats).listeners).toBe(0)
    })))

  d.it("an accepted connection's local address is its listener's; the outbound one's peer is the listener", () =>
    d.run(Effect.gen(function*() {
      const { conn, listener } = yield* acceptedPair
      expect(yield* conn.localAddress).toEqual(listener.address)
      const peerAddress = yield* conn.peerAddress
      expect(peerAddress._tag).toBe("TcpAddress")
      const out = yield* Tcp.connect(listener.address._tag === "TcpAddress" ? listener.address : { host: "", port: 0 })
      expect(yield* out.peerAddress).toEqual(listener.address)
      const back = yield* listener.accept
      expect(yield* back.peerAddress).toEqual(yield* out.localAddress)
    })))

  d.it("serve completes when its listener's scope closes", () =>
    d.run(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const l = yield* Scope.extend(Tcp.listen({ port: 0 }), scope)
      const serving = yield* Effect.fork(l.serve((c) => c.send(new TextEncoder().encode("hi"))))
      const peer = yield* connectPeer(l.address)
      expect(text(yield* peer.read(2))).toBe("hi")
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(serving)
    })))

  d.it("an interrupted read consumes nothing: the next read gets every byte", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const first = yield* Effect.fork(c.read(exactly(10)))
      yield* peer.write("01234")
      yield* settle
      yield* Fiber.interrupt(first)
      yield* peer.write("56789abc")
      expect(yield* c.read(exactly(10))).toBe("0123456789")
      expect(yield* c.read(exactly(3))).toBe("abc")
    })))

  d.it("a peer that stops reading bounds the send queue; reading again resumes the writer", () =>
    d.run(
      Effect.gen(function*() {
        const { conn: c, peer } = yield* acceptedPair
        yield* peer.stall
        const chunk = new Uint8Array(64 * 1024).fill(7)
        let written = 0
        const writer = yield* Effect.fork(Effect.forever(Effect.tap(c.write(chunk), () => Effect.sync(() => (written += chunk.length)))))
        yield* settle
        const stuckAt = written
        yield* settle
        expect(written).toBe(stuckAt)
        expect(c.queuedBytes).toBeGreaterThan(256 * 1024)
        expect(c.queuedBytes).toBeLessThanOrEqual(512 * 1024 + chunk.length)
        expect((yield* Ringline.stats).backpressurePauses).toBeGreaterThan(0)
        yield* peer.resume
        yield* peer.read(stuckAt)
        yield* settle
        expect(written).toBeGreaterThan(stuckAt)
        yield* Fiber.interrupt(writer)
      }),
      { sendQueueHighWater: 512 * 1024, sendQueueLowWater: 256 * 1024 }
    ))

  d.it("close waits for queued sends at most shutdownTimeoutMs when the peer does not read", () =>
    d.run(
      Effect.gen(function*() {
        const { conn: c, peer } = yield* acceptedPair
        yield* peer.stall
        for (let i = 0; i < 8; i++) yield* Effect.fork(c.write(new Uint8Array(512 * 1024)))
        yield* settle
        expect(c.queuedBytes).toBeGreaterThan(0)
        const closing = yield* Effect.fork(c.close)
        yield* advance("200 millis")
        expect(closing.unsafePoll()).toBe(null)
        yield* advance("1500 millis")
        yield* Fiber.join(closing)
      }),
      { shutdownTimeoutMs: 1000 }
    ))
})

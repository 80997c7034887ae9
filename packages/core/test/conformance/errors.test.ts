/** Conformance: typed errors for resets, refused connects, timeouts and a close under a read. */
import { describe, expect } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Tcp, Unix } from "../../src/index.js"
import { ignoringPeerResets } from "../helpers.js"
import { acceptedPair, advance, hangingTarget, settle, unboundTarget } from "./driver.js"
import { drivers } from "./drivers.js"

describe.each(drivers)("errors ($name)", (d) => {
  d.it("a peer's reset fails the pending read with SocketError ECONNRESET", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const reading = yield* Effect.fork(c.recv)
      yield* settle
      yield* peer.reset
      const failure = yield* Effect.flip(Fiber.join(reading))
      expect(failure._tag).toBe("SocketError")
      expect(failure._tag === "SocketError" ? failure.code : "").toBe("ECONNRESET")
    })))

  d.it("sends after the peer's reset fail with a typed SocketError (ECONNRESET or EPIPE)", () =>
    ignoringPeerResets(d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.reset
      yield* settle
      const chunk = new Uint8Array(64 * 1024)
      const err = yield* Effect.flip(Effect.repeatN(c.send(chunk), 50))
      expect(err._tag).toBe("SocketError")
      expect(["ECONNRESET", "EPIPE"]).toContain(err._tag === "SocketError" ? err.code : "")
    }))))

  d.it("closing a connection fails its pending read with ConnectionClosed", () =>
    d.run(Effect.gen(function*() {
      const { conn: c } = yield* acceptedPair
      const reading = yield* Effect.fork(c.recv)
      yield* settle
      yield* c.close
      const err = yield* Effect.flip(Fiber.join(reading))
      expect(err._tag).toBe("ConnectionClosed")
      expect((yield* Effect.flip(c.recv))._tag).toBe("ConnectionClosed")
    })))

  d.it("a TCP connect to an unbound port fails with ConnectError Refused (ECONNREFUSED)", () =>
    d.run(Effect.gen(function*() {
      const target = yield* unboundTarget
      const err = yield* Effect.flip(Tcp.connect(target as { host: string; port: number }))
      expect(err.reason).toBe("Refused")
      expect(err.code).toBe("ECONNREFUSED")
    })))

  d.it("a Unix connect to a missing path fails with ConnectError NotFound (ENOENT)", () =>
    d.run(Effect.gen(function*() {
      const err = yield* Effect.flip(Unix.connect(`/tmp/ringline-conf-missing-${process.pid}.sock`))
      expect(err.reason).toBe("NotFound")
      expect(err.code).toBe("ENOENT")
    })))

  d.it("a connect that never completes fails with ConnectError Timeout after its timeout", () =>
    d.run(Effect.gen(function*() {
      const target = yield* hangingTarget
      const connecting = yield* Effect.fork(Tcp.connect(target as { host: string; port: number }, { timeout: "300 millis" }))
      yield* advance("100 millis")
      expect(connecting.unsafePoll()).toBe(null)
      yield* advance("400 millis")
      const err = yield* Effect.flip(Fiber.join(connecting))
      expect(err.reason).toBe("Timeout")
      expect(err.code).toBe("ETIMEDOUT")
    })))
})

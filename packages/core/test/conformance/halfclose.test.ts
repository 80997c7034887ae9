/** Conformance: half-close in both directions, what a read sees at the end of the stream, and the end-of-receive callback. */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Connection } from "../../src/index.js"
import { acceptedPair, line, settle, text } from "./driver.js"
import { drivers } from "./drivers.js"

const enc = (s: string) => new TextEncoder().encode(s)
describe.each(drivers)("half-close and end of stream ($name)", (d) => {
  d.it("the peer's FIN ends our reads; our side can still send", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.write("last words\n")
      yield* peer.end
      expect(yield* c.read(line)).toBe("last words")
      expect(yield* c.recv).toEqual(Option.none())
      // A second read after the end sees the end again.
      expect(yield* c.recv).toEqual(Option.none())
      yield* c.send(enc("reply after your FIN"))
      yield* c.close
      expect(text(yield* peer.readAll)).toBe("reply after your FIN")
    })))

  d.it("our shutdownWrite sends FIN after queued bytes; the peer can still send to us", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* c.write(enc("queued before the FIN"))
      yield* c.shutdownWrite
      expect(text(yield* peer.readAll)).toBe("queued before the FIN")
      const err = yield* Effect.flip(c.send(enc("too late")))
      expect(err._tag).toBe("ConnectionClosed")
      yield* peer.write("still talking\n")
      expect(yield* c.read(line)).toBe("still talking")
    })))

  d.it("EOF with a partial message fails the read with EndOfStream carrying the leftover", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.write("complete\npartial")
      yield* peer.end
      expect(yield* c.read(line)).toBe("complete")
      const err = yield* Effect.flip(c.read(line))
      expect(err._tag).toBe("EndOfStream")
      expect(err._tag === "EndOfStream" ? text(err.leftover) : "").toBe("partial")
    })))

  d.it("EOF with nothing buffered calls the parser once with an empty view", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.end
      const seen: Array<number> = []
      const value = yield* c.read((bytes) => {
        seen.push(bytes.length)
        return bytes.length === 0 ? Connection.done(0, "end") : Connection.needMore()
      })
      expect(value).toBe("end")
      expect(seen).toEqual([0])
    })))

  d.it("unsafeOnReceiveEnd: called once at the peer's FIN with no read pending; buffered bytes stay readable", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      let calls = 0
      c.unsafeOnReceiveEnd(() => calls++)
      yield* peer.write("unread\n")
      yield* settle
      expect(calls).toBe(0)
      yield* peer.end
      yield* settle
      expect(calls).toBe(1)
      // Registered after the end: called at once.
      let late = 0
      c.unsafeOnReceiveEnd(() => late++)
      expect(late).toBe(1)
      expect(yield* c.read(line)).toBe("unread")
      expect(yield* c.recv).toEqual(Option.none())
      expect(calls).toBe(1)
      expect(() => c.unsafeOnReceiveEnd("x" as unknown as () => void)).toThrow(TypeError)
    })))

  d.it("unsafeOnReceiveEnd: called when the peer resets the connection", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      let calls = 0
      c.unsafeOnReceiveEnd(() => calls++)
      yield* peer.reset
      yield* settle
      expect(calls).toBe(1)
      expect((yield* Effect.flip(c.recv))._tag).toBe("SocketError")
    })))
})

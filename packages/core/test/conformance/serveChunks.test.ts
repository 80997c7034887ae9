/**
 * Conformance: Listener.serveChunks — chunks in order with the end of stream as an empty chunk,
 * an Effect answer holding back the next chunk, failures reported and closing only their
 * connection, backpressure from a peer that does not read, the graceful shutdown, and no fiber
 * per idle connection.
 */
import { describe, expect } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Scope, Stream, Supervisor } from "effect"
import { type Connection, Listener, Ringline, Tcp } from "../../src/index.js"
import { advance, connectPeer, settle, text } from "./driver.js"
import { drivers } from "./drivers.js"

const enc = (s: string) => new TextEncoder().encode(s)

/** A listener in a scope of its own, closed with the test's unless the test closes it first. */
const listening = Effect.gen(function*() {
  const scope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  const listener = yield* Scope.extend(Tcp.listen({ port: 0 }), scope)
  return { listener, scope }
})

/** A listener serving `handler` in a forked fiber. */
const serving = <E>(
  handler: Listener.ChunkHandler<E, never>,
  options?: Parameters<typeof Listener.serveChunks<E>>[2]
) =>
  Effect.gen(function*() {
    const { listener, scope } = yield* listening
    const fiber = yield* Effect.fork(Listener.serveChunks(listener, handler, options))
    return { listener, scope, fiber }
  })

/** Collects onFailure's causes. */
const failures = () => {
  const causes: Array<Cause.Cause<unknown>> = []
  return { causes, onFailure: (cause: Cause.Cause<unknown>) => Effect.sync(() => void causes.push(cause)) }
}

describe.each(drivers)("serveChunks ($name)", (d) => {
  d.it("echoes every chunk in order; the end of stream is one empty chunk, then the connection closes", () =>
    d.run(Effect.gen(function*() {
      const seen: Array<number> = []
      const { listener } = yield* serving((chunk, conn) => {
        seen.push(chunk.length)
        if (chunk.length > 0) conn.unsafeWrite(chunk)
      })
      const peer = yield* connectPeer(listener.address)
      let sent = ""
      for (let i = 0; i < 20; i++) {
        const part = `part ${i};`
        sent += part
        yield* peer.write(part)
        if (i % 5 === 0) yield* settle
      }
      yield* peer.end
      // readAll ends at the server's FIN: the close came after every echoed byte.
      expect(text(yield* peer.readAll)).toBe(sent)
      expect(seen.at(-1)).toBe(0)
      expect(seen.filter((n) => n === 0)).toHaveLength(1)
      expect(seen.reduce((a, b) => a + b, 0)).toBe(sent.length)
    })))

  d.it("a chunk kept by the handler is not changed by later chunks", () =>
    d.run(Effect.gen(function*() {
      const kept: Array<Uint8Array> = []
      const { listener } = yield* serving((chunk) => void kept.push(chunk))
      const peer = yield* connectPeer(listener.address)
      yield* peer.write("first")
      yield* settle
      yield* peer.write("second")
      yield* peer.end
      yield* peer.readAll
      expect(kept.map(text).join("")).toBe("firstsecond")
      expect(text(kept[0]!)).toBe("first")
    })))

  d.it("an Effect answer holds back the next chunk until it succeeds; writes stay in order", () =>
    d.run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const calls: Array<string> = []
      const { listener } = yield* serving((chunk, conn: Connection.Connection) => {
        calls.push(text(chunk))
        if (calls.length === 1) {
          return Effect.zipRight(Deferred.await(gate), conn.write(enc(`[${text(chunk)}]`)))
        }
        if (chunk.length > 0) conn.unsafeWrite(enc(`<${text(chunk)}>`))
      })
      const peer = yield* connectPeer(listener.address)
      yield* peer.write("a")
      yield* settle
      yield* peer.write("b")
      yield* settle
      yield* settle
      // "b" arrived but waits for the first answer's Effect.
      expect(calls).toEqual(["a"])
      yield* Deferred.succeed(gate, undefined)
      yield* peer.end
      expect(text(yield* peer.readAll)).toBe("[a]<b>")
      expect(calls).toEqual(["a", "b", ""])
    })))

  d.it("a failing Effect, a throw and a non-Effect answer each close their own connection and reach onFailure", () =>
    d.run(Effect.gen(function*() {
      const { causes, onFailure } = failures()
      const { listener } = yield* serving<string>((chunk, conn) => {
        const s = text(chunk)
        if (s === "fail") return Effect.fail("typed failure")
        if (s === "throw") throw new Error("thrown")
        if (s === "answer") return 42 as unknown as undefined
        if (chunk.length > 0) conn.unsafeWrite(chunk)
      }, { onFailure })
      for (const word of ["fail", "throw", "answer"]) {
        const peer = yield* connectPeer(listener.address)
        yield* peer.write(word)
        // The server closes: the peer's read reaches the end with nothing echoed.
        expect(text(yield* peer.readAll)).toBe("")
      }
      // The listener still serves.
      const ok = yield* connectPeer(listener.address)
      yield* ok.write("fine")
      expect(text(yield* ok.read(4))).toBe("fine")
      yield* ok.end
      yield* ok.readAll
      expect(causes).toHaveLength(3)
      expect(Cause.failureOption(causes[0]!)).toEqual(Option.some("typed failure"))
      expect(Cause.squash(causes[1]!)).toMatchObject({ message: "thrown" })
      expect(String(Cause.squash(causes[2]!))).toMatch(/serveChunks handler returned 42, not undefined or an Effect/)
    })))

  d.it("a peer that does not read stops the receive: the send queue stays bounded, and everything arrives once it reads", () =>
    d.run(
      Effect.gen(function*() {
        const reply = new Uint8Array(512 * 1024).fill(9)
        let calls = 0
        let maxQueued = 0
        const { listener } = yield* serving((chunk, conn) => {
          if (chunk.length === 0) return
          calls++
          conn.unsafeWrite(reply)
          maxQueued = Math.max(maxQueued, conn.queuedBytes)
        })
        const peer = yield* connectPeer(listener.address)
        yield* peer.stall
        // One request per round, each answered by 512 KiB: 32 MiB is more than the kernel's
        // socket buffers hold, so the server's own queue must reach its high-water mark.
        const rounds = 64
        for (let i = 0; i < rounds; i++) {
          yield* peer.write("x")
          yield* advance("20 millis")
          if (i % 8 === 7) yield* settle
        }
        const callsAtStall = calls
        expect(callsAtStall).toBeLessThan(rounds)
        expect(maxQueued).toBeLessThanOrEqual(256 * 1024 + 4 * reply.length)
        expect((yield* Ringline.stats).backpressurePauses).toBeGreaterThan(0)
        yield* peer.resume
        yield* peer.end
        const all = yield* peer.readAll
        expect(calls).toBeGreaterThan(callsAtStall)
        expect(all.length).toBe(calls * reply.length)
      }),
      { sendQueueHighWater: 256 * 1024, sendQueueLowWater: 64 * 1024 }
    ))

  d.it("closing the listener's scope closes idle connections and completes serveChunks", () =>
    d.run(Effect.gen(function*() {
      const { listener, scope, fiber } = yield* serving((chunk, conn) => {
        if (chunk.length > 0) conn.unsafeWrite(chunk)
      })
      const peers = []
      for (let i = 0; i < 3; i++) {
        const peer = yield* connectPeer(listener.address)
        yield* peer.write("hi")
        expect(text(yield* peer.read(2))).toBe("hi")
        peers.push(peer)
      }
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // Idle for the shutdown's quiet period (on the test clock too), well inside its timeout.
      yield* advance("1 second")
      yield* Fiber.join(closing)
      yield* Fiber.join(fiber)
      for (const peer of peers) expect(text(yield* peer.readAll)).toBe("")
      expect((yield* Ringline.stats).connections).toBe(0)
    }), { shutdownTimeoutMs: 60_000 }))

  d.it("a handler's Effect still running at the shutdown timeout is interrupted and its connection closed", () =>
    d.run(Effect.gen(function*() {
      let interrupted = 0
      const { listener, scope, fiber } = yield* serving((chunk, conn) => {
        if (chunk.length === 0) return
        conn.unsafeWrite(chunk)
        return Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++))
      })
      const peer = yield* connectPeer(listener.address)
      yield* peer.write("busy")
      expect(text(yield* peer.read(4))).toBe("busy")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* advance("2 seconds")
      yield* Fiber.join(closing)
      yield* Fiber.join(fiber)
      expect(interrupted).toBe(1)
      expect(text(yield* peer.readAll)).toBe("")
      expect((yield* Ringline.stats).connections).toBe(0)
    }), { shutdownTimeoutMs: 1000 }))

  d.it("idle connections cost no fiber (serve's cost at least one each)", () =>
    d.run(Effect.gen(function*() {
      const liveFibers = (serveIt: (l: Listener.Listener) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const { listener, scope } = yield* listening
          const supervisor = yield* Supervisor.track
          yield* Effect.forkIn(Effect.supervised(serveIt(listener), supervisor), scope)
          yield* settle
          const before = (yield* supervisor.value).length
          const peers = []
          for (let i = 0; i < 5; i++) {
            const peer = yield* connectPeer(listener.address)
            yield* peer.write("x")
            expect(text(yield* peer.read(1))).toBe("x")
            peers.push(peer)
          }
          yield* settle
          const added = (yield* supervisor.value).length - before
          // Ended by the peers: the listener's close then waits for no quiet period.
          for (const peer of peers) {
            yield* peer.end
            yield* peer.readAll
          }
          yield* Scope.close(scope, Exit.void)
          return added
        })
      const echo = (chunk: Uint8Array, conn: Connection.Connection) => {
        if (chunk.length > 0) conn.unsafeWrite(chunk)
      }
      expect(yield* liveFibers((l) => Listener.serveChunks(l, echo))).toBe(0)
      expect(yield* liveFibers((l) =>
        l.serve((conn) => Stream.run(conn.stream, conn.sink))
      )).toBeGreaterThanOrEqual(5)
    })))

  d.it("a Listener without completion delivery (e.g. Tls.listen's) gets the same contract over serve", () =>
    d.run(Effect.gen(function*() {
      const { listener } = yield* listening
      // A copy is not one of the ring's listeners: serveChunks runs it over `serve`.
      const other: Listener.Listener = { ...listener, accept: listener.accept, serve: listener.serve }
      const { causes, onFailure } = failures()
      const seen: Array<string> = []
      yield* Effect.fork(Listener.serveChunks(other, (chunk, conn) => {
        seen.push(text(chunk))
        if (text(chunk) === "fail") return Effect.fail("typed failure")
        if (chunk.length > 0) return conn.write(chunk)
      }, { onFailure }))
      const peer = yield* connectPeer(listener.address)
      yield* peer.write("echo me")
      expect(text(yield* peer.read(7))).toBe("echo me")
      yield* peer.end
      expect(text(yield* peer.readAll)).toBe("")
      const failing = yield* connectPeer(listener.address)
      yield* failing.write("fail")
      expect(text(yield* failing.readAll)).toBe("")
      expect(seen).toEqual(["echo me", "", "fail"])
      expect(causes.map((c) => Cause.failureOption(c))).toEqual([Option.some("typed failure")])
    })))
})

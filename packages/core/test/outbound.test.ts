import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { Ringline, Tcp } from "../src/index.js"
import { closedPort, collect, echo, exchange, fullListener, nodeServer, portOf, random, withRing } from "./helpers.js"

describe("outbound connections", () => {
  for (const size of [5, 4096]) {
    it.live(`relays client <-> backend (${size} bytes)`, () =>
      withRing(Effect.gen(function*() {
        // The backend is node:net; the relay is ringline (accepts and connects on the ring).
        const backend = yield* Effect.promise(() => nodeServer((s) => s.pipe(s)))
        yield* Effect.addFinalizer(() => Effect.promise(() => new Promise((r) => backend.server.close(r))))
        const relay = yield* Tcp.listen({ port: 0 })
        yield* Effect.forkScoped(relay.serve((client) =>
          Effect.scoped(Effect.gen(function*() {
            const up = yield* Tcp.connect({ host: "127.0.0.1", port: backend.port })
            yield* Effect.fork(Stream.run(up.stream, client.sink))
            let total = 0
            while (true) {
              const chunk = yield* client.recv
              if (Option.isNone(chunk)) break
              total += chunk.value.length
              yield* up.write(chunk.value)
            }
            // Wait for the backend to echo everything back, then half-close towards the client.
            while (client.bytesSent < total) yield* Effect.sleep(5)
            yield* client.shutdownWrite
          }))
        ))
        const payload = random(size)
        const back = yield* Effect.promise(() => exchange(portOf(relay), payload))
        expect(back.equals(payload)).toBe(true)
      })))
  }

  it.live("refused connect fails with a typed ConnectError carrying the errno", () =>
    withRing(Effect.gen(function*() {
      const port = yield* closedPort
      const err = yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port }))
      expect(err._tag).toBe("ConnectError")
      expect(err.reason).toBe("Refused")
      expect(err.code).toBe("ECONNREFUSED")
      expect(err.errno).toBe(111)
      expect(err.message).toContain(`127.0.0.1:${port}`)
    })))

  it.live("two backends from one fiber: AA + BB -> AABB", () =>
    withRing(Effect.gen(function*() {
      const a = yield* Effect.promise(() => nodeServer((s) => s.end("AA")))
      const b = yield* Effect.promise(() => nodeServer((s) => s.end("BB")))
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all([a, b].map((x) => new Promise((r) => x.server.close(r))))))
      const ca = yield* Tcp.connect(`127.0.0.1:${a.port}`)
      const cb = yield* Tcp.connect(`127.0.0.1:${b.port}`)
      const result = (yield* collect(ca)) + (yield* collect(cb))
      expect(result).toBe("AABB")
    })))

  it.live("connect timeout fires against a listener whose accept queue is full", () =>
    withRing(Effect.gen(function*() {
      // A loopback listening socket (backlog 0) that nobody accepts from: once its queue is full,
      // the kernel drops further SYNs and a connect hangs until our timeout.
      const port = yield* fullListener
      const started = Date.now()
      const err = yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port }, { timeout: "200 millis" }))
      const elapsed = Date.now() - started
      expect(err._tag).toBe("ConnectError")
      expect(err.reason).toBe("Timeout")
      expect(elapsed).toBeGreaterThanOrEqual(150)
      expect(elapsed).toBeLessThan(3000)
      // The timed-out connect released its socket and every op before failing.
      expect((yield* Ringline.stats).inFlight).toBe(0)
    })))

  it.live("a ringline client talks to a ringline server", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const c = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      yield* c.send(Buffer.from("hello ring"))
      const back = yield* c.read((b) => (b.length >= 10 ? { _tag: "Done", consumed: 10, value: Buffer.from(b.subarray(0, 10)).toString() } : { _tag: "NeedMore", atLeast: 10 }))
      expect(back).toBe("hello ring")
      const peer = yield* c.peerAddress
      expect(peer).toEqual({ _tag: "TcpAddress", family: 4, host: "127.0.0.1", port: portOf(l) })
      const local = yield* c.localAddress
      expect(local._tag === "TcpAddress" && local.port > 0).toBe(true)
    })))

  it.live("TCP_NODELAY is set on accepted (inherited) and connected (socket URING_CMD) sockets", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const client = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      const server = yield* Effect.scoped(Effect.flatMap(l.accept, (c) => c.getOption("noDelay")))
      expect(server).toBe(true)
      expect(yield* client.getOption("noDelay")).toBe(true)
    })))

  it.live("with tcpNoDelay: false both sides keep Nagle on", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const client = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      expect(yield* client.getOption("noDelay")).toBe(false)
      expect(yield* Effect.scoped(Effect.flatMap(l.accept, (c) => c.getOption("noDelay")))).toBe(false)
    }), { tcpNoDelay: false }))

  it.live("host names resolve; a bad target is a typed error", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const c = yield* Tcp.connect(`localhost:${portOf(l)}`).pipe(
        Effect.orElse(() => Tcp.connect({ host: "127.0.0.1", port: portOf(l) }))
      )
      yield* c.send(Buffer.from("x"))
      const err = yield* Effect.flip(Tcp.connect("nonexistent.invalid:80"))
      expect(err.reason).toBe("NotFound")
    })))
})

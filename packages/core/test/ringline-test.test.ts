/**
 * RinglineTest beyond the conformance suite: the fault plan (every fault kind, rule targeting,
 * seeded determinism, plan validation), the peer handle, stats, the capabilities that need a
 * real ring, and the Layer running where io_uring is blocked by seccomp.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { Connection, Process, Resolver, Ring, Ringline, RinglineClock, RinglineTest, Tcp, Udp, Unix } from "../src/index.js"
import type { RinglineUnavailable } from "../src/RinglineError.js"
import { runWithoutIoUring } from "./withoutIoUring.js"

const enc = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => Buffer.from(b).toString()
const line: Connection.Parser<string> = (bytes) => {
  const nl = bytes.indexOf(10)
  return nl < 0 ? Connection.needMore() : Connection.done(nl + 1, text(bytes.subarray(0, nl)))
}
const withNet = (options?: RinglineTest.Options) => Effect.provide(Layer.fresh(RinglineTest.layer(options)))

describe("RinglineTest fault plan", () => {
  it.scoped("refuse: the first connect is refused although a peer listens; the next one connects", () =>
    Effect.gen(function*() {
      const pl = yield* RinglineTest.listen()
      const target = pl.address._tag === "TcpAddress" ? { host: pl.address.host, port: pl.address.port } : { host: "", port: 0 }
      const err = yield* Effect.flip(Tcp.connect(target))
      expect(err).toMatchObject({ _tag: "ConnectError", reason: "Refused", code: "ECONNREFUSED", errno: 111 })
      yield* Tcp.connect(target)
      expect(yield* Effect.flatMap(RinglineTest.Network, (n) => n.faultsInjected)).toBe(1)
    }).pipe(withNet({ faults: { rules: [{ op: "connect", fault: RinglineTest.refuse() }] } })))

  it.scoped("fail on accept: that client is reset, the listener keeps serving the next one", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const first = yield* RinglineTest.connect(l.address)
      const lost = yield* Effect.flip(first.read(1))
      expect(lost).toMatchObject({ _tag: "PeerError", reason: "Reset" })
      const second = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      yield* second.accepted
      yield* second.write("hi\n")
      expect(yield* c.read(line)).toBe("hi")
      expect(l.accepted).toBe(1)
    }).pipe(withNet({ faults: { rules: [{ op: "accept", fault: RinglineTest.fail("ECONNABORTED") }] } })))

  it.scoped("shortSend on every send: the channel continues each short send and the bytes arrive whole", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const message = "a message longer than three bytes, sent three at a time"
      yield* c.send(enc(message))
      yield* peer.expect(message)
      expect(yield* Effect.flatMap(RinglineTest.Network, (n) => n.faultsInjected)).toBeGreaterThan(message.length / 3 - 1)
    }).pipe(withNet({ faults: { rules: [{ op: "send", fault: RinglineTest.shortSend(3), times: Infinity }] } })))

  it.scoped("reset on the second send: it fails with ECONNRESET, the next with EPIPE, the peer sees a reset", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      yield* c.send(enc("one\n"))
      const err = yield* Effect.flip(c.send(enc("two\n")))
      expect(err).toMatchObject({ _tag: "SocketError", code: "ECONNRESET", operation: "send" })
      expect((yield* Effect.flip(c.send(enc("three\n"))))._tag).toBe("SocketError")
      expect(yield* Effect.flip(peer.readAll)).toMatchObject({ reason: "Reset" })
    }).pipe(withNet({ faults: { rules: [{ op: "send", after: 1, fault: RinglineTest.reset() }] } })))

  it.scoped("fail on recv: the read fails with that errno as a SocketError", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      yield* peer.write("x")
      expect(yield* Effect.flip(c.recv)).toMatchObject({ _tag: "SocketError", code: "EIO", errno: 5 })
    }).pipe(withNet({ faults: { rules: [{ op: "recv", fault: RinglineTest.fail("EIO") }] } })))

  it.effect("pause on recv: nothing arrives until the TestClock passes the pause; no byte is lost", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const reading = yield* Effect.fork(c.read(line))
      yield* peer.write("after the pause\n")
      yield* TestClock.adjust("999 millis")
      expect(reading.unsafePoll()).toBe(null)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(reading)).toBe("after the pause")
      expect((yield* Ringline.stats).enobufs).toBe(1)
    }).pipe(Effect.scoped, withNet({ faults: { rules: [{ op: "recv", fault: RinglineTest.pause("1 second") }] } })))

  it.effect("delay on connect beyond its timeout: ConnectError Timeout, driven by TestClock", () =>
    Effect.gen(function*() {
      const pl = yield* RinglineTest.listen()
      const port = pl.address._tag === "TcpAddress" ? pl.address.port : 0
      const connecting = yield* Effect.fork(Tcp.connect({ host: "127.0.0.1", port }, { timeout: "1 second" }))
      yield* TestClock.adjust("1 second")
      expect(yield* Effect.flip(Fiber.join(connecting))).toMatchObject({ reason: "Timeout", code: "ETIMEDOUT" })
      // The second connect is not delayed.
      yield* Tcp.connect({ host: "127.0.0.1", port }, { timeout: "1 second" })
    }).pipe(Effect.scoped, withNet({ faults: { rules: [{ op: "connect", fault: RinglineTest.delay("5 seconds") }] } })))

  it.scoped("a rule for connection 2 touches only the second connection", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const outcomes: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const peer = yield* RinglineTest.connect(l.address)
        const c = yield* l.accept
        yield* peer.write("ping\n")
        outcomes.push(Either.match(yield* Effect.either(c.read(line)), { onLeft: (e) => e._tag === "SocketError" ? e.code : e._tag, onRight: (s) => s }))
      }
      expect(outcomes).toEqual(["ping", "ECONNRESET", "ping"])
    }).pipe(withNet({ faults: { rules: [{ op: "recv", connection: 2, fault: RinglineTest.reset() }] } })))

  const lottery = (seed: number) =>
    Effect.gen(function*() {
      const pl = yield* RinglineTest.listen()
      const port = pl.address._tag === "TcpAddress" ? pl.address.port : 0
      let pattern = ""
      for (let i = 0; i < 24; i++) {
        pattern += Exit.isSuccess(yield* Effect.exit(Effect.scoped(Tcp.connect({ host: "127.0.0.1", port })))) ? "+" : "-"
      }
      return pattern
    }).pipe(Effect.scoped, withNet({ faults: { seed, rules: [{ op: "connect", fault: RinglineTest.refuse(), probability: 0.5, times: Infinity }] } }))

  it.effect("a seeded probability gives the same faults for the same seed, others for another", () =>
    Effect.gen(function*() {
      const a = yield* lottery(42)
      expect(yield* lottery(42)).toBe(a)
      expect(a).toContain("+")
      expect(a).toContain("-")
      expect(yield* lottery(7)).not.toBe(a)
    }))

  it.effect("a bad rule fails the Layer with RinglineConfigError naming the field", () =>
    Effect.gen(function*() {
      const bad = (rules: ReadonlyArray<any>) =>
        Effect.flip(Effect.scoped(Layer.build(RinglineTest.layer({ faults: { rules } }))))
      expect(yield* bad([{ op: "send", fault: RinglineTest.refuse() }])).toMatchObject({
        _tag: "RinglineConfigError",
        field: "faults.rules[0].fault"
      })
      expect(yield* bad([{ op: "recv", fault: RinglineTest.reset() }, { op: "recv", fault: RinglineTest.reset(), times: 0 }])).toMatchObject({
        field: "faults.rules[1].times"
      })
      expect(yield* bad([{ op: "listen", fault: RinglineTest.reset() }])).toMatchObject({ field: "faults.rules[0].op" })
      expect(yield* Effect.flip(Effect.scoped(Layer.build(RinglineTest.layer({ config: { sendQueueHighWater: -1 } }))))).toMatchObject({
        field: "sendQueueHighWater"
      })
    }))
})

describe("RinglineTest peers, stats and capabilities", () => {
  it.scoped("expect fails with PeerError Unexpected naming the first differing byte", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      yield* c.send(enc("hellO"))
      const err = yield* Effect.flip(peer.expect("hello"))
      expect(err).toMatchObject({ _tag: "PeerError", reason: "Unexpected" })
      expect(err.message).toContain("byte 4 differs")
    }).pipe(withNet()))

  it.scoped("accepted completes only once the program's accept took the connection", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const waiting = yield* Effect.fork(peer.accepted)
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      expect(waiting.unsafePoll()).toBe(null)
      yield* l.accept
      yield* Fiber.join(waiting)
    }).pipe(withNet()))

  it.scoped("a peer that writes more than the buffer holds waits for the program to read", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const big = new Uint8Array(100_000).fill(1)
      const writing = yield* Effect.fork(peer.write(big))
      let got = 0
      while (got < big.length) {
        const chunk = yield* c.recv
        got += Option.getOrThrow(chunk).length
      }
      yield* Fiber.join(writing)
      expect(got).toBe(big.length)
    }).pipe(withNet({ bufferSize: 4096 })))

  it.scoped("stats count the in-memory network in mode test", () =>
    Effect.gen(function*() {
      expect(yield* Effect.map(Ringline.Ringline, (r) => r.mode)).toBe("test")
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      yield* peer.write("12345")
      yield* c.read((b) => b.length < 5 ? Connection.needMore(5) : Connection.done(5, undefined))
      yield* c.send(enc("abc"))
      yield* peer.expect("abc")
      const s = yield* Ringline.stats
      expect(s).toMatchObject({ mode: "test", accepted: 1, connections: 1, listeners: 1, bytesIn: 5, bytesOut: 3 })
    }).pipe(withNet()))

  it.scoped("host names come from the Resolver service in context, never from the system resolver", () =>
    Effect.gen(function*() {
      const pl = yield* RinglineTest.listen({ port: 5432 })
      const unnamed = yield* Effect.flip(Tcp.connect("db.internal:5432"))
      expect(unnamed).toMatchObject({ reason: "NotFound", code: "ENOTFOUND", argument: "host" })
      const table = Layer.succeed(Resolver.Resolver, {
        resolve: (host) =>
          host === "db.internal"
            ? Effect.succeed([{ address: "127.0.0.1", family: 4 }] as const)
            : Effect.fail(new Resolver.ResolveError({ host, reason: "NotFound", code: "ENOTFOUND" }))
      })
      const c = yield* Effect.provide(Tcp.connect("db.internal:5432"), table)
      const peer = yield* pl.accept
      yield* c.send(enc("via the resolver"))
      yield* peer.expect("via the resolver")
    }).pipe(withNet()))

  it.scoped("socket options are kept per connection; TCP options on a Unix socket fail as the kernel fails them", () =>
    Effect.gen(function*() {
      const { conn } = yield* Effect.gen(function*() {
        const l = yield* Tcp.listen({ port: 0 })
        yield* RinglineTest.connect(l.address)
        return { conn: yield* l.accept }
      })
      expect(yield* conn.getOption("noDelay")).toBe(true)
      yield* conn.setNoDelay(false)
      yield* conn.setKeepAlive(true, "30 seconds")
      expect([yield* conn.getOption("noDelay"), yield* conn.getOption("keepAlive")]).toEqual([false, true])
      const u = yield* Unix.listen({ path: "/tmp/ringline-test-sockopt" })
      yield* RinglineTest.connect(u.address)
      const uc = yield* u.accept
      expect(yield* Effect.flip(uc.setNoDelay(true))).toMatchObject({ _tag: "SocketError", errno: 95 }) // EOPNOTSUPP, named ENOTSUP as the ring names it
    }).pipe(withNet()))

  it.scoped("Udp, RinglineClock, Process and Ring fail with RinglineUnavailable NotAvailable naming themselves", () =>
    Effect.gen(function*() {
      const failures = [
        yield* Effect.flip(Udp.bind()),
        yield* Effect.flip(RinglineClock.make()),
        yield* Effect.flip(Process.requireDriver),
        yield* Effect.flip(Ring.current)
      ]
      expect(failures.map((e) => [e._tag, (e as RinglineUnavailable).reason, (e as RinglineUnavailable).capability])).toEqual([
        ["RinglineUnavailable", "NotAvailable", "Udp"],
        ["RinglineUnavailable", "NotAvailable", "RinglineClock"],
        ["RinglineUnavailable", "NotAvailable", "Process"],
        ["RinglineUnavailable", "NotAvailable", "Ring (io_uring operations)"]
      ])
      for (const e of failures) expect(e.message).toContain("is not available in the test Layer")
    }).pipe(withNet()))
})

describe("RinglineTest refuses hostile arguments as the ring does", () => {
  const BAD_PORTS: ReadonlyArray<unknown> = [70000, 65536, -1, 1.5, NaN, Infinity, "80", null, 2 ** 32 + 80]

  it.scoped("bad ports, NUL in hosts and Unix paths: typed errors naming the argument, nothing bound", () =>
    Effect.gen(function*() {
      for (const port of BAD_PORTS) {
        const e = yield* Effect.flip(Tcp.listen({ port: port as number }))
        expect(e).toMatchObject({ _tag: "SocketError" })
        expect(e.message).toContain("port")
        const c = yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port: port as number }))
        expect(c).toMatchObject({ _tag: "ConnectError" })
        expect(c.message).toContain("port")
      }
      expect(yield* Effect.flip(Tcp.listen({ host: "127.0.0.1\0.evil", port: 0 }))).toMatchObject({ _tag: "SocketError" })
      expect(yield* Effect.flip(Tcp.connect({ host: "localhost\0.evil", port: 80 }))).toMatchObject({ _tag: "ConnectError" })
      expect(yield* Effect.flip(Unix.listen({ path: "/tmp/x\0y" }))).toMatchObject({ _tag: "SocketError" })
      expect(yield* Effect.flip(Unix.connect("/tmp/x\0y"))).toMatchObject({ _tag: "ConnectError" })
      expect((yield* Ringline.stats).listeners).toBe(0)
    }).pipe(withNet()))

  it.scoped("a peer handle: non-bytes and impossible counts are defects naming the argument, not hangs", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      for (const n of [-1, NaN, 1.5, Infinity, "3"]) {
        const exit = yield* Effect.exit(peer.read(n as number))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(String(Exit.isFailure(exit) && Cause.squash(exit.cause))).toMatch(/RangeError: peer\.read's n must be an integer/)
      }
      for (const bad of [123, null, { length: 3 }]) {
        const w = yield* Effect.exit(peer.write(bad as unknown as Uint8Array))
        expect(String(Exit.isFailure(w) && Cause.squash(w.cause))).toMatch(/TypeError: peer\.write's bytes must be a Uint8Array/)
        const x = yield* Effect.exit(peer.expect(bad as unknown as Uint8Array))
        expect(String(Exit.isFailure(x) && Cause.squash(x.cause))).toMatch(/TypeError: peer\.expect's bytes must be a Uint8Array/)
      }
      // The handle still works afterwards.
      yield* peer.write("ok\n")
      expect(yield* c.read(line)).toBe("ok")
    }).pipe(withNet()))
})

describe("RinglineTest where io_uring is blocked", () => {
  it.live("a RinglineTest program runs in a process whose seccomp filter refuses io_uring_setup", () =>
    Effect.gen(function*() {
      const child = yield* runWithoutIoUring(`
        import { Effect, Layer, Stream } from "effect"
        import { Ringline, RinglineTest, Tcp } from "@ringline/core"
        const ring = await Effect.runPromiseExit(Effect.scoped(Layer.build(Ringline.layer())))
        const echoed = await Effect.runPromise(Effect.gen(function*() {
          const listener = yield* Tcp.listen({ port: 0 })
          yield* Effect.forkScoped(listener.serve((c) => c.stream.pipe(Stream.run(c.sink))))
          const peer = yield* RinglineTest.connect(listener.address)
          yield* peer.write("through the in-memory network")
          yield* peer.end
          return new TextDecoder().decode(yield* peer.readAll)
        }).pipe(Effect.scoped, Effect.provide(RinglineTest.layer())))
        console.log(JSON.stringify({ ring: ring._tag === "Failure" ? ring.cause.error?.reason : "built", echoed }))
      `)
      expect(child.status, child.stderr).toBe(0)
      expect(child.result).toEqual({ ring: "Disabled", echoed: "through the in-memory network" })
    }))
})

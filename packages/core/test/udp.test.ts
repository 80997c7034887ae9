import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Stream } from "effect"
import * as dgram from "node:dgram"
import { Ringline, Udp } from "../src/index.js"
import { fdCount, withRing } from "./helpers.js"

const inFlight = Effect.map(Ringline.stats, (s) => s.inFlight)

/** A node:dgram socket bound on `host`, collecting what it receives. */
const nodePeer = (type: "udp4" | "udp6" = "udp4", host = type === "udp4" ? "127.0.0.1" : "::1") =>
  Effect.acquireRelease(
    Effect.async<{ socket: dgram.Socket; port: number; got: Array<{ data: Buffer; port: number }>; waiters: Array<() => void> }, Error>((resume) => {
      const socket = dgram.createSocket(type)
      const got: Array<{ data: Buffer; port: number }> = []
      const waiters: Array<() => void> = []
      socket.on("message", (data, rinfo) => {
        got.push({ data, port: rinfo.port })
        for (const w of waiters.splice(0)) w()
      })
      socket.once("error", (e) => resume(Effect.fail(e)))
      socket.bind(0, host, () => resume(Effect.succeed({ socket, port: socket.address().port, got, waiters })))
    }),
    (p) => Effect.async<void>((resume) => { p.socket.close(() => resume(Effect.void)) })
  )

type Peer = Effect.Effect.Success<ReturnType<typeof nodePeer>>

/** Waits until the peer has received at least `n` datagrams. */
const received = (p: Peer, n: number) =>
  Effect.async<void>((resume) => {
    const check = () => (p.got.length >= n ? resume(Effect.void) : p.waiters.push(check))
    check()
  }).pipe(Effect.timeout("10 seconds"))

const send = (p: Peer, data: Uint8Array, port: number, host = "127.0.0.1") =>
  Effect.async<void, Error>((resume) => p.socket.send(data, port, host, (e) => resume(e ? Effect.fail(e) : Effect.void)))

const ipv6Available = (): Promise<boolean> =>
  new Promise((resolve) => {
    const s = dgram.createSocket("udp6")
    s.once("error", () => resolve(false))
    s.bind(0, "::1", () => s.close(() => resolve(true)))
  })

const text = (b: Uint8Array) => Buffer.from(b).toString()

describe("UDP", () => {
  it.live("echoes a datagram from a node:dgram peer (IPv4)", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
      expect(socket.address.family).toBe(4)
      expect(socket.address.host).toBe("127.0.0.1")
      expect(socket.address.port).toBeGreaterThan(0)
      const peer = yield* nodePeer()
      yield* send(peer, Buffer.from("hello over udp"), socket.address.port)
      const dg = yield* socket.recvFrom
      expect(text(dg.data)).toBe("hello over udp")
      expect(dg.address).toEqual({ _tag: "UdpAddress", family: 4, host: "127.0.0.1", port: peer.port })
      yield* socket.sendTo(dg.data, dg.address)
      yield* received(peer, 1)
      expect(peer.got[0]!.data.toString()).toBe("hello over udp")
      expect(peer.got[0]!.port).toBe(socket.address.port)
      expect(socket.datagramsReceived).toBe(1)
      expect(socket.datagramsSent).toBe(1)
    })))

  it.live("echoes a datagram over IPv6 (::1)", () =>
    withRing(Effect.gen(function*() {
      if (!(yield* Effect.promise(ipv6Available))) {
        console.log("SKIP IPv6 loopback (::1) is not available on this machine")
        return
      }
      const socket = yield* Udp.bind({ host: "::1", port: 0 })
      expect(socket.address).toMatchObject({ family: 6, host: "::1" })
      const peer = yield* nodePeer("udp6")
      yield* send(peer, Buffer.from("hello v6"), socket.address.port, "::1")
      const dg = yield* socket.recvFrom
      expect(text(dg.data)).toBe("hello v6")
      expect(dg.address).toEqual({ _tag: "UdpAddress", family: 6, host: "::1", port: peer.port })
      // A { host, port } destination works as well as the received Address.
      yield* socket.sendTo(dg.data, { host: "::1", port: peer.port })
      yield* received(peer, 1)
      expect(peer.got[0]!.data.toString()).toBe("hello v6")
    })))

  it.live("3000 datagrams of varying sizes keep their boundaries and none is lost when read promptly", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ port: 0 })
      const peer = yield* nodePeer()
      const total = 3000
      const sizeOf = (i: number) => (i * 37) % 1400 + 4 // includes sizes 4..1403
      const make = (i: number) => {
        const b = Buffer.alloc(sizeOf(i), i & 0xff)
        b.writeUInt32LE(i, 0)
        return b
      }
      const seen: Array<number> = []
      const reader = yield* Effect.fork(Effect.gen(function*() {
        while (seen.length < total) {
          const dg = yield* socket.recvFrom
          const i = Buffer.from(dg.data).readUInt32LE(0)
          expect(dg.data.length).toBe(sizeOf(i))
          expect(Buffer.from(dg.data).equals(make(i))).toBe(true)
          seen.push(i)
        }
      }))
      // Paced in bursts of 64 (the reader keeps up; the kernel's socket buffer never overflows).
      for (let i = 0; i < total; i += 64) {
        const burst = Math.min(64, total - i)
        for (let k = 0; k < burst; k++) peer.socket.send(make(i + k), socket.address.port, "127.0.0.1")
        while (seen.length < i + burst) yield* Effect.sleep(1)
      }
      yield* Fiber.join(reader).pipe(Effect.timeout("20 seconds"))
      expect(seen.length).toBe(total)
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i))
    })))

  it.live("a burst larger than the provided-buffer ring parks on ENOBUFS and loses nothing", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ port: 0 })
      const peer = yield* nodePeer()
      // Start receiving, then let 120 datagrams pile up in the kernel's socket buffer.
      const first = yield* Effect.fork(socket.recvFrom)
      yield* send(peer, Buffer.from("first"), socket.address.port)
      expect(text((yield* Fiber.join(first)).data)).toBe("first")
      const before = (yield* Ringline.stats).enobufs
      for (let i = 0; i < 120; i++) peer.socket.send(Buffer.from(`m${i}`), socket.address.port, "127.0.0.1")
      const got: Array<string> = []
      while (got.length < 120) got.push(text((yield* socket.recvFrom.pipe(Effect.timeout("10 seconds"))).data))
      expect(got).toEqual(Array.from({ length: 120 }, (_, i) => `m${i}`))
      expect((yield* Ringline.stats).enobufs).toBeGreaterThan(before)
      // Every buffer went back to the kernel (recycles are flushed on the next loop turn).
      yield* Effect.sleep(20)
      expect((yield* Ringline.stats).buffers?.available).toBe(8)
    }), { recvBuffer: { ringSize: 8, bufferSize: 2048 } }))

  it.live("a full queue stops receiving (the kernel buffer holds the rest) and nothing is lost", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ port: 0, queueCapacity: 8 })
      const peer = yield* nodePeer()
      const first = yield* Effect.fork(socket.recvFrom)
      yield* send(peer, Buffer.from("start"), socket.address.port)
      yield* Fiber.join(first)
      for (let i = 0; i < 100; i++) peer.socket.send(Buffer.from(`d${i}`), socket.address.port, "127.0.0.1")
      yield* Effect.sleep(100)
      // Receiving stopped at the bound (plus at most one provided-buffer ring of completions).
      expect(socket.queued).toBeGreaterThanOrEqual(8)
      expect(socket.queued).toBeLessThanOrEqual(8 + 16)
      const got: Array<string> = []
      while (got.length < 100) got.push(text((yield* socket.recvFrom.pipe(Effect.timeout("10 seconds"))).data))
      expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `d${i}`))
      expect(socket.queued).toBe(0)
    }), { recvBuffer: { ringSize: 16, bufferSize: 2048 } }))

  it.live("50 concurrent sendTo in flight (pool copies and large caller-owned datagrams)", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ port: 0 })
      const peer = yield* nodePeer()
      // Every 5th datagram (3000 bytes) is larger than a send-pool slot (1024) and goes from the
      // caller's memory.
      const payload = (i: number) => Buffer.alloc(i % 5 === 0 ? 3000 : 16 + i, 65 + (i % 26))
      let maxInFlight = 0
      const sends = Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => socket.sendTo(payload(i), { host: "127.0.0.1", port: peer.port }),
        { concurrency: "unbounded", discard: true }
      )
      const watcher = yield* Effect.fork(Effect.forever(Effect.zipRight(
        Effect.tap(inFlight, (n) => Effect.sync(() => { maxInFlight = Math.max(maxInFlight, n) })),
        Effect.yieldNow()
      )))
      yield* sends
      yield* Fiber.interrupt(watcher)
      yield* received(peer, 50)
      expect(socket.datagramsSent).toBe(50)
      const lengths = peer.got.map((g) => g.data.length).sort((a, b) => a - b)
      expect(lengths).toEqual(Array.from({ length: 50 }, (_, i) => payload(i).length).sort((a, b) => a - b))
      for (const g of peer.got) expect(g.data.every((b) => b === g.data[0])).toBe(true)
      expect(maxInFlight).toBeGreaterThan(1)
    }), { sendPool: { slots: 64, slotSize: 1024 } }))

  it.live("a datagram larger than the receive buffer is reported with its real length", () =>
    withRing(Effect.gen(function*() {
      const socket = yield* Udp.bind({ port: 0 })
      const peer = yield* nodePeer()
      const room = Udp.maxDatagramSize(1024)
      expect(room).toBe(980)
      const big = Buffer.alloc(3000, 7)
      yield* send(peer, big, socket.address.port)
      yield* send(peer, Buffer.alloc(room, 9), socket.address.port)
      yield* send(peer, Buffer.from("small"), socket.address.port)
      const r = yield* Effect.either(socket.recvFrom)
      expect(Either.isLeft(r)).toBe(true)
      const e = (r as Either.Left<any, any>).left
      expect(e._tag).toBe("DatagramTruncated")
      expect(e.length).toBe(3000)
      expect(e.data.length).toBe(room)
      expect(e.data.every((b: number) => b === 7)).toBe(true)
      expect(e.address).toMatchObject({ host: "127.0.0.1", port: peer.port })
      expect(e.message).toContain("3000 bytes")
      // Exactly as large as the room: not truncated. The socket keeps working.
      const exact = yield* socket.recvFrom
      expect(exact.data.length).toBe(room)
      expect(text((yield* socket.recvFrom).data)).toBe("small")
      // The stream does not end on a truncated datagram: it is marked, and the next one follows.
      yield* send(peer, big, socket.address.port)
      yield* send(peer, Buffer.from("after"), socket.address.port)
      const two = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(socket.stream, 2)))
      expect(two[0]!.truncated).toEqual({ length: 3000 })
      expect(two[0]!.data.length).toBe(room)
      expect(two[1]!.truncated).toBeUndefined()
      expect(text(two[1]!.data)).toBe("after")
    }), { recvBuffer: { ringSize: 16, bufferSize: 1024 } }))

  it.live("ringline to ringline, IPv4 and IPv6, with a stream on the server side", () =>
    withRing(Effect.gen(function*() {
      const families: Array<string> = (yield* Effect.promise(ipv6Available)) ? ["127.0.0.1", "::1"] : ["127.0.0.1"]
      if (families.length === 1) console.log("SKIP the IPv6 half: ::1 is not available on this machine")
      for (const host of families) {
        yield* Effect.scoped(Effect.gen(function*() {
          const server = yield* Udp.bind({ host, port: 0 })
          const client = yield* Udp.bind({ host, port: 0 })
          // Echo server: upper-cases every datagram back to its sender.
          yield* Effect.forkScoped(Stream.runForEach(server.stream, (dg) =>
            server.sendTo(Buffer.from(text(dg.data).toUpperCase()), dg.address)))
          for (let i = 0; i < 20; i++) {
            yield* client.sendTo(Buffer.from(`ping ${i}`), server.address)
            const reply = yield* client.recvFrom.pipe(Effect.timeout("5 seconds"))
            expect(text(reply.data)).toBe(`PING ${i}`)
            expect(reply.address).toEqual(server.address)
          }
        }))
      }
    })))

  it.live("interrupting a pending recvFrom withdraws it; the op table stays balanced", () =>
    withRing(Effect.gen(function*() {
      const base = yield* inFlight
      const socket = yield* Udp.bind({ port: 0 })
      const peer = yield* nodePeer()
      for (let round = 0; round < 50; round++) {
        const f = yield* Effect.fork(socket.recvFrom)
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(f)
      }
      // Only the socket's standing multishot recvmsg is in flight.
      expect(yield* inFlight).toBe(base + 1)
      // A datagram sent after the interruptions goes to the next reader (nothing was consumed).
      const r = yield* Effect.race(socket.recvFrom, Effect.as(Effect.sleep("5 seconds"), undefined))
        .pipe(Effect.fork)
      yield* send(peer, Buffer.from("after"), socket.address.port)
      const dg = yield* Fiber.join(r)
      expect(dg === undefined ? undefined : text(dg.data)).toBe("after")
      expect(socket.queued).toBe(0)
      expect(yield* inFlight).toBe(base + 1)
      // Interrupted sends: cancelled or already sent, each completes after its terminal CQE.
      for (let round = 0; round < 50; round++) {
        const f = yield* Effect.fork(socket.sendTo(Buffer.from(`s${round}`), { host: "127.0.0.1", port: peer.port }))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(f)
        expect(yield* inFlight).toBe(base + 1)
      }
      yield* Effect.sleep(20)
      expect(peer.got.length).toBeLessThanOrEqual(50)
      expect(yield* inFlight).toBe(base + 1)
    })))

  it.live("closing the scope fails pending reads, ends the stream, and leaves no op and no fd", () =>
    withRing(Effect.gen(function*() {
      const base = yield* inFlight
      const peer = yield* nodePeer()
      const fds = fdCount()
      let pending: Fiber.RuntimeFiber<unknown, unknown> | undefined
      let streamed: Fiber.RuntimeFiber<Chunk.Chunk<unknown>, unknown> | undefined
      yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* Udp.bind({ port: 0 })
        const other = yield* Udp.bind({ port: 0 })
        expect(fdCount()).toBe(fds + 2)
        pending = yield* Effect.fork(Effect.either(socket.recvFrom))
        streamed = yield* Effect.fork(Stream.runCollect(other.stream))
        yield* Effect.sleep(10)
        // The stream reads this one, then ends when the socket closes.
        yield* send(peer, Buffer.from("unread"), other.address.port)
        yield* Effect.sleep(20)
        yield* Effect.forkDaemon(socket.sendTo(Buffer.from("x"), { host: "127.0.0.1", port: peer.port }))
        expect(yield* inFlight).toBeGreaterThan(base)
      }))
      expect(yield* inFlight).toBe(base)
      expect(fdCount()).toBe(fds)
      const r = (yield* Fiber.join(pending!)) as Either.Either<unknown, any>
      expect(Either.isLeft(r) && r.left._tag).toBe("SocketClosed")
      // The stream had read "unread" and then ended cleanly with the socket.
      const chunk = yield* Fiber.join(streamed!)
      expect(Chunk.toReadonlyArray(chunk).map((d: any) => text(d.data))).toEqual(["unread"])
      // A socket used after its scope closed fails typed.
      const escaped = yield* Effect.scoped(Udp.bind({ port: 0 }))
      expect(yield* Effect.flip(escaped.recvFrom)).toMatchObject({ _tag: "SocketClosed", operation: "recvFrom" })
      expect(yield* Effect.flip(escaped.sendTo(Buffer.from("x"), { host: "127.0.0.1", port: peer.port })))
        .toMatchObject({ _tag: "SocketClosed", operation: "sendTo" })
      expect(yield* inFlight).toBe(base)
    })))

  it.live("typed errors: a port in use, a foreign address family", () =>
    withRing(Effect.gen(function*() {
      const a = yield* Udp.bind({ port: 0 })
      const e = yield* Effect.flip(Udp.bind({ port: a.address.port }))
      expect(e).toMatchObject({ _tag: "SocketError", operation: "bind", code: "EADDRINUSE" })
      expect(e.message).toContain(`127.0.0.1:${a.address.port}`)
      // Two sockets on one port with reusePort.
      const r1 = yield* Udp.bind({ port: 0, reusePort: true })
      const r2 = yield* Udp.bind({ port: r1.address.port, reusePort: true })
      expect(r2.address.port).toBe(r1.address.port)
      const f = yield* Effect.flip(a.sendTo(Buffer.from("x"), { host: "::1", port: 9 }))
      expect(f._tag).toBe("SocketError")
      expect(f).toMatchObject({ operation: "sendTo" })
    })))
})

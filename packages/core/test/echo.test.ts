import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Option } from "effect"
import * as net from "node:net"
import { Ringline, Tcp } from "../src/index.js"
import { echoServer, exchange, nodeClient, portOf, random, readN, ignoringPeerResets, withRing } from "./helpers.js"

describe("echo over TCP (node:net clients)", () => {
  for (const size of [16, 8 * 1024, 4 * 1024 * 1024]) {
    it.live(`echoes ${size} bytes exactly`, () =>
      withRing(Effect.gen(function*() {
        const l = yield* echoServer()
        const payload = random(size)
        const back = yield* Effect.promise(() => exchange(portOf(l), payload))
        expect(back.length).toBe(size)
        expect(back.equals(payload)).toBe(true)
      })))
  }

  for (const clients of [4, 400]) {
    it.live(`serves ${clients} parallel clients`, () =>
      withRing(Effect.gen(function*() {
        const l = yield* echoServer()
        const payloads = Array.from({ length: clients }, (_, i) => random(64 + i))
        const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
        results.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true))
        expect(l.accepted).toBe(clients)
      })))
  }

  for (const rounds of [10, 500]) {
    it.live(`${rounds} sequential request/response rounds on one connection`, () =>
      withRing(Effect.gen(function*() {
        const l = yield* echoServer()
        const s = yield* Effect.promise(() => nodeClient(portOf(l)))
        for (let i = 0; i < rounds; i++) {
          const msg = Buffer.from(`round ${i} ${"x".repeat(i % 97)}`)
          s.write(msg)
          const back = yield* Effect.promise(() => readN(s, msg.length))
          expect(back.equals(msg)).toBe(true)
        }
        s.destroy()
      })))
  }

  it.live("a connection's members work when taken off the object (they are built lazily, bound)", () =>
    withRing(Effect.gen(function*() {
      const listener = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(listener.serve((conn) => {
        // Destructured before any member was used: each is built on first access, bound.
        const { recv, write, shutdownWrite, peerAddress } = conn
        return Effect.gen(function*() {
          const peer = yield* peerAddress
          expect(peer._tag).toBe("TcpAddress")
          while (true) {
            const chunk = yield* recv
            if (Option.isNone(chunk)) break
            yield* write(chunk.value)
          }
          yield* shutdownWrite
        })
      }))
      const back = yield* Effect.promise(() => exchange(portOf(listener), Buffer.from("lazy and bound")))
      expect(back.toString()).toBe("lazy and bound")
    })))

  it.live("clients that connect and drop ×10 do not stop the server", () =>
    ignoringPeerResets(withRing(Effect.gen(function*() {
      const l = yield* echoServer()
      for (let i = 0; i < 10; i++) {
        yield* Effect.promise(() =>
          new Promise<void>((resolve) => {
            const s = net.connect(portOf(l), "127.0.0.1", () => {
              s.write("partial")
              s.resetAndDestroy()
              resolve()
            })
          })
        )
      }
      const back = yield* Effect.promise(() => exchange(portOf(l), Buffer.from("still here")))
      expect(back.toString()).toBe("still here")
    }))))

  it.live("server half-close: the client reads the echo, then EOF; the server still reads after its FIN", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Ringline.Ringline.pipe(Effect.flatMap((r) => r.listen({ _tag: "Tcp", port: 0 })))
      const afterFin = yield* Deferred.make<string>()
      yield* Effect.forkScoped(l.serve((conn) =>
        Effect.gen(function*() {
          const msg = yield* conn.recv
          yield* conn.send(msg._tag === "Some" ? msg.value : new Uint8Array())
          yield* conn.shutdownWrite
          // The write side is closed, the read side still works: the client's later bytes arrive.
          const later = yield* conn.recv
          yield* Deferred.succeed(afterFin, later._tag === "Some" ? Buffer.from(later.value).toString() : "<eof>")
        })
      ))
      // allowHalfOpen: the client keeps its write side open after the server's FIN.
      const s = yield* Effect.promise(() =>
        new Promise<net.Socket>((resolve) => {
          const c = net.connect({ port: portOf(l), host: "127.0.0.1", allowHalfOpen: true }, () => resolve(c))
        })
      )
      const received: Array<Buffer> = []
      const ended = new Promise<void>((resolve) => s.on("end", resolve))
      const closed = new Promise<void>((resolve) => s.on("close", () => resolve()))
      s.on("data", (d) => received.push(d))
      s.write("ping")
      yield* Effect.promise(() => ended)
      expect(Buffer.concat(received).toString()).toBe("ping")
      s.end("after FIN")
      expect(yield* Deferred.await(afterFin)).toBe("after FIN")
      yield* Effect.promise(() => closed)
    })))

  it.live("peer close: read reports end of stream", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ringline.Ringline
      const l = yield* ring.listen({ _tag: "Tcp", port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const conn = yield* l.accept
      s.end("last words")
      const first = yield* conn.recv
      expect(first._tag === "Some" && Buffer.from(first.value).toString()).toBe("last words")
      const eof = yield* conn.recv
      expect(eof._tag).toBe("None")
      // A parser waiting for more bytes than will ever come reports the leftover.
      const s2 = yield* Effect.promise(() => nodeClient(portOf(l)))
      const conn2 = yield* l.accept
      s2.end("abc")
      const err = yield* conn2.read((b) => (b.length >= 10 ? { _tag: "Done", consumed: 10, value: 1 } : { _tag: "NeedMore", atLeast: 10 })).pipe(Effect.flip)
      expect(err._tag).toBe("EndOfStream")
      expect(err._tag === "EndOfStream" && Buffer.from(err.leftover).toString()).toBe("abc")
    })))
})

describe("echo through read(parse) with unsafeWrite (zero-copy views)", () => {
  // Regression: views of the reassembly buffer were queued by reference and overwritten by later
  // bytes before the send went out (found by the benchmark's byte-checking load generator).
  it.live("bulk echo of 16 MiB over 4 connections stays byte-exact", () =>
    withRing(Effect.gen(function*() {
      const { Connection } = yield* Effect.promise(() => import("../src/index.js"))
      const l = yield* Ringline.Ringline.pipe(Effect.flatMap((r) => r.listen({ _tag: "Tcp", port: 0 })))
      yield* Effect.forkScoped(l.serve((conn) =>
        Effect.gen(function*() {
          // Consume only whole 1000-byte records so that leftovers go through the reassembly buffer.
          const parse = (bytes: Uint8Array) => {
            const whole = bytes.length === 0 ? 0 : bytes.length - (bytes.length % 1000)
            if (bytes.length > 0 && whole === 0) return Connection.needMore(1000)
            conn.unsafeWrite(bytes.subarray(0, whole))
            return Connection.done(whole, bytes.length === 0 ? -1 : whole)
          }
          while ((yield* conn.read(parse)) >= 0) yield* conn.writable
          yield* conn.shutdownWrite
        })
      ))
      const payloads = Array.from({ length: 4 }, () => random(4 * 1000 * 1000))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
      results.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true))
    })))
})

/**
 * Piecewise reads (src/internal/net/readers.ts "Pieces"): a `read` parser may first see the
 * first of several held receive buffers alone, so that a parser taking it whole (an echo) lets
 * its write be sent from the receive buffer itself (lent) instead of a copy. What must hold:
 * every byte once and in order whatever the chunking; a parser that needs more than the piece
 * sees every buffered byte in the same read; held buffers go back when the reader goes away;
 * a peer that does not read cannot pin the shared ring (other connections keep flowing).
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import type * as net from "node:net"
import { Connection, Ringline, RinglineTest, Tcp } from "../src/index.js"
import { exchange, nodeClient, portOf, random, readN, withRing } from "./helpers.js"

const KiB = 1024
const withNet = Effect.provide(Layer.fresh(RinglineTest.layer({ config: { recvBuffer: { bufferSize: 16 * KiB } } })))
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0

/** The demo's parse-mode echo: each parsed view written back from inside the parser. */
const parseEcho = (c: Connection.Connection) =>
  Effect.gen(function*() {
    const parse: Connection.Parser<number> = (bytes) => {
      c.unsafeWrite(bytes)
      return Connection.done(bytes.length, bytes.length === 0 ? -1 : bytes.length)
    }
    while ((yield* c.read(parse)) >= 0) yield* c.writable
    yield* c.shutdownWrite
  }).pipe(Effect.ignore)

describe("piecewise reads", () => {
  it.scoped("a parser taking everything gets one held receive buffer per read, in order", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const seen: Array<number> = []
      const all: Connection.Parser<Uint8Array> = (bytes) => {
        seen.push(bytes.length)
        return Connection.done(bytes.length, bytes.slice())
      }
      // Three reads in a row in one fiber (an echo loop): the 2nd and 3rd run in the same
      // synchronous run as the 1st's wake-up and find the other buffers still held.
      const reads = yield* Effect.fork(Effect.all([c.read(all), c.read(all), c.read(all)]))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      const sent = random(48 * KiB)
      // One batch of three 16 KiB receives, all held for the waiting reader.
      yield* peer.write(sent)
      const got = yield* Fiber.join(reads)
      expect(seen).toEqual([16 * KiB, 16 * KiB, 16 * KiB])
      expect(equalBytes(Buffer.concat(got), sent)).toBe(true)
      expect(c.bufferedBytes).toBe(0)
    }).pipe(withNet))

  it.scoped("a parser that needs more than the first buffer sees every buffered byte in the same read", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const seen: Array<number> = []
      const want = 20 * KiB
      const frame: Connection.Parser<Uint8Array> = (bytes) => {
        seen.push(bytes.length)
        return bytes.length < want ? Connection.needMore(want) : Connection.done(want, bytes.slice(0, want))
      }
      const reading = yield* Effect.fork(c.read(frame))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      const sent = random(48 * KiB)
      yield* peer.write(sent)
      const got = yield* Fiber.join(reading)
      expect(seen).toEqual([16 * KiB, 48 * KiB])
      expect(equalBytes(got, sent.subarray(0, want))).toBe(true)
      const rest = Option.getOrThrow(yield* c.recv)
      expect(equalBytes(rest, sent.subarray(want))).toBe(true)
    }).pipe(withNet))

  it.scoped("a parser consuming part of the first buffer: the rest and the other held buffers follow in order", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const part: Connection.Parser<Uint8Array> = (bytes) => Connection.done(1000, bytes.slice(0, 1000))
      const reading = yield* Effect.fork(c.read(part))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      const sent = random(48 * KiB)
      yield* peer.write(sent)
      const head = yield* Fiber.join(reading)
      expect(equalBytes(head, sent.subarray(0, 1000))).toBe(true)
      // Nobody reads for a while: whatever was still held is copied and given back meanwhile.
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      const rest = Option.getOrThrow(yield* c.recv)
      expect(equalBytes(rest, sent.subarray(1000))).toBe(true)
    }).pipe(withNet))

  it.live("ring: a reader that took one piece and went away keeps no receive buffer", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const all: Connection.Parser<Uint8Array> = (bytes) => Connection.done(bytes.length, bytes.slice())
      const reading = yield* Effect.fork(c.read(all))
      yield* Effect.sleep(Duration.millis(20))
      const sent = random(256 * KiB)
      s.write(sent)
      const first = yield* Fiber.join(reading)
      // The rest arrives while nobody reads: the ring must get every buffer back.
      for (let i = 0; i < 100 && first.length + c.bufferedBytes < sent.length; i++) yield* Effect.sleep(Duration.millis(10))
      yield* Effect.sleep(Duration.millis(20))
      const stats = yield* Ringline.stats
      expect(stats.buffers?.available).toBe(64)
      const chunks = [first]
      let total = first.length
      while (total < sent.length) {
        const chunk = yield* c.read(all)
        chunks.push(chunk)
        total += chunk.length
      }
      expect(equalBytes(Buffer.concat(chunks), sent)).toBe(true)
      s.destroy()
    }), { recvBuffer: { ringSize: 64, bufferSize: 4096 } }))

  it.live("ring: parse-mode echo of random chunkings on 8 connections: every byte back in order, every buffer back", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(parseEcho))
      const payloads = Array.from({ length: 8 }, (_, i) => random(256 * KiB + i * 7777))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => chunkedExchange(portOf(l), p))))
      results.forEach((r, i) => expect(equalBytes(r, payloads[i]!)).toBe(true))
      yield* Effect.sleep(Duration.millis(50))
      const stats = yield* Ringline.stats
      expect(stats.buffersLent).toBe(0)
      expect(stats.buffers?.available).toBe(64)
    }), { recvBuffer: { ringSize: 64, bufferSize: 16 * KiB } }))

  it.live("ring: a peer that does not read cannot pin the ring; other connections keep flowing", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(parseEcho))
      const stuck = yield* Effect.promise(() => nodeClient(portOf(l)))
      stuck.pause() // never reads
      const flood = random(64 * KiB)
      for (let i = 0; i < 128; i++) stuck.write(flood)
      yield* Effect.sleep(Duration.millis(300))
      const during = yield* Ringline.stats
      // Lent to the stuck connection's queue: at most its own cap, well under half the ring.
      expect(during.buffersLent).toBeLessThanOrEqual(16)
      const payloads = Array.from({ length: 4 }, () => random(1024 * KiB))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
      results.forEach((r, i) => expect(equalBytes(r, payloads[i]!)).toBe(true))
      stuck.destroy()
      yield* Effect.sleep(Duration.millis(100))
      const after = yield* Ringline.stats
      expect(after.buffersLent).toBe(0)
      expect(after.buffers?.available).toBe(64)
    }), { recvBuffer: { ringSize: 64, bufferSize: 16 * KiB } }))
})

/** Writes `payload` in random slices (1 B to 40 KiB) with random pauses, reading the echo meanwhile. */
const chunkedExchange = (port: number, payload: Uint8Array): Promise<Buffer> =>
  nodeClient(port).then((s: net.Socket) => {
    const back = readN(s, payload.length)
    let at = 0
    const step = () => {
      if (at >= payload.length) return
      const n = Math.min(payload.length - at, 1 + Math.floor(Math.random() * (Math.random() < 0.5 ? 512 : 40 * KiB)))
      s.write(payload.subarray(at, at + n))
      at += n
      if (Math.random() < 0.2) setTimeout(step, 1)
      else setImmediate(step)
    }
    step()
    return back.finally(() => s.destroy())
  })

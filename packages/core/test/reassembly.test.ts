/**
 * The receive side's reassembly (src/internal/net/readers.ts) as a reader sees it: what memory a
 * `recv` chunk comes in, and that bytes arriving in several receive completions reach readers
 * whole and in order whichever path they took (held for the waiting reader, or copied). On
 * RinglineTest, whose wire completes every receive of what a peer wrote at once in one batch
 * (16 KiB receive buffers here), so the batches are exact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { Connection, RinglineTest, Tcp } from "../src/index.js"
import { random } from "./helpers.js"

const KiB = 1024
const withNet = Effect.provide(Layer.fresh(RinglineTest.layer({ config: { recvBuffer: { bufferSize: 16 * KiB } } })))

/** A connection with a peer, and a `recv` already waiting on it. */
const waitingRecv = Effect.gen(function*() {
  const l = yield* Tcp.listen({ port: 0 })
  const peer = yield* RinglineTest.connect(l.address)
  const c = yield* l.accept
  const recv = yield* Effect.fork(c.recv)
  // The reader is in line before the peer writes.
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
  return { peer, c, recv }
})

/** Lets the in-memory network run its tasks (it runs them from setImmediate, as libuv's poll phase would). */
const nextTask = Effect.promise(() => new Promise<void>((r) => setImmediate(r)))

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0

describe("recv chunks: the memory a reader keeps", () => {
  it.scoped("several receives of one batch for a waiting reader: one chunk, in memory of exactly its size", () =>
    Effect.gen(function*() {
      const { peer, recv } = yield* waitingRecv
      const sent = random(48 * KiB)
      yield* peer.write(sent)
      const chunk = Option.getOrThrow(yield* Fiber.join(recv))
      expect(equalBytes(chunk, sent)).toBe(true)
      // Copied once, together: no spare tail (that had to be zeroed) and no regrowth.
      expect({ offset: chunk.byteOffset, memory: chunk.buffer.byteLength }).toEqual({ offset: 0, memory: 48 * KiB })
    }).pipe(withNet))

  it.scoped("bytes that arrived while no reader waited: the chunk's memory holds nothing but it and zeros", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      // No reader: each 16 KiB receive is appended to a growing buffer (16, 32, 64 KiB).
      const sent = random(40 * KiB)
      yield* peer.write(sent)
      for (let i = 0; i < 100 && c.bufferedBytes < sent.length; i++) yield* nextTask
      expect(c.bufferedBytes).toBe(sent.length)
      const chunk = Option.getOrThrow(yield* c.recv)
      expect(equalBytes(chunk, sent)).toBe(true)
      // The unwritten rest of the handed-over buffer is reachable through chunk.buffer: it must
      // not show whatever that memory held before (other connections' bytes).
      const all = new Uint8Array(chunk.buffer)
      const outside = [...all.subarray(0, chunk.byteOffset), ...all.subarray(chunk.byteOffset + chunk.length)]
      expect(outside.length).toBeGreaterThan(0)
      expect(outside.every((b) => b === 0)).toBe(true)
    }).pipe(withNet))

  it.scoped("a parser that needs more than one batch brought: every byte once, in order, across held and copied receives", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const peer = yield* RinglineTest.connect(l.address)
      const c = yield* l.accept
      const want = 200 * KiB
      const whole: Connection.Parser<Uint8Array> = (bytes) =>
        bytes.length < want ? Connection.needMore(want) : Connection.done(want, bytes.slice(0, want))
      const reading = yield* Effect.fork(c.read(whole))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      const sent = random(want + 10 * KiB)
      // Batches of 1, 3 and 9 receives (the last one more than may be held), then a trickle.
      let at = 0
      for (const n of [16 * KiB, 48 * KiB, 140 * KiB, 1 * KiB, 5 * KiB]) {
        yield* peer.write(sent.subarray(at, at + n))
        at += n
        for (let i = 0; i < 3; i++) yield* Effect.yieldNow()
      }
      const got = yield* Fiber.join(reading)
      expect(equalBytes(got, sent.subarray(0, want))).toBe(true)
      const rest = Option.getOrThrow(yield* c.recv)
      expect(equalBytes(rest, sent.subarray(want))).toBe(true)
    }).pipe(withNet))

  // Small chunks (65 B to 4 KiB) are copied into a slab of the connection's own (keepSlab.ts):
  // what a chunk's memory exposes beyond it must be this connection's earlier bytes or zeros,
  // never another connection's; and every chunk keeps its bytes while later ones are copied.
  it.scoped("small recv chunks share a slab of their own connection only: intact, and nothing but its bytes and zeros around them", () =>
    Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const pairs = []
      for (let i = 0; i < 2; i++) {
        const peer = yield* RinglineTest.connect(l.address)
        pairs.push({ peer, c: yield* l.accept, sent: [] as Array<Uint8Array>, got: [] as Array<Uint8Array> })
      }
      // Interleaved: each connection's chunks are copied while the other's are.
      for (let round = 0; round < 40; round++) {
        for (const [k, p] of pairs.entries()) {
          // Distinct non-zero fills per connection, sizes across alignment and the slab's end.
          const bytes = new Uint8Array(65 + ((round * 379 + k * 101) % 1500)).fill(k === 0 ? 0xa1 : 0xb2)
          bytes[0] = round
          yield* p.peer.write(bytes)
          p.sent.push(bytes)
          for (let i = 0; i < 100 && p.c.bufferedBytes < bytes.length; i++) yield* nextTask
          p.got.push(Option.getOrThrow(yield* p.c.recv))
        }
      }
      for (const [k, p] of pairs.entries()) {
        const mine = k === 0 ? 0xa1 : 0xb2
        for (const [i, chunk] of p.got.entries()) {
          expect(equalBytes(chunk, p.sent[i]!)).toBe(true)
          expect(chunk.byteOffset % 8).toBe(0)
          // Zeros, round numbers (first bytes) and this connection's fill only.
          expect(new Uint8Array(chunk.buffer).every((b) => b === 0 || b === mine || b < 40)).toBe(true)
        }
        // They did share memory: fewer buffers than chunks.
        expect(new Set(p.got.map((c) => c.buffer)).size).toBeLessThan(p.got.length / 4)
      }
      const buffers = pairs.map((p) => new Set(p.got.map((c) => c.buffer)))
      expect([...buffers[0]!].some((b) => buffers[1]!.has(b))).toBe(false)
    }).pipe(withNet))

  it.scoped("a small chunk whose buffer was transferred (detached) does not break the next ones", () =>
    Effect.gen(function*() {
      const { peer, c, recv } = yield* waitingRecv
      yield* peer.write(new Uint8Array(100).fill(7))
      const first = Option.getOrThrow(yield* Fiber.join(recv))
      expect(first.length).toBe(100)
      structuredClone(first.buffer, { transfer: [first.buffer as ArrayBuffer] })
      expect(first.buffer.byteLength).toBe(0)
      const next = new Uint8Array(300).fill(9)
      yield* peer.write(next)
      for (let i = 0; i < 100 && c.bufferedBytes < next.length; i++) yield* nextTask
      expect(equalBytes(Option.getOrThrow(yield* c.recv), next)).toBe(true)
    }).pipe(withNet))
})

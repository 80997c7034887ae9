/**
 * Borrowed chunks (`Listener.serveChunks(..., { borrow: true })`) on the ring: a chunk is the
 * receive buffer itself, lent until the handler's answer is over, then revoked (detached).
 * What must hold: every byte once and in order under random chunking; a chunk's memory reaches
 * exactly its own bytes; a chunk kept past its answer is empty, never another connection's
 * bytes; a transferred chunk is copied by the transfer (not moved out of the ring); a peer that does not
 * read cannot pin the shared ring; every buffer and op back at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import type * as net from "node:net"
import { Listener, Ringline, Tcp } from "../src/index.js"
import { exchange, nodeClient, portOf, random, readN, withRing } from "./helpers.js"

const KiB = 1024
const RING = { recvBuffer: { ringSize: 64, bufferSize: 16 * KiB } }
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0
const quiet = { onFailure: () => Effect.void, borrow: true } as const

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

describe("serveChunks borrow (ring)", () => {
  it.live("echo of random chunkings on 8 connections: every byte back in order, chunks borrowed, every buffer back", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      let borrowed = 0
      let exact = 0
      yield* Effect.forkScoped(Listener.serveChunks(l, (chunk, conn) => {
        if (chunk.length === 0) return
        // A borrowed chunk's ArrayBuffer is exactly its bytes.
        if (chunk.buffer.byteLength === chunk.length && chunk.byteOffset === 0) exact++
        borrowed++
        conn.unsafeWrite(chunk)
      }, quiet))
      const payloads = Array.from({ length: 8 }, (_, i) => random(256 * KiB + i * 7777))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => chunkedExchange(portOf(l), p))))
      results.forEach((r, i) => expect(equalBytes(r, payloads[i]!)).toBe(true))
      expect(exact).toBe(borrowed)
      yield* Effect.sleep(Duration.millis(50))
      const stats = yield* Ringline.stats
      expect(stats.buffersLent).toBe(0)
      expect(stats.buffers?.available).toBe(64)
    }), RING))

  it.live("a chunk kept past its handler is empty afterwards (or was a copy and intact), never another connection's bytes", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const kept: Array<{ chunk: Uint8Array; copy: Uint8Array }> = []
      yield* Effect.forkScoped(Listener.serveChunks(l, (chunk, conn) => {
        if (chunk.length === 0) return
        kept.push({ chunk, copy: chunk.slice() })
        conn.unsafeWrite(chunk)
      }, quiet))
      // Two connections with distinct fills, interleaved: the buffers are reused across them.
      const a = new Uint8Array(256 * KiB).fill(0xa1)
      const b = new Uint8Array(256 * KiB).fill(0xb2)
      const [ra, rb] = yield* Effect.promise(() => Promise.all([chunkedExchange(portOf(l), a), chunkedExchange(portOf(l), b)]))
      expect(equalBytes(ra, a)).toBe(true)
      expect(equalBytes(rb, b)).toBe(true)
      let revoked = 0
      for (const k of kept) {
        // The copy made while it was valid holds one connection's bytes only.
        expect(k.copy.every((x) => x === k.copy[0])).toBe(true)
        if (k.chunk.length === 0) {
          // Revoked: nothing readable any more, so nothing of whoever uses that buffer next.
          expect(k.chunk.buffer.byteLength).toBe(0)
          revoked++
        } else {
          // Bytes that were copied before the handler saw them (none was waiting): its own memory.
          expect(equalBytes(k.chunk, k.copy)).toBe(true)
        }
      }
      expect(revoked).toBeGreaterThan(0)
    }), RING))

  it.live("a transferred chunk is copied by the transfer, not moved: it is still revoked, every buffer goes back", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      let moved: ArrayBuffer | undefined
      let original: Uint8Array | undefined
      yield* Effect.forkScoped(Listener.serveChunks(l, (chunk, conn) => {
        if (chunk.length === 0) return
        conn.unsafeWrite(chunk)
        if (moved === undefined) {
          original = chunk
          moved = structuredClone(chunk.buffer as ArrayBuffer, { transfer: [chunk.buffer as ArrayBuffer] })
        }
      }, quiet))
      // At least LEND_MIN (4 KiB): smaller receives are copied, never borrowed.
      const first = new Uint8Array(8000).fill(0x33)
      expect(equalBytes(yield* Effect.promise(() => exchange(portOf(l), first)), first)).toBe(true)
      const movedBytes = new Uint8Array(moved!)
      expect(movedBytes.every((x) => x === 0x33)).toBe(true)
      expect(original!.length).toBe(0)
      // Much more traffic, other fills: the transferred memory is not the ring's.
      const more = Array.from({ length: 4 }, (_, i) => new Uint8Array(512 * KiB).fill(0x40 + i))
      const back = yield* Effect.promise(() => Promise.all(more.map((p) => exchange(portOf(l), p))))
      back.forEach((r, i) => expect(equalBytes(r, more[i]!)).toBe(true))
      expect(movedBytes.every((x) => x === 0x33)).toBe(true)
      yield* Effect.sleep(Duration.millis(50))
      const stats = yield* Ringline.stats
      expect(stats.buffersLent).toBe(0)
      expect(stats.buffers?.available).toBe(64)
    }), RING))

  it.live("a peer that does not read cannot pin the ring; other connections keep flowing", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(Listener.serveChunks(l, (chunk, conn) => {
        if (chunk.length > 0) conn.unsafeWrite(chunk)
      }, quiet))
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
    }), RING))

  it.live("options.borrow must be a boolean", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const exit = yield* Effect.exit(Listener.serveChunks(l, () => undefined, { borrow: "yes" as any }))
      expect(exit._tag).toBe("Failure")
      expect(String(exit._tag === "Failure" ? exit.cause : "")).toContain("options.borrow must be a boolean")
    })))
})

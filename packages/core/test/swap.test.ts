/**
 * Buffer swap on the real ring (ring.h "Swapping", wire.ts "Swapping", readers.ts "Swapped
 * chunks"): a large receive reaches the reader in the memory the kernel wrote it to, its
 * provided-buffer slot gets a free block of the ring's slab, and nothing the kernel receives
 * later ever lands in memory a reader holds. The slab has twice as many blocks as slots, so a
 * reader that keeps everything gets copies once it holds as many blocks as there are slots.
 * node:net peers; every chunk is kept until the end, so a late kernel write into handed-over
 * memory would show in the final comparison.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import * as net from "node:net"
import { Ringline, Tcp } from "../src/index.js"
import { load } from "../src/internal/native.js"
import { nodeClient, portOf, random, withRing } from "./helpers.js"

const KiB = 1024
/** 16 receive buffers of 64 KiB: 8 MiB goes through each buffer id 8 times. */
const BUFFER = 64 * KiB
const RING_SIZE = 16
const config = { recvBuffer: { ringSize: RING_SIZE, bufferSize: BUFFER } }

/** Writes `payload` to a fresh node:net client of `port`, then ends it. */
const sendAll = (port: number, payload: Uint8Array) =>
  Effect.promise(async () => {
    const s = await nodeClient(port)
    s.end(payload)
    return s
  })

describe("buffer swap (large receives handed over without a copy)", () => {
  it.live("8 MiB through recv: every byte once, in order; swapped chunks are receive memory of their own; buffers all back", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const sent = random(8 * 1024 * KiB)
      const peer = yield* sendAll(portOf(l), sent)
      const c = yield* l.accept
      const kept: Array<Uint8Array> = []
      while (true) {
        const chunk = yield* c.recv
        if (Option.isNone(chunk)) break
        kept.push(chunk.value)
      }
      // Kept to the end: a receive that landed in handed-over memory would change them.
      expect(Buffer.concat(kept).equals(sent)).toBe(true)
      const stats = yield* Ringline.stats
      expect(stats.bytesIn).toBe(sent.length)
      // Loopback delivers large receives to a bulk reader: they are swapped until the reader,
      // which keeps every chunk, holds as many blocks as there are slots; the rest are copied.
      const swapped = kept.filter((k) => k.byteOffset === 0 && k.buffer.byteLength === k.length && k.length >= BUFFER / 2)
      expect(stats.bytesSwapped).toBeGreaterThanOrEqual(RING_SIZE * BUFFER / 2)
      expect(stats.swapRefused).toBeGreaterThan(0)
      // A handed-over block is an ArrayBuffer of exactly the received bytes (nothing past them
      // that an earlier receive, maybe another connection's, left there)...
      expect(swapped.length).toBeGreaterThanOrEqual(RING_SIZE)
      // ...and no two kept chunks share memory (a block handed over is never a slot's again
      // while its ArrayBuffer lives).
      expect(new Set(swapped.map((k) => k.buffer)).size).toBe(swapped.length)
      yield* c.close
      peer.destroy()
      // Every provided buffer went back to the kernel (swapped slots with their fresh memory).
      const after = yield* Ringline.stats
      expect(after.buffers?.available).toBe(RING_SIZE)
    }), config))

  it.live("4 connections in parallel, stream into sink: byte-exact echo of 4 MiB each while chunks are swapped", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve((conn) => Stream.run(conn.stream, conn.sink)))
      const payloads = Array.from({ length: 4 }, () => random(4 * 1024 * KiB))
      const backs = yield* Effect.promise(() =>
        Promise.all(payloads.map((p) =>
          new Promise<Buffer>((resolve, reject) => {
            const s = net.connect(portOf(l), "127.0.0.1")
            const parts: Array<Buffer> = []
            s.on("data", (d) => parts.push(d))
            s.on("end", () => resolve(Buffer.concat(parts)))
            s.on("error", reject)
            s.end(p)
          })
        ))
      )
      backs.forEach((b, i) => expect(b.equals(payloads[i]!)).toBe(true))
      expect((yield* Ringline.stats).bytesSwapped).toBeGreaterThan(0)
    }), config))
})

describe("Ring.handOver refuses what it must not hand over", () => {
  const options = {
    sqEntries: 8, cqEntries: 32, bufferCount: 4, bufferSize: 4096, files: 0, sendPoolBytes: 4096,
    argBytes: 4096, sqpoll: false, sqpollIdleMs: 0
  }

  it("a buffer id or length out of range, a closed ring; the bound of free blocks", () => {
    const ring = new (load().Ring)(options, () => {})
    const regions = ring.info().regions
    try {
      expect(() => ring.handOver(4, 1)).toThrow(RangeError)
      expect(() => ring.handOver(-1, 1)).toThrow(RangeError)
      expect(() => ring.handOver(1.5, 1)).toThrow(RangeError)
      expect(() => ring.handOver(0, 0)).toThrow(RangeError)
      expect(() => ring.handOver(0, 4097)).toThrow(RangeError)
      expect(() => ring.handOver("0" as never, 1)).toThrow(TypeError)
      expect(regions.recvBuffers.byteLength).toBeGreaterThanOrEqual(8 * 4096)
      const blocks = new Int32Array(regions.recvBlocks)
      const owners = new Int32Array(regions.blockSlots)
      // Four slots, four free blocks: four hand-overs, then none until one is collected.
      const held: Array<ArrayBuffer> = []
      for (let i = 0; i < 4; i++) {
        const before = blocks[0]!
        const ab = ring.handOver(0, 100 + i)!
        expect(ab.byteLength).toBe(100 + i)
        expect(blocks[0]).not.toBe(before)
        expect(owners[before]).toBe(-1)
        expect(owners[blocks[0]!]).toBe(0)
        held.push(ab)
      }
      expect(ring.handOver(1, 1)).toBeUndefined()
      // The slots still hold distinct blocks, none of them one that was handed over.
      expect(new Set(blocks).size).toBe(4)
      expect(held.length).toBe(4)
    } finally {
      ring.close()
    }
    expect(() => ring.handOver(0, 1)).toThrow(/closed/)
  })
})

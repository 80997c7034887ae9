/**
 * Buffer swap on the real ring (ring.h "Swapping", wire.ts "Swapping", readers.ts "Swapped
 * chunks"): a large receive reaches the reader in the memory the kernel wrote it to, its
 * provided-buffer slot gets fresh memory, and nothing the kernel receives later ever lands in
 * memory a reader holds. node:net peers; every chunk is kept until the end, so a late kernel
 * write into handed-over memory would show in the final comparison.
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
      // Loopback delivers full 64 KiB receives to a bulk reader: most bytes are swapped.
      expect(stats.bytesSwapped).toBeGreaterThan(sent.length / 2)
      const swapped = kept.filter((k) => k.byteOffset === 0 && k.buffer.byteLength === BUFFER && k.length >= BUFFER / 2)
      expect(swapped.length).toBeGreaterThan(0)
      for (const k of swapped) {
        // The unwritten rest of a swapped buffer held an earlier receive (maybe another
        // connection's): it reads as zeros.
        expect(new Uint8Array(k.buffer, k.length).every((b) => b === 0)).toBe(true)
      }
      // No two kept chunks share memory (a slot never gets the memory it handed over again).
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

describe("Ring.provide refuses what the kernel must never be given", () => {
  const options = {
    sqEntries: 8, cqEntries: 32, bufferCount: 4, bufferSize: 4096, files: 0, sendPoolBytes: 4096,
    argBytes: 4096, sqpoll: false, sqpollIdleMs: 0
  }

  it("a buffer id out of range, a non-ArrayBuffer, memory smaller than bufferSize, a closed ring", () => {
    const ring = new (load().Ring)(options, () => {})
    try {
      expect(() => ring.provide(4, new ArrayBuffer(4096))).toThrow(RangeError)
      expect(() => ring.provide(-1, new ArrayBuffer(4096))).toThrow(RangeError)
      expect(() => ring.provide(1.5, new ArrayBuffer(4096))).toThrow(RangeError)
      expect(() => ring.provide(0, new Uint8Array(4096) as never)).toThrow(TypeError)
      expect(() => ring.provide(0, new ArrayBuffer(4095))).toThrow(RangeError)
      // Accepted: a slot the ring has not handed out yet may still get new memory.
      ring.provide(0, new ArrayBuffer(8192))
      expect(new Float64Array(ring.info().regions.recvAddrs)[0]).toBeGreaterThan(0)
    } finally {
      ring.close()
    }
    expect(() => ring.provide(0, new ArrayBuffer(4096))).toThrow(/closed/)
  })
})

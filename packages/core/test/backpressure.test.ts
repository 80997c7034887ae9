import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as net from "node:net"
import { Ringline, Tcp } from "../src/index.js"
import { echo, nodeClient, portOf, random, ignoringPeerResets, withRing } from "./helpers.js"

describe("backpressure and buffers", () => {
  it.live("a non-reading client makes write wait at the high-water mark instead of growing memory", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      s.pause() // never reads
      const c = yield* l.accept
      const chunk = random(64 * 1024)
      let written = 0
      const writer = yield* Effect.fork(Effect.forever(Effect.tap(c.write(chunk), () => Effect.sync(() => (written += chunk.length)))))
      yield* Effect.sleep(500)
      // The kernel's socket buffers took some, then write stopped returning: the queue is bounded.
      const stuckAt = written
      yield* Effect.sleep(200)
      expect(written).toBe(stuckAt)
      expect(c.queuedBytes).toBeGreaterThan(256 * 1024)
      expect(c.queuedBytes).toBeLessThanOrEqual(1024 * 1024 + chunk.length)
      expect((yield* Ringline.stats).backpressurePauses).toBeGreaterThan(0)
      // Reading on the client side drains the queue and the writer resumes.
      s.resume()
      yield* Effect.sleep(300)
      expect(written).toBeGreaterThan(stuckAt)
      yield* Fiber.interrupt(writer)
      s.destroy()
    })))

  it.live("close gives queued sends at most shutdownTimeout when the peer does not read", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      s.pause()
      const c = yield* l.accept
      for (let i = 0; i < 8; i++) yield* Effect.fork(c.write(random(512 * 1024)))
      yield* Effect.sleep(100)
      expect(c.queuedBytes).toBeGreaterThan(0)
      const t0 = Date.now()
      yield* c.close
      const took = Date.now() - t0
      expect(took).toBeGreaterThanOrEqual(250)
      expect(took).toBeLessThan(2000)
      s.destroy()
    }), { shutdownTimeout: 300 }))

  it.live("a connection nobody reads from stops receiving at the high-water mark", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      const payload = random(16 * 1024 * 1024)
      s.write(payload)
      yield* Effect.sleep(500)
      // Receiving stopped: the count no longer grows, the rest waits in the kernel and the
      // peer's send buffer. Bound: high water plus what the kernel had already placed in provided
      // buffers before the cancel took effect (at most the whole ring, 256 × 16 KiB).
      const held = c.bufferedBytes
      yield* Effect.sleep(200)
      expect(c.bufferedBytes).toBe(held)
      expect(held).toBeGreaterThan(1024 * 1024)
      expect(held).toBeLessThanOrEqual(1024 * 1024 + 256 * 16384)
      expect(s.writableLength).toBeGreaterThan(0)
      // Reading resumes the flow; every byte arrives in order.
      let got = 0
      const chunks: Array<Uint8Array> = []
      while (got < payload.length) {
        const chunk = yield* c.recv
        if (chunk._tag === "None") break
        chunks.push(chunk.value)
        got += chunk.value.length
      }
      expect(Buffer.concat(chunks).equals(payload)).toBe(true)
      s.destroy()
    }), { sendQueueHighWater: 1024 * 1024, sendQueueLowWater: 256 * 1024 }))

  it.live("an echo server stays bounded while a client writes 256 MiB without reading", () =>
    ignoringPeerResets(withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      s.pause()
      const block = Buffer.alloc(1024 * 1024, 7)
      let sent = 0
      const target = 256 * 1024 * 1024
      const rssBefore = process.memoryUsage().rss
      // Write as fast as the kernel lets us; stop when the sockets are full (server paused recv).
      const progress = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          let lastChange = Date.now()
          const pump = () => {
            while (sent < target) {
              sent += block.length
              lastChange = Date.now()
              if (!s.write(block)) return s.once("drain", pump)
            }
          }
          pump()
          const check = setInterval(() => {
            if (sent >= target || Date.now() - lastChange > 700) {
              clearInterval(check)
              resolve(sent)
            }
          }, 100)
        })
      )
      const stats = yield* Ringline.stats
      // The server stopped reading long before 256 MiB: memory stayed bounded.
      expect(progress).toBeLessThan(target)
      expect(stats.backpressurePauses).toBeGreaterThan(0)
      const rssGrowth = process.memoryUsage().rss - rssBefore
      // Node's own client-side buffering is in this process too; the server side adds at most
      // ~highWater per connection. Allow generous slack, far below 256 MiB.
      expect(rssGrowth).toBeLessThan(96 * 1024 * 1024)
      s.destroy()
    }))))

  it.live("a ring of 4 buffers serves 8 concurrent clients (ENOBUFS recovery)", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const payloads = Array.from({ length: 8 }, () => random(256 * 1024))
      const { exchange } = yield* Effect.promise(() => import("./helpers.js"))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
      results.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true))
      const stats = yield* Ringline.stats
      expect(stats.enobufs).toBeGreaterThan(0)
      // Every provided buffer went back to the kernel.
      expect(stats.buffers?.available).toBe(4)
    }), { recvBuffer: { ringSize: 4, bufferSize: 4096 } }))

  it.live("every provided buffer is returned after heavy traffic", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const { exchange } = yield* Effect.promise(() => import("./helpers.js"))
      yield* Effect.promise(() => Promise.all(Array.from({ length: 16 }, () => exchange(portOf(l), random(1024 * 1024)))))
      const stats = yield* Ringline.stats
      expect(stats.buffers?.available).toBe(64)
      expect(stats.staleCqes).toBe(0)
    }), { recvBuffer: { ringSize: 64, bufferSize: 16384 } }))

  void net
})

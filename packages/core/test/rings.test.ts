import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Worker } from "node:worker_threads"
import { Ringline } from "../src/index.js"
import { Op, SqeFlag, W } from "../src/internal/sqe.js"
import { echoServer, exchange, fdCount, portOf, random, withRing } from "./helpers.js"

describe("ring set-ups", () => {
  it.live("a tiny ring (SQ 2, CQ 8) serves 100 clients through SQ-full flushes and CQ overflow", () =>
    withRing(Effect.gen(function*() {
      const l = yield* echoServer()
      const payloads = Array.from({ length: 100 }, () => random(32 * 1024))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(portOf(l), p))))
      results.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true))
      const stats = yield* Ringline.stats
      expect(stats.sqFull + stats.cqOverflows).toBeGreaterThan(0)
    }), { sqEntries: 2 }))

  it.live("submitBatch: staged SQEs go to the kernel early, but never in the middle of a linked chain", () =>
    withRing(Effect.gen(function*() {
      const d = (yield* Ringline.Ringline).driver!
      const results: Array<number> = []
      let wake: (() => void) | undefined
      const owner = {
        onCqe(_slot: number, tag: number, res: number) {
          results.push(tag, res)
          if (results.length === 2 * 9) wake?.()
        }
      }
      const nop = (tag: number, flags = 0) => d.sqe(Op.NOP, flags, -1, d.alloc(owner, tag))
      const submitted = () => d.stats().submitted
      const start = submitted()
      // Plain SQEs with submitBatch 1: each new one first submits the one before it.
      nop(0)
      nop(1)
      nop(2)
      expect(submitted() - start).toBe(2)
      // A chain of 4 linked NOPs and its last link: nothing is submitted until the chain is closed.
      const mid = submitted()
      for (let i = 3; i < 7; i++) nop(i, SqeFlag.IO_LINK)
      expect(submitted()).toBe(mid + 1) // only NOP 2, staged before the chain began
      nop(7)
      expect(submitted()).toBe(mid + 1)
      nop(8) // the chain (3..7) is complete: it goes in one submit
      expect(submitted()).toBe(mid + 1 + 5)
      yield* Effect.async<void>((resume) => {
        wake = () => resume(Effect.void)
        if (results.length === 18) resume(Effect.void)
      })
      // Every NOP succeeded: a chain cut at a submit boundary would still run, so the submit counts
      // above are what proves the chain stayed whole.
      for (let i = 0; i < 9; i++) expect(results[results.indexOf(i) + 1]).toBe(0)
    }), { submitBatch: 1 }))

  it.live("defer-taskrun: the eventfd is quiet while awake, so wake-ups are not wasted (and none is lost)", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ringline.Ringline
      if (ring.mode !== "defer-taskrun") {
        console.log(`SKIP ring mode is ${ring.mode}, not defer-taskrun`)
        return
      }
      const d = ring.driver!
      const before = yield* Ringline.stats
      // 100 pairs of timeouts 1 ms apart, the two of a pair 10 µs apart, each handled in 50 µs:
      // the second expires while the first is being handled. That used to signal the eventfd for
      // work the same wake-up then consumed, leaving an empty wake-up behind every pair.
      const total = 200
      let fired = 0
      let wake: (() => void) | undefined
      const owner = {
        onCqe(_slot: number, _tag: number, res: number) {
          expect(res).toBe(-62) // ETIME
          const until = performance.now() + 0.05
          while (performance.now() < until) {
            // busy: the handler's own work
          }
          if (++fired === total) wake?.()
        }
      }
      for (let i = 0; i < total; i++) {
        const slot = d.alloc(owner, 0)
        const ns = BigInt(2e6 + (i >> 1) * 1e6 + (i & 1) * 1e4)
        const ts = new DataView(d.args.buffer, d.args.byteOffset + slot * 128, 16)
        ts.setBigInt64(0, 0n, true)
        ts.setBigInt64(8, ns, true)
        const w = d.sqe(Op.TIMEOUT, 0, -1, slot)
        d.setAddr(w, W.addr, d.argAddress(slot))
        d.words[w + W.len] = 1
      }
      yield* Effect.async<void>((resume) => {
        wake = () => resume(Effect.void)
        if (fired === total) resume(Effect.void)
      })
      const after = yield* Ringline.stats
      const wakeups = after.wakeups - before.wakeups
      const empty = after.emptyWakeups - before.emptyWakeups
      console.log(`wake-ups ${wakeups}, empty ${empty}`)
      expect(empty).toBeLessThan(Math.max(3, wakeups * 0.05))
    })))

  it.live("an SQPOLL ring works when asked for", () =>
    withRing(Effect.gen(function*() {
      const ring = yield* Ringline.Ringline
      expect(ring.mode).toBe("sqpoll")
      const l = yield* echoServer()
      const payload = random(256 * 1024)
      expect((yield* Effect.promise(() => exchange(portOf(l), payload))).equals(payload)).toBe(true)
    }), { sqpoll: true, sqpollIdleMs: 10 }))

  it.live("each worker thread owns its ring; terminate() with an accept armed exits cleanly", () =>
    Effect.gen(function*() {
      const source = `
        const { parentPort } = require("node:worker_threads")
        ;(async () => {
          const { Effect, Option } = await import("effect")
          const { Ringline, Tcp } = await import(${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)})
          const echo = (conn) => Effect.gen(function*() {
            while (true) {
              const chunk = yield* conn.recv
              if (Option.isNone(chunk)) break
              yield* conn.write(chunk.value)
            }
            yield* conn.shutdownWrite
          })
          await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const l = yield* Tcp.listen({ port: 0 })
            parentPort.postMessage({ port: l.address.port, mode: (yield* Ringline.stats).mode })
            yield* l.serve(echo)
          })).pipe(Effect.provide(Ringline.layer())))
        })()
      `
      const baseline = fdCount()
      const workers = [new Worker(source, { eval: true }), new Worker(source, { eval: true })]
      const infos = yield* Effect.promise(() =>
        Promise.all(workers.map((w) => new Promise<{ port: number; mode: string }>((r) => w.once("message", r))))
      )
      expect(infos[0]!.port).not.toBe(infos[1]!.port)
      for (const info of infos) {
        const payload = random(100_000)
        expect((yield* Effect.promise(() => exchange(info.port, payload))).equals(payload)).toBe(true)
      }
      const codes = yield* Effect.promise(() => Promise.all(workers.map((w) => w.terminate())))
      expect(codes).toEqual([1, 1])
      // The rings, their eventfds, fixed files and the listening sockets all went with the workers.
      expect(fdCount()).toBe(baseline)
    }))
})

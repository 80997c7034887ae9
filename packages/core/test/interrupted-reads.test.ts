/**
 * Issue 9, item 3: an interrupted read, recv, recvFrom or accept consumes nothing. Each scenario
 * races the operation against tiny timeouts on a real socket pair and checks that every byte
 * (datagram, connection) sent arrives exactly once and in order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option, Scope } from "effect"
import { createHash } from "node:crypto"
import * as net from "node:net"
import { Connection, Ringline, RinglineClock, Tcp, Udp } from "../src/index.js"
import { portOf, withRing } from "./helpers.js"

const MB = 1024 * 1024
/** Bytes per scenario: enough for ~hundreds of timeouts landing on data, bounded in time. */
const TOTAL = Number(process.env.RINGLINE_RACE_BYTES ?? 20 * MB)
const SYNC_EVERY = 256

const onRingClock = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(RinglineClock.make(), (clock) => Effect.withClock(body, clock))

/** Pseudo-random chunk sizes 1..20,000 and contents, from a seed (reproducible). */
const chunks = function*(total: number, seed: number) {
  let x = seed >>> 0 || 1
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0)
  let sent = 0
  while (sent < total) {
    const n = Math.min(total - sent, 1 + (next() % 20000))
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i += 61) b[i] = next() & 0xff
    sent += n
    yield b
  }
}

/**
 * A ringline client sends `TOTAL` bytes in 1..20,000-byte chunks to a ringline server whose loop
 * is `take` (one read raced against a timeout of 0..0.4 ms); the server's bytes must hash equal.
 * Every `SYNC_EVERY` chunks the client waits until the server has read everything, then 1 ms
 * more, so some reads wait on an empty connection and their timeouts do fire: with plain sends
 * on loopback (no zero-copy notification to wait for) the client outran a 777-byte-per-read
 * server for a whole run and not one timeout fired (the test then proves nothing).
 */
const raceScenario = (
  take: (c: Connection.Connection) => Effect.Effect<Option.Option<Option.Option<Uint8Array>>, unknown>
) =>
  Effect.gen(function*() {
    const l = yield* Tcp.listen({ port: 0 })
    const progress = { got: 0 }
    const server = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
      const c = yield* l.accept
      const h = createHash("sha256")
      let got = 0
      let timeouts = 0
      while (true) {
        const r = yield* take(c)
        if (Option.isNone(r)) {
          timeouts++
          continue
        }
        if (Option.isNone(r.value)) break
        h.update(r.value.value)
        got += r.value.value.length
        progress.got = got
      }
      return { got, hash: h.digest("hex"), timeouts }
    })))
    const c = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
    const h = createHash("sha256")
    let sent = 0
    let n = 0
    for (const b of chunks(TOTAL, 9)) {
      h.update(b)
      sent += b.length
      yield* c.send(b)
      if (++n % SYNC_EVERY === 0) {
        while (progress.got < sent) yield* Effect.sleep("1 millis")
        yield* Effect.sleep("1 millis")
      }
    }
    yield* c.shutdownWrite
    const r = yield* Fiber.join(server)
    console.log(`${sent} bytes sent, ${r.got} received, ${r.timeouts} timeouts fired`)
    expect(r.timeouts).toBeGreaterThan(0)
    expect(r.got).toBe(sent)
    expect(r.hash).toBe(h.digest("hex"))
  })

const tiny = () => Duration.millis(Math.random() * 0.4)

const recvOrTimeout = (c: Connection.Connection) => Effect.timeoutOption(c.recv, tiny())

/** A parser taking at most 777 bytes per value (so values often leave bytes buffered). */
const upTo777: Connection.Parser<Option.Option<Uint8Array>> = (bytes) =>
  bytes.length === 0
    ? Connection.done(0, Option.none())
    : Connection.done(Math.min(777, bytes.length), Option.some(bytes.slice(0, Math.min(777, bytes.length))))

const parseOrTimeout = (c: Connection.Connection) => Effect.timeoutOption(c.read(upTo777), tiny())

describe("interrupted reads consume nothing (issue 9, item 3)", () => {
  it.live("Effect.timeoutOption(conn.recv, 0..0.4 ms) with RinglineClock: every byte arrives once, in order", () =>
    withRing(onRingClock(raceScenario(recvOrTimeout))), 120_000)

  it.live("the same with the default clock", () => withRing(raceScenario(recvOrTimeout)), 120_000)

  it.live("Effect.timeoutOption(conn.read(parse)) with RinglineClock", () =>
    withRing(onRingClock(raceScenario(parseOrTimeout))), 120_000)

  it.live("Effect.race(conn.recv, sleep) with RinglineClock", () =>
    withRing(onRingClock(raceScenario((c) =>
      Effect.race(Effect.map(c.recv, Option.some), Effect.as(Effect.sleep(tiny()), Option.none()))
    ))), 120_000)

  it.live("Fiber.interrupt in the same completion batch as the bytes: the interrupted read takes nothing", () =>
    withRing(Effect.gen(function*() {
      // Fiber R reads connection A. Fiber K waits on connection B and interrupts R as soon as B
      // has data. The client writes B's byte and A's chunk in one turn, so their completions
      // usually arrive in one batch: B's first, then A's. Whatever R did not return must still
      // be buffered on A, and the next reads must get it.
      const l = yield* Tcp.listen({ port: 0 })
      const port = portOf(l)
      const ca = yield* Tcp.connect({ host: "127.0.0.1", port })
      const sa = yield* l.accept
      const cb = yield* Tcp.connect({ host: "127.0.0.1", port })
      const sb = yield* l.accept
      const ROUNDS = 400
      const h = createHash("sha256")
      let sent = 0
      let got = 0
      let interruptedReads = 0
      const hr = createHash("sha256")
      for (let i = 0; i < ROUNDS; i++) {
        const r = yield* Effect.fork(sa.recv)
        const k = yield* Effect.fork(Effect.flatMap(sb.recv, () => Fiber.interrupt(r)))
        yield* Effect.yieldNow()
        const chunk = new Uint8Array(1 + (i * 7919) % 3000).fill(i & 0xff)
        h.update(chunk)
        sent += chunk.length
        yield* Effect.all([cb.write(new Uint8Array([1])), ca.write(chunk)])
        yield* Fiber.join(k)
        const exit = yield* Fiber.await(r)
        if (exit._tag === "Success" && Option.isSome(exit.value)) {
          hr.update(exit.value.value)
          got += exit.value.value.length
        } else {
          interruptedReads++
        }
        // Whatever R did not take is still there.
        while (got < sent) {
          // Bytes lost to the interrupted read would make this wait forever.
          const more = yield* sa.recv.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`round ${i}: ${sent - got} bytes lost`) }))
          if (Option.isNone(more)) break
          hr.update(more.value)
          got += more.value.length
        }
      }
      console.log(`${ROUNDS} rounds, ${interruptedReads} reads interrupted, ${got} of ${sent} bytes`)
      expect(got).toBe(sent)
      expect(hr.digest("hex")).toBe(h.digest("hex"))
    })), 120_000)

  // A waiting read leaves the line when it is interrupted (a catch frame in an uninterruptible
  // region around its interruptible wait, internal/waiters.ts): the read queued behind it gets
  // the bytes. A read in an uninterruptible region waits with no such frame: an interruption
  // cannot end it, it returns the bytes, and the fiber ends interrupted after that.
  it.live("an interrupted waiting read leaves the line; an uninterruptible one outlasts the interruption and takes its bytes", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const client = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      const server = yield* l.accept
      const settle = Effect.sleep("20 millis")

      const first = yield* Effect.fork(server.recv)
      yield* settle
      const second = yield* Effect.fork(server.recv)
      yield* settle
      yield* Fiber.interrupt(first)
      yield* client.write(new Uint8Array([1, 2, 3]))
      const got = yield* Fiber.join(second).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the read behind an interrupted one never got its bytes") }))
      expect([...Option.getOrThrow(got)]).toEqual([1, 2, 3])

      let taken: Option.Option<Uint8Array> = Option.none()
      const held = yield* Effect.fork(Effect.uninterruptible(Effect.map(server.recv, (r) => (taken = r))))
      yield* settle
      const interrupting = yield* Effect.fork(Fiber.interrupt(held))
      yield* settle
      // Still waiting: the interruption did not end the read.
      expect(Option.isNone(yield* Fiber.poll(interrupting))).toBe(true)
      yield* client.write(new Uint8Array([4, 5]))
      const exit = yield* Fiber.join(interrupting)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect([...Option.getOrThrow(taken)]).toEqual([4, 5])
      // The line is empty again: the next read takes the next bytes at once.
      yield* client.write(new Uint8Array([6]))
      expect([...Option.getOrThrow(yield* server.recv)]).toEqual([6])
    })), 30_000)

  it.live("Udp.recvFrom raced against 0..0.4 ms timeouts with RinglineClock: every datagram exactly once", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const server = yield* Udp.bind({ port: 0 })
      const client = yield* Udp.bind({ port: 0 })
      const N = 20_000
      const seen = new Uint8Array(N)
      let received = 0
      let timeouts = 0
      const reader = yield* Effect.fork(Effect.gen(function*() {
        while (received < N) {
          const r = yield* Effect.timeoutOption(server.recvFrom, tiny())
          if (Option.isNone(r)) {
            timeouts++
            continue
          }
          const seq = Buffer.from(r.value.data).readUInt32LE(0)
          seen[seq]!++
          received++
        }
      }))
      for (let i = 0; i < N; i++) {
        const b = Buffer.alloc(4 + (i % 200))
        b.writeUInt32LE(i, 0)
        yield* client.sendTo(b, server.address)
        // Stay well within the socket buffer: the test is about the receive side.
        while (i - received > 200) yield* Effect.sleep(Duration.millis(1))
      }
      yield* Fiber.join(reader).pipe(Effect.timeout(Duration.seconds(60)))
      console.log(`${N} datagrams, ${timeouts} timeouts fired`)
      expect(timeouts).toBeGreaterThan(0)
      expect(seen.every((n) => n === 1)).toBe(true)
    }))), 120_000)

  it.live("Effect.timeoutOption(listener.accept, 0..0.4 ms): every node:net client is served", () =>
    withRing(onRingClock(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const N = 300
      let served = 0
      let timeouts = 0
      const server = yield* Effect.fork(Effect.gen(function*() {
        while (served < N) {
          // Each connection in its own scope, served in its own fiber: the accept loop never
          // waits for a close, so accepts keep waiting (and timing out) between clients.
          const scope = yield* Scope.make()
          const c = yield* Effect.timeoutOption(Scope.extend(l.accept, scope), tiny())
          if (Option.isNone(c)) {
            timeouts++
            yield* Scope.close(scope, Exit.void)
            continue
          }
          served++
          // (In the test's scope: it outlives this loop, so the last reply is not interrupted.)
          yield* Effect.forkScoped(c.value.send(new Uint8Array([111, 107])).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))
        }
      }))
      const client = () =>
        new Promise<string>((resolve, reject) => {
          const s = net.connect(portOf(l), "127.0.0.1")
          let out = ""
          s.on("data", (d) => (out += d.toString()))
          s.on("end", () => resolve(out))
          s.on("error", reject)
        })
      const results: Array<Promise<string>> = []
      for (let i = 0; i < N; i++) {
        results.push(client())
        // Spaced out, so that accepts often wait and their timeouts fire.
        yield* Effect.sleep(Duration.millis(i % 3))
      }
      // A connection handed to an interrupted accept would never be served: its client hangs.
      const all = yield* Effect.promise(() => Promise.all(results)).pipe(Effect.timeout(Duration.seconds(30)))
      yield* Fiber.join(server)
      console.log(`${N} clients, ${timeouts} accept timeouts fired`)
      expect(all.every((s) => s === "ok")).toBe(true)
      expect(timeouts).toBeGreaterThan(0)
      const stats = yield* Ringline.stats
      expect(stats.acceptsAbandoned).toBe(0)
    }))), 120_000)
})

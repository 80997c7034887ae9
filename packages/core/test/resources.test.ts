import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import * as net from "node:net"
import { closeSync, openSync } from "node:fs"
import { Ringline, RinglineTesting, Tcp } from "../src/index.js"
import { Op, W } from "../src/internal/sqe.js"
import { echo, fdCount, nodeClient, portOf, random, ignoringPeerResets, withRing } from "./helpers.js"

describe("resource safety", () => {
  it.live("RinglineTesting.withFreshRing fails with ResourceLeak for a leaked fd or an op left in flight", () =>
    Effect.gen(function*() {
      // A plain fd the body never closes.
      let leaked = -1
      const fdLeak = yield* Effect.flip(RinglineTesting.withFreshRing(Effect.sync(() => {
        leaked = openSync("/dev/null", "r")
      })))
      closeSync(leaked)
      expect(fdLeak._tag).toBe("ResourceLeak")
      if (fdLeak._tag === "ResourceLeak") {
        expect(fdLeak.fdsAfter).toBe(fdLeak.fdsBefore + 1)
        expect(fdLeak.message).toContain("file descriptor leak")
      }
      // A 10 s TIMEOUT staged straight on the driver, outside any scope: still in flight at the end.
      const opLeak = yield* Effect.flip(RinglineTesting.withFreshRing(Effect.gen(function*() {
        const d = (yield* Ringline.Ringline).driver!
        const slot = d.alloc({ onCqe() {} }, 0)
        new DataView(d.args.buffer, d.args.byteOffset + slot * 128, 16).setBigInt64(0, 10n, true)
        const w = d.sqe(Op.TIMEOUT, 0, -1, slot)
        d.setAddr(w, W.addr, d.argAddress(slot))
        d.words[w + W.len] = 1
      }), { shutdownTimeout: 50 }))
      expect(opLeak._tag).toBe("ResourceLeak")
      if (opLeak._tag === "ResourceLeak") expect(opLeak.inFlight).toBe(1)
      // And a clean body passes.
      expect(yield* RinglineTesting.withFreshRing(Effect.succeed(42))).toBe(42)
    }))

  it.live("releasing the Layer with live connections closes every fd and op", () =>
    ignoringPeerResets(Effect.gen(function*() {
      const baseline = fdCount()
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(Ringline.layer(), scope)
      const run = <A, E>(eff: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>) =>
        eff.pipe(Effect.provide(ctx), Scope.extend(scope))
      const l = yield* run(Tcp.listen({ port: 0 }))
      yield* run(Effect.forkIn(l.serve(echo), scope))
      // Live inbound connections, mid-conversation, plus live outbound ones.
      const clients: Array<net.Socket> = []
      for (let i = 0; i < 20; i++) clients.push(yield* Effect.promise(() => nodeClient(portOf(l))))
      const outbound = []
      for (let i = 0; i < 10; i++) outbound.push(yield* run(Tcp.connect({ host: "127.0.0.1", port: portOf(l) })))
      for (const c of outbound) yield* run(c.write(random(1000)))
      clients.forEach((c) => c.write("in flight"))
      yield* Effect.sleep(50)
      expect((yield* run(Ringline.stats)).connections).toBe(40)
      expect(fdCount()).toBeGreaterThan(baseline)
      yield* Scope.close(scope, Exit.void)
      // The server side saw every connection close: each client gets EOF.
      yield* Effect.promise(() => Promise.all(clients.map((c) => new Promise((r) => (c.readableEnded ? r(0) : c.on("end", r).resume())))))
      clients.forEach((c) => c.destroy())
      yield* Effect.sleep(50)
      expect(fdCount()).toBe(baseline)
    })))

  it.live("1000 connect/close cycles leak nothing", () =>
    ignoringPeerResets(withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const fds = fdCount()
      const ops = (yield* Ringline.stats).inFlight
      for (let i = 0; i < 1000; i++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const c = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
          if (i % 10 === 0) yield* c.send(Buffer.from("ping"))
        }))
      }
      // Server-side closes may trail the client's by a moment.
      for (let i = 0; i < 100 && (yield* Ringline.stats).connections > 0; i++) yield* Effect.sleep(10)
      const stats = yield* Ringline.stats
      expect(stats.connections).toBe(0)
      expect(stats.inFlight).toBe(ops)
      expect(fdCount()).toBe(fds)
      expect(l.accepted).toBe(1000)
    }))))

  it.live("the op table is empty after a listener, connections and their scopes are closed", () =>
    ignoringPeerResets(withRing(Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const l = yield* Tcp.listen({ port: 0 })
        yield* Effect.forkScoped(l.serve(echo))
        const c = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
        yield* c.send(Buffer.from("x"))
        expect((yield* Ringline.stats).inFlight).toBeGreaterThan(0)
      }))
      expect((yield* Ringline.stats).inFlight).toBe(0)
    }))))

  it.live("a closed listener refuses new connects at once", () =>
    withRing(Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(Tcp.listen({ port: 0 }), portOf))
      const err = yield* Effect.flip(Tcp.connect({ host: "127.0.0.1", port }))
      expect(err.reason).toBe("Refused")
    })))

  it.live("a full fixed-file table resets nobody: later clients wait in the backlog and are served as slots free (issue 9, item 9)", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const MAX = 20
      const EXTRA = 10
      // Every client echoes one message and reports how its connection ended.
      const outcomes: Array<Promise<string>> = []
      const sockets: Array<net.Socket> = []
      const client = (i: number) => {
        const s = net.connect(portOf(l), "127.0.0.1")
        sockets.push(s)
        outcomes.push(new Promise<string>((resolve) => {
          let got = ""
          s.on("connect", () => s.write(`hello ${i}`))
          s.on("data", (d) => (got += d))
          s.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`))
          s.on("close", () => resolve(got))
        }))
      }
      for (let i = 0; i < MAX; i++) client(i)
      yield* Effect.sleep(300)
      expect(l.accepted).toBe(MAX)
      // The table is full: these connect (the kernel's backlog) but must not be reset.
      for (let i = MAX; i < MAX + EXTRA; i++) client(i)
      yield* Effect.sleep(300)
      expect(l.accepted).toBe(MAX)
      // Each held client closes its side; each freed slot takes one waiting client.
      for (let i = 0; i < MAX + EXTRA; i++) sockets[i]!.end()
      const results = yield* Effect.promise(() => Promise.all(outcomes))
      expect(results).toEqual(Array.from({ length: MAX + EXTRA }, (_, i) => `hello ${i}`))
      expect(l.accepted).toBe(MAX + EXTRA)
      // The time spent full is counted.
      const stats = yield* Ringline.stats
      expect(stats.acceptFull).toBeGreaterThanOrEqual(1)
      expect(stats.acceptFullMs).toBeGreaterThan(100)
    }), { maxConnections: 20 }))

  it.live("the fixed-file table bounds connections; a freed slot lets accept continue", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const clients: Array<net.Socket> = []
      for (let i = 0; i < 6; i++) clients.push(net.connect(portOf(l), "127.0.0.1").on("error", () => {}))
      yield* Effect.sleep(200)
      expect(l.accepted).toBe(4)
      clients[0]!.destroy()
      yield* Effect.sleep(200)
      expect(l.accepted).toBe(5)
      clients.forEach((c) => c.destroy())
    }), { maxConnections: 4 }))
})

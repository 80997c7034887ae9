/**
 * Fault injection on the real ring (internal/ring/faults.ts): staged SQEs replaced by NOPs with
 * an injected result, or sends clamped, so the kernel itself produces the failing CQE. Each test
 * also checks that the fault really fired, and runs on a fresh ring that must end with no op in
 * flight and no fd left open.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { createHash } from "node:crypto"
import type * as net from "node:net"
import { Connection, Ringline, Tcp } from "../src/index.js"
import { Errno } from "../src/internal/errno.js"
import { IOPRIO_RECV_MULTISHOT, Op } from "../src/internal/ring/abi.js"
import { type FaultRule, install, probeNopInject, uninstall } from "../src/internal/ring/faults.js"
import { Acceptor } from "../src/internal/acceptor.js"
import { load } from "../src/internal/native.js"
import * as Sockaddr from "../src/internal/sockaddr.js"
import * as Address from "../src/Address.js"
import { echo, exchange, ignoringPeerResets, nodeClient, nodeServer, portOf, random, withRing } from "./helpers.js"

const supported = await Effect.runPromise(withRing(Effect.flatMap(Ringline.Ringline, (r) => probeNopInject(r.driver!))))
if (!supported) console.log("SKIP fault injection tests: this kernel does not inject NOP results (IORING_NOP_INJECT_RESULT needs Linux 6.10+)")
const injecting = it.live.skipIf(!supported)

/** Installs `rules` on the ring in context for the rest of the scope; returns the injector. */
const faults = (rules: ReadonlyArray<FaultRule>) =>
  Effect.gen(function*() {
    const d = (yield* Ringline.Ringline).driver!
    return yield* Effect.acquireRelease(Effect.sync(() => install(d, rules)), (f) => Effect.sync(() => uninstall(d, f)))
  })

/** The ring's provided buffers all back in the kernel's hands, none lent to a send. */
const buffersHome = Effect.gen(function*() {
  const r = yield* Ringline.Ringline
  const d = r.driver!
  // Recycled buffers reach the kernel at the next submit: let a loop turn pass.
  yield* Effect.sleep(20)
  return { available: d.bufferStatus().available, ringSize: d.config.recvBuffer.ringSize, lent: d.buffersLent }
})

/**
 * A node:net peer for the scope: its sockets are destroyed and the server closed (and waited
 * for) before the ring's fd count is taken.
 */
const peer = (onConn: (s: net.Socket) => void) => {
  const sockets = new Set<net.Socket>()
  return Effect.acquireRelease(
    Effect.promise(() =>
      nodeServer((s) => {
        sockets.add(s)
        s.on("close", () => sockets.delete(s))
        onConn(s)
      })
    ),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.close(() => resolve())
          for (const s of sockets) s.destroy()
        })
      )
  ).pipe(Effect.map(({ port }) => port))
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

/** Reads until EOF, hashing, from a ringline connection. */
const drain = (c: Connection.Connection) =>
  Effect.gen(function*() {
    const h = createHash("sha256")
    let n = 0
    while (true) {
      const chunk = yield* c.recv
      if (Option.isNone(chunk)) return { bytes: n, hash: h.digest("hex") }
      n += chunk.value.length
      h.update(chunk.value)
    }
  })

describe("fault injection at staging (real ring)", () => {
  injecting("an injected ECONNRESET on recv fails the read with a typed SocketError, leaking no op or buffer", () =>
    withRing(Effect.gen(function*() {
      const f = yield* faults([{ ops: [Op.RECV], inject: { result: -Errno.ECONNRESET } }])
      const l = yield* Tcp.listen({ port: 0 })
      const client = yield* Effect.promise(() => nodeClient(portOf(l)))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      client.on("error", () => {})
      client.write("never read")
      const e = yield* Effect.scoped(Effect.flatMap(l.accept, (c) => Effect.flip(c.recv)))
      expect(e._tag).toBe("SocketError")
      if (e._tag === "SocketError") {
        expect(e.code).toBe("ECONNRESET")
        expect(e.operation).toBe("recv")
      }
      expect(f.log.map((i) => i.sqe.op)).toEqual([Op.RECV])
      const home = yield* buffersHome
      expect(home.lent).toBe(0)
      expect(home.available).toBe(home.ringSize)
    })))

  injecting("short sends (every send clamped to 777 bytes) still deliver every byte in order", () =>
    withRing(Effect.gen(function*() {
      // The peer hashes everything it gets until our half-close.
      let peerDone: (r: { bytes: number; hash: string }) => void = () => {}
      const peerResult = new Promise<{ bytes: number; hash: string }>((resolve) => (peerDone = resolve))
      const port = yield* peer((s) => {
        const h = createHash("sha256")
        let n = 0
        s.on("data", (d) => {
          n += d.length
          h.update(d)
        })
        s.on("end", () => {
          peerDone({ bytes: n, hash: h.digest("hex") })
          s.end()
        })
      })
      const f = yield* faults([{
        ops: [Op.SEND, Op.SENDMSG, Op.SEND_ZC, Op.SENDMSG_ZC],
        times: Infinity,
        inject: { shortSend: 777 }
      }])
      const c = yield* Tcp.connect({ host: "127.0.0.1", port })
      const parts: Array<Uint8Array> = []
      // One big SEND, a burst of small writes (gathered into SENDMSGs), a linked chain.
      parts.push(random(100_000))
      yield* c.send(parts[0]!)
      for (let i = 0; i < 200; i++) {
        const p = random(100 + (i * 37) % 900)
        parts.push(p)
        yield* c.write(p)
      }
      const chain = [random(3000), random(50), random(5000)]
      parts.push(...chain)
      yield* c.chain(chain)
      parts.push(random(20_000))
      yield* c.send(parts[parts.length - 1]!)
      yield* c.shutdownWrite
      const received = yield* Effect.promise(() => peerResult)
      const all = Buffer.concat(parts)
      expect(received.bytes).toBe(all.length)
      expect(received.hash).toBe(sha256(all))
      // Far more sends than one per part: the kernel really stopped at 777 bytes each time.
      expect(f.log.length).toBeGreaterThan(all.length / 777 / 2)
      // Copied sends gathered into SENDMSG, and zero-copy SEND_ZC (100 kB and 20 kB parts are
      // above sendZeroCopyThreshold): each short one continued after its notification.
      expect(f.log.some((i) => i.sqe.op === Op.SENDMSG)).toBe(true)
      expect(f.log.some((i) => i.sqe.op === Op.SEND_ZC)).toBe(true)
      // The chain's linked sends are left alone (only its last link may be clamped).
      expect(f.notApplicable).toBeGreaterThan(0)
      expect((yield* Ringline.stats).bytesOut).toBe(all.length)
    })))

  for (const errno of ["EMFILE", "ENFILE", "ECONNABORTED"] as const) {
    injecting(`an injected ${errno} on accept leaves the listener serving`, () =>
      ignoringPeerResets(withRing(Effect.gen(function*() {
        const f = yield* faults([{ ops: [Op.ACCEPT], times: 2, inject: { result: -errnoOf(errno) } }])
        const l = yield* Tcp.listen({ port: 0 })
        yield* Effect.forkScoped(l.serve(echo))
        const payload = random(10_000)
        const back = yield* Effect.promise(() => exchange(portOf(l), payload)).pipe(Effect.timeout("20 seconds"))
        expect(sha256(back)).toBe(sha256(payload))
        expect(f.log.length).toBe(2)
        expect(l.accepted).toBe(1)
      }))))
  }

  injecting("a lasting EMFILE on the workers' acceptor backs off instead of re-arming every loop turn, then accepts again", () =>
    ignoringPeerResets(withRing(Effect.gen(function*() {
      const d = (yield* Ringline.Ringline).driver!
      const f = yield* faults([{ ops: [Op.ACCEPT], times: 1_000_000, inject: { result: -Errno.EMFILE } }])
      const fd = load().listen(Sockaddr.encodeToBytes(Address.tcp("127.0.0.1", 0)), 16, false, 1, true)
      const port = (Sockaddr.decode(load().sockName(fd, false)) as Address.TcpAddress).port
      // No worker to hand connections to: each accepted one is counted lost and closed.
      const acceptor = new Acceptor(d, fd, { ringFds: new Int32Array(0), load: new Int32Array(0), ready: [] }, "roundRobin")
      yield* Effect.addFinalizer(() => Effect.async<void>((resume) => acceptor.stop(() => resume(Effect.void))))
      yield* Effect.sleep(400)
      // Backing off 10, 20, 40, 80, 160 ms: a handful of attempts, not one per loop turn.
      expect(f.log.length).toBeGreaterThanOrEqual(3)
      expect(f.log.length).toBeLessThanOrEqual(8)
      uninstall(d, f)
      const client = yield* Effect.promise(() => nodeClient(port))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const t0 = Date.now()
      while (acceptor.accepted === 0 && Date.now() - t0 < 5000) yield* Effect.sleep(10)
      expect(acceptor.accepted).toBe(1)
      expect(acceptor.lost).toBe(1)
    }))))

  injecting("an injected ENOBUFS ends the multishot recv (one CQE, no F_MORE): it is re-armed and no byte is lost", () =>
    withRing(Effect.gen(function*() {
      const f = yield* faults([{
        ops: [Op.RECV],
        where: (sqe) => (sqe.ioprio & IOPRIO_RECV_MULTISHOT) !== 0,
        times: 3,
        inject: { result: -Errno.ENOBUFS }
      }])
      const enobufsBefore = (yield* Ringline.stats).enobufs
      const l = yield* Tcp.listen({ port: 0 })
      const payload = random(1 << 20)
      const client = yield* Effect.promise(() => nodeClient(portOf(l)))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      client.end(payload)
      const got = yield* Effect.scoped(Effect.flatMap(l.accept, drain))
      expect(got.bytes).toBe(payload.length)
      expect(got.hash).toBe(sha256(payload))
      expect(f.log.length).toBe(3)
      expect((yield* Ringline.stats).enobufs - enobufsBefore).toBe(3)
    })))

  injecting("an injected ECANCELED on connect fails it with a typed ConnectError, with or without a linked timeout", () =>
    withRing(Effect.gen(function*() {
      const port = yield* peer((s) => s.end())
      const f = yield* faults([{ ops: [Op.CONNECT], times: 2, inject: { result: -Errno.ECANCELED } }])
      for (const options of [undefined, { timeout: "5 seconds" as const }]) {
        const e = yield* Effect.flip(Effect.scoped(Tcp.connect({ host: "127.0.0.1", port }, options)))
        expect(e._tag).toBe("ConnectError")
        expect(e.errno).toBe(Errno.ECANCELED)
        expect(e.code).toBe("ECANCELED")
        expect(e.reason).toBe("Other")
      }
      expect(f.log.length).toBe(2)
      expect((yield* Ringline.stats).connections).toBe(0)
      // The plan is spent: the next connect is a real one.
      yield* Effect.scoped(Tcp.connect({ host: "127.0.0.1", port }))
    })))

  injecting("rules match by opcode, skip and predicate; SQEs they do not match go through untouched", () =>
    withRing(Effect.gen(function*() {
      const port = yield* peer((s) => s.pipe(s))
      // The third CONNECT fails; sends are never touched (the predicate matches no fd).
      const f = yield* faults([
        { ops: [Op.CONNECT], skip: 2, inject: { result: -Errno.ECONNREFUSED } },
        { ops: [Op.SEND], where: (sqe) => sqe.fd === -12345, inject: { result: -Errno.EPIPE } }
      ])
      for (let i = 0; i < 2; i++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const c = yield* Tcp.connect({ host: "127.0.0.1", port })
          yield* c.send(Buffer.from("ping"))
          yield* c.read((b) => (b.length >= 4 ? Connection.done(4, undefined) : Connection.needMore(4)))
        }))
      }
      const e = yield* Effect.flip(Effect.scoped(Tcp.connect({ host: "127.0.0.1", port })))
      expect(e.reason).toBe("Refused")
      expect(f.log.map((i) => [i.rule, i.sqe.op])).toEqual([[0, Op.CONNECT]])
    })))
})

const errnoOf = (name: "EMFILE" | "ENFILE" | "ECONNABORTED"): number =>
  name === "ECONNABORTED" ? 103 : Errno[name]

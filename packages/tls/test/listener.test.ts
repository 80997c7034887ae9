/** Tls.listen's accept (concurrent handshakes), STARTTLS upgrade, and the platform SocketServer. */
import { describe, expect, it } from "@effect/vitest"
import * as Socket from "@effect/platform/Socket"
import { Connection, RinglineTesting, Tcp } from "@ringline/core"
import { Duration, Effect, Fiber, Option, Supervisor } from "effect"
import * as net from "node:net"
import * as tls from "node:tls"
import { Tls, TlsSocketServer } from "../src/index.js"
import { pki } from "./certs.js"

const portOf = (l: { readonly address: unknown }) => (l.address as { port: number }).port
const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

const nodeEcho = (port: number, payload: string) =>
  new Promise<string>((resolve, reject) => {
    const s = tls.connect({ port, host: "127.0.0.1", ca: pki().ca, servername: "localhost" }, () => s.end(payload))
    let out = ""
    s.on("data", (d) => (out += d))
    s.on("end", () => resolve(out))
    s.on("error", reject)
  })

describe("Tls.listen accept", () => {
  it.live("a silent client does not hold up accept; the handshaken connection is served", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, handshakeTimeout: "5 seconds" })
      const port = portOf(listener)
      const silent = net.connect(port, "127.0.0.1")
      silent.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => silent.destroy()))
      yield* Effect.sleep(Duration.millis(100))
      const client = nodeEcho(port, "accepted")
      const started = Date.now()
      const conn = yield* listener.accept
      expect(Date.now() - started).toBeLessThan(4000)
      const chunk = yield* conn.recv
      expect(dec(Option.getOrThrow(chunk))).toBe("accepted")
      yield* conn.send(Option.getOrThrow(chunk))
      yield* conn.close
      expect(yield* Effect.promise(() => client)).toBe("accepted")
      expect(listener.accepted).toBe(1)
    })))
})

describe("STARTTLS", () => {
  it.live("a plaintext exchange, then Tls.upgrade on both sides of a ringline connection", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const plain = yield* Tcp.listen({ port: 0 })
      const server = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const conn = yield* plain.accept
        const line = yield* conn.read((b) => {
          const i = b.indexOf(10)
          return i < 0 ? Connection.needMore() : Connection.done(i + 1, dec(b.slice(0, i)))
        })
        expect(line).toBe("STARTTLS")
        yield* conn.send(enc("220 go ahead\n"))
        yield* Tls.upgrade(conn, { side: "server", cert: p.cert, key: p.key })
        const chunk = Option.getOrThrow(yield* conn.recv)
        yield* conn.send(enc(`secret: ${dec(chunk)}`))
        yield* conn.close
      })))
      const c = yield* Tcp.connect(`127.0.0.1:${portOf(plain)}`)
      // The ClientHello goes out right behind the command: the server has it buffered already
      // when it upgrades.
      yield* c.send(enc("STARTTLS\n"))
      let reply = ""
      while (!reply.includes("\n")) reply += dec(Option.getOrThrow(yield* c.recv))
      expect(reply).toBe("220 go ahead\n")
      yield* Tls.upgrade(c, { side: "client", host: "localhost", ca: p.ca })
      expect(Tls.isTls(c)).toBe(true)
      yield* c.send(enc("hush"))
      let got = ""
      while (true) {
        const chunk = yield* c.recv
        if (Option.isNone(chunk)) break
        got += dec(chunk.value)
      }
      expect(got).toBe("secret: hush")
      yield* Effect.fromFiber(server)
    })))

  it.live("an upgrade with bad options fails with TlsConfigError and closes the connection, as any failed upgrade does", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const bad: ReadonlyArray<unknown> = [
        { side: "client", host: "", ca: p.ca },
        { side: "client", host: "localhost", alpn: [""] },
        { side: "server", cert: p.cert },
        { side: "server", cert: p.cert, key: p.key, handshakeTimeout: -1 }
      ]
      // The peer is node:net: it sees each close as its end of stream.
      let closed = 0
      let allClosed!: () => void
      const ended = new Promise<void>((r) => (allClosed = r))
      const sockets: Array<net.Socket> = []
      const peer = net.createServer((s) => {
        sockets.push(s)
        s.on("error", () => {})
        s.on("close", () => ++closed === bad.length && allClosed())
      })
      yield* Effect.promise(() => new Promise<void>((r) => peer.listen(0, "127.0.0.1", () => r())))
      yield* Effect.addFinalizer(() =>
        Effect.promise(() => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), peer.close(() => r()))))
      )
      const port = (peer.address() as net.AddressInfo).port
      for (const options of bad) {
        const c = yield* Tcp.connect(`127.0.0.1:${port}`)
        const e = yield* Effect.flip(Tls.upgrade(c, options as Tls.UpgradeOptions))
        expect(e._tag, JSON.stringify(options)).toBe("TlsConfigError")
        // Closed by the upgrade itself: the connection is unusable and the peer saw its end.
        expect((yield* Effect.exit(c.send(enc("plaintext after a failed upgrade"))))._tag).toBe("Failure")
      }
      yield* Effect.promise(() => ended)
      expect(closed).toBe(bad.length)
    })))
})

describe("TlsSocketServer", () => {
  it.live("@effect/platform SocketServer.run serves TLS connections as plaintext Sockets", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const server = yield* TlsSocketServer.make({ port: 0, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.run((chunk) => write(chunk))
          yield* write(new Socket.CloseEvent())
        })
      ))
      const port = (server.address as { port: number }).port
      expect(yield* Effect.promise(() => nodeEcho(port, "platform over tls"))).toBe("platform over tls")
    })))
})

describe("session tickets", () => {
  it.live("shared ticket keys: a session from one listener resumes on another; rotation keeps the previous key", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const key = Tls.generateTicketKey()
      const serve = (keys: ReadonlyArray<Uint8Array>) =>
        Effect.gen(function*() {
          const l = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, ticketKeys: keys })
          yield* Effect.forkScoped(l.serve((c) => Effect.flatMap(c.recv, (chunk) => c.send(Option.getOrThrow(chunk)))))
          return `127.0.0.1:${portOf(l)}`
        })
      const a = yield* serve([key])
      const b = yield* serve([Tls.generateTicketKey(), key]) // rotated: newest first, the old key kept
      const c = yield* serve([Tls.generateTicketKey()]) // an unrelated key
      // One client-side session cache entry ("svc") for the three endpoints.
      const resumed = (target: string) =>
        Effect.scoped(Effect.gen(function*() {
          const conn = yield* Tls.connect(target, { ca: p.ca, servername: "localhost", resume: "svc" })
          yield* conn.send(enc("t"))
          yield* conn.recv // the tickets arrive with the server's first records
          return Option.getOrThrow(Tls.info(conn)).resumed
        }))
      expect(yield* resumed(a)).toBe(false)
      expect(yield* resumed(b)).toBe(true)
      // b issued a fresh ticket under its newest key, unknown to c: a full handshake, which works.
      expect(yield* resumed(c)).toBe(false)
      expect(yield* resumed(c)).toBe(true)
    })))
})

describe("Tls.serverContext", () => {
  it.live("one context shared by upgrades and listeners: a session resumes across them; per-upgrade options do not share", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      // No ticketKeys: each context makes its own random key, so a resumption proves that two
      // connections used the same context.
      const context = yield* Tls.serverContext({ cert: p.cert, key: p.key })
      const plain = yield* Tcp.listen({ port: 0 })
      const upgradeEcho = (options: Tls.UpgradeOptions) =>
        Effect.forkScoped(plain.serve((conn) =>
          Effect.zipRight(
            Tls.upgrade(conn, options),
            Effect.flatMap(conn.recv, (chunk) => conn.send(Option.getOrThrow(chunk)))
          )
        ))
      let resumeKey = 0
      const resumedTwice = (target: string) =>
        Effect.gen(function*() {
          const key = `ctx-${++resumeKey}`
          const once = Effect.scoped(Effect.gen(function*() {
            const conn = yield* Tls.connect(target, { ca: p.ca, servername: "localhost", resume: key })
            yield* conn.send(enc("t"))
            expect(dec(Option.getOrThrow(yield* conn.recv))).toBe("t") // the tickets come with it
            return Option.getOrThrow(Tls.info(conn)).resumed
          }))
          return [yield* once, yield* once]
        })
      const target = `127.0.0.1:${portOf(plain)}`
      const shared = yield* upgradeEcho({ side: "server", context })
      expect(yield* resumedTwice(target)).toEqual([false, true])
      yield* Fiber.interrupt(shared)
      // The control: the same certificate as options builds a context (and a key) per upgrade.
      const perConnection = yield* upgradeEcho({ side: "server", cert: p.cert, key: p.key })
      expect(yield* resumedTwice(target)).toEqual([false, false])
      yield* Fiber.interrupt(perConnection)
      // Two listeners on one context: a session from one resumes on the other.
      const listenOn = Effect.gen(function*() {
        const l = yield* Tls.listen({ port: 0, context })
        yield* Effect.forkScoped(l.serve((c) => Effect.flatMap(c.recv, (chunk) => c.send(Option.getOrThrow(chunk)))))
        return `127.0.0.1:${portOf(l)}`
      })
      const a = yield* listenOn
      const b = yield* listenOn
      const once = (t: string) =>
        Effect.scoped(Effect.gen(function*() {
          const conn = yield* Tls.connect(t, { ca: p.ca, servername: "localhost", resume: "two-listeners" })
          yield* conn.send(enc("t"))
          yield* conn.recv
          return Option.getOrThrow(Tls.info(conn)).resumed
        }))
      expect(yield* once(a)).toBe(false)
      expect(yield* once(b)).toBe(true)
    })))

  it.live("the ticket-key rotation lives in the context's scope: closing it or interrupting its fiber ends the rotation", () =>
    Effect.gen(function*() {
      const p = pki()
      const supervisor = yield* Supervisor.track
      const alive = Effect.map(supervisor.value, (fibers) => fibers.length)
      const build = Tls.serverContext({ cert: p.cert, key: p.key, ticketKeyRotation: "5 millis" })
      // Closed normally, after a few rotations.
      yield* Effect.scoped(Effect.zipRight(build, Effect.sleep("20 millis"))).pipe(Effect.supervised(supervisor))
      expect(yield* alive).toBe(0)
      // Interrupted while the scope is open: its rotation fiber (the one fiber forked under the
      // supervisor; the holder itself is forked outside it) is running until then.
      const holder = yield* Effect.fork(Effect.scoped(Effect.zipRight(build, Effect.never)).pipe(Effect.supervised(supervisor)))
      yield* Effect.sleep("20 millis")
      expect(yield* alive).toBe(1)
      yield* Fiber.interrupt(holder)
      expect(yield* alive).toBe(0)
      // Fixed keys rotate nothing: no fiber at all.
      const fixed = yield* Effect.fork(Effect.scoped(Effect.zipRight(
        Tls.serverContext({ cert: p.cert, key: p.key, ticketKeys: [new Uint8Array(80)] }),
        Effect.never
      )).pipe(Effect.supervised(supervisor)))
      yield* Effect.sleep("20 millis")
      expect(yield* alive).toBe(0)
      yield* Fiber.interrupt(fixed)
    }))

  it.live("bad options fail when the context is built; a forged context, or options next to a context, are rejected naming the field", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const e = yield* Effect.flip(Tls.serverContext({ cert: p.cert, key: "not a key" }))
      expect(e).toMatchObject({ _tag: "TlsConfigError", field: "cert" })
      const forged = { context: {} as Tls.ServerContext }
      expect(yield* Effect.flip(Tls.listen({ port: 0, ...forged }))).toMatchObject({ _tag: "TlsConfigError", field: "context" })
      // Options next to a context would be silently ignored: refused, naming the option.
      const context = yield* Tls.serverContext({ cert: p.cert, key: p.key })
      const both = { context, alpn: ["h2"] } as Tls.ListenOptions
      expect(yield* Effect.flip(Tls.listen({ port: 0, ...both }))).toMatchObject({ _tag: "TlsConfigError", field: "alpn" })
    })))

  it.live("options or a listener of the wrong type are a TlsConfigError naming them, not a throw at the call", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const inner = yield* Tcp.listen({ port: 0 })
      for (const bad of [undefined, null, 42, "cert"]) {
        // Each used to throw from the call itself (secure, serverContext, upgrade) or die with
        // "Cannot use 'in' operator" (listen) or "Cannot read properties of null" (connect).
        const calls = [
          () => Tls.secure(inner, bad as any),
          () => Tls.serverContext(bad as any),
          () => Tls.listen(bad as any),
          // (connect's options may be left out: undefined is its default.)
          ...(bad === undefined ? [] : [() => Tls.connect("127.0.0.1:1", bad as any)]),
          () => Effect.flatMap(Tcp.connect(`127.0.0.1:${portOf(inner)}`), (c) => Tls.upgrade(c, bad as any))
        ]
        for (const call of calls) {
          const e = yield* Effect.flip(Effect.scoped(call() as Effect.Effect<unknown, unknown, any>))
          expect([(e as Tls.TlsConfigError)._tag, (e as Tls.TlsConfigError).field], `${call} with ${String(bad)}`).toEqual(["TlsConfigError", "options"])
        }
      }
      for (const bad of [undefined, null, 42, {}]) {
        const e = yield* Effect.flip(Effect.scoped(Tls.secure(bad as any, { cert: p.cert, key: p.key })))
        expect([e._tag, (e as Tls.TlsConfigError).field], String(bad)).toEqual(["TlsConfigError", "listener"])
      }
    })))
})

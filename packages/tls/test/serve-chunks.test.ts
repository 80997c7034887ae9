/**
 * Listener.serveChunks on a TLS listener: each connection's handshake runs in a fiber, then its
 * decrypted chunks reach the handler straight from the completions (no fiber per connection),
 * against real peers (node:tls, openssl s_client, a raw socket sending garbage).
 */
import { describe, expect, it } from "@effect/vitest"
import { type Connection, Listener, Ringline, RinglineTesting, Unix } from "@ringline/core"
import { Cause, Duration, Effect, Exit, Fiber, Option, Scope, Supervisor } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tls from "node:tls"
import { Tls } from "../src/index.js"
import { pki } from "./certs.js"
import { openssl } from "./peers.js"

const MiB = 1024 * 1024
const portOf = (l: { readonly address: unknown }) => (l.address as { port: number }).port
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const nodeClient = (port: number, options: tls.ConnectionOptions = {}) =>
  tls.connect({ port, host: "127.0.0.1", ca: pki().ca, servername: "localhost", ...options })

/** Sends `data`, then close_notify + FIN; resolves with everything echoed before the server's end. */
const echoThrough = (port: number, data: Uint8Array) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Array<Buffer> = []
    const s = nodeClient(port).on("secureConnect", () => s.end(data))
    s.on("data", (d: Buffer) => parts.push(d))
    s.on("end", () => resolve(Buffer.concat(parts)))
    s.on("error", reject)
  })

interface Served {
  readonly listener: Listener.Listener
  readonly scope: Scope.CloseableScope
  readonly fiber: Fiber.RuntimeFiber<void>
  /** Chunks handed to the handler (the empty end-of-stream chunk included). */
  readonly chunks: Array<number>
  /** Causes given to onFailure. */
  readonly failures: Array<Cause.Cause<unknown>>
  /** Whether the handler ever ran inside a fiber. */
  readonly inFiber: { value: boolean }
}

/** A TLS listener in its own scope, serving `handler` per chunk (it also records every call). */
const serving = (
  handler: (chunk: Uint8Array, c: Connection.Connection) => void | Effect.Effect<unknown>,
  options: Omit<Tls.ServerOptions, "cert" | "key"> = {}
) =>
  Effect.gen(function*() {
    const p = pki()
    const scope = yield* Scope.make()
    const listener = yield* Scope.extend(Tls.listen({ port: 0, cert: p.cert, key: p.key, ...options }), scope)
    const chunks: Array<number> = []
    const failures: Array<Cause.Cause<unknown>> = []
    const inFiber = { value: false }
    const fiber = yield* Effect.forkIn(
      Listener.serveChunks(listener, (chunk, c) => {
        chunks.push(chunk.length)
        if (Option.isSome(Fiber.getCurrentFiber())) inFiber.value = true
        return handler(chunk, c)
      }, { onFailure: (cause) => Effect.sync(() => failures.push(cause)) }),
      scope
    )
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return { listener, scope, fiber, chunks, failures, inFiber } satisfies Served
  })

const echo = (chunk: Uint8Array, c: Connection.Connection) => {
  if (chunk.length > 0) c.unsafeWrite(chunk)
}

describe("Listener.serveChunks over Tls.listen", () => {
  it.live("node:tls clients: 4 MiB each echoed hash-checked, from the completions (no fiber), close_notify ends the stream", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving(echo)
      const port = portOf(s.listener)
      const data = [randomBytes(4 * MiB), randomBytes(4 * MiB), randomBytes(100)]
      const echoed = yield* Effect.promise(() => Promise.all(data.map((d) => echoThrough(port, d))))
      for (let i = 0; i < data.length; i++) expect(sha(echoed[i]!)).toBe(sha(data[i]!))
      expect(s.inFiber.value).toBe(false)
      // Each stream ended with its close_notify: one empty chunk per connection, no failure.
      expect(s.chunks.filter((n) => n === 0)).toHaveLength(3)
      expect(s.failures).toHaveLength(0)
      expect(s.listener.accepted).toBe(3)
    })), 60_000)

  it.live("openssl s_client (TLS 1.2 and 1.3): the line comes back, and the server's close_notify ends the session", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving((chunk, c) => {
        if (chunk.length === 0) return
        c.unsafeWrite(chunk)
        // One line per connection: the server closes (close_notify, then FIN after the echo).
        if (chunk.includes(10)) return c.close
      })
      for (const version of ["-tls1_2", "-tls1_3"]) {
        const client = openssl(["s_client", "-connect", `127.0.0.1:${portOf(s.listener)}`, version, "-CAfile", pki().caFile, "-servername", "localhost", "-quiet"], undefined)
        yield* Effect.addFinalizer(() => Effect.promise(() => client.kill()))
        client.child.stdin.write(`hello over ${version}\n`)
        yield* Effect.promise(() => client.waitFor(new RegExp(`hello over ${version}`)))
        // s_client exits when the server's close_notify and FIN arrive.
        expect(yield* Effect.promise(() => client.exited)).toBe(0)
      }
      expect(s.failures).toHaveLength(0)
    })), 60_000)

  it.live("a FIN without close_notify fails that connection with a typed truncation error; others are served", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving(echo)
      const port = portOf(s.listener)
      // A TLS client over a socket we own: after the echo, the socket's FIN goes out with no alert.
      const raw = net.connect(port, "127.0.0.1")
      const got = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          const t = tls.connect({ socket: raw, ca: pki().ca, servername: "localhost" }, () => t.write("cut short"))
          t.on("data", (d: Buffer) => resolve(d.toString()))
          t.on("error", reject)
        })
      )
      expect(got).toBe("cut short")
      raw.end()
      yield* Effect.promise(() => new Promise((r) => raw.on("close", r)))
      // The server closes first (the failure is reported, then the close): poll, load may be high.
      for (let i = 0; i < 100 && s.failures.length === 0; i++) yield* Effect.sleep(Duration.millis(50))
      expect(s.failures).toHaveLength(1)
      expect(Cause.squash(s.failures[0]!)).toMatchObject({ _tag: "TlsError", reason: "Truncated" })
      expect((yield* Effect.promise(() => echoThrough(port, Buffer.from("still here")))).toString()).toBe("still here")
      expect(s.failures).toHaveLength(1)
    })), 60_000)

  it.live("garbage or plaintext sent to the port closes that connection unserved; the handler never sees it", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving(echo)
      const port = portOf(s.listener)
      for (const junk of [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), randomBytes(4096)]) {
        const closed = yield* Effect.promise(() =>
          new Promise<boolean>((resolve) => {
            const c = net.connect(port, "127.0.0.1", () => c.write(junk))
            c.on("error", () => {})
            c.resume()
            c.on("close", () => resolve(true))
          })
        )
        expect(closed).toBe(true)
      }
      expect(s.chunks).toHaveLength(0)
      expect(s.failures).toHaveLength(0)
      expect(s.listener.accepted).toBe(0)
      expect((yield* Effect.promise(() => echoThrough(port, Buffer.from("after the junk")))).toString()).toBe("after the junk")
      expect(s.listener.accepted).toBe(1)
    })), 60_000)

  it.live("a peer that does not read stops the receive: the send queue stays bounded, and everything arrives once it reads", () =>
    RinglineTesting.withFreshRing(
      Effect.gen(function*() {
        const reply = new Uint8Array(512 * 1024).fill(9)
        let maxQueued = 0
        let calls = 0
        const s = yield* serving((chunk, c) => {
          if (chunk.length === 0) return
          // One 512 KiB answer per chunk (requests that arrived together are one chunk): 64 of
          // them are far more than the socket buffers hold.
          calls++
          c.unsafeWrite(reply)
          maxQueued = Math.max(maxQueued, c.queuedBytes)
        })
        const client = nodeClient(portOf(s.listener))
        yield* Effect.promise(() => new Promise((r) => client.once("secureConnect", r)))
        client.pause()
        const requests = 64
        for (let i = 0; i < requests; i++) {
          client.write("x")
          yield* Effect.sleep(Duration.millis(10))
        }
        yield* Effect.sleep(Duration.millis(500))
        const callsAtStall = calls
        expect(maxQueued).toBeLessThanOrEqual(256 * 1024 + 4 * reply.length)
        expect((yield* Ringline.stats).backpressurePauses).toBeGreaterThan(0)
        // Reads everything: every answer arrives, then the close_notify ends the stream.
        let received = 0
        client.on("data", (d: Buffer) => (received += d.length))
        const ended = new Promise((r) => client.on("end", r))
        client.resume()
        client.end()
        yield* Effect.promise(() => ended)
        // Requests held back by the pause were answered once the peer read.
        expect(calls).toBeGreaterThan(callsAtStall)
        expect(received).toBe(calls * reply.length)
      }),
      { sendQueueHighWater: 256 * 1024, sendQueueLowWater: 64 * 1024 }
    ), 60_000)

  it.live("idle TLS connections cost no fiber once their handshake is done", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key })
      const supervisor = yield* Supervisor.track
      yield* Effect.forkScoped(Effect.supervised(Listener.serveChunks(listener, echo), supervisor))
      yield* Effect.sleep(Duration.millis(50))
      const before = (yield* supervisor.value).length
      const clients: Array<tls.TLSSocket> = []
      for (let i = 0; i < 5; i++) {
        const c = nodeClient(portOf(listener))
        clients.push(c)
        const back = yield* Effect.promise(() =>
          new Promise<string>((resolve) => {
            c.once("secureConnect", () => c.write("x"))
            c.once("data", (d: Buffer) => resolve(d.toString()))
          })
        )
        expect(back).toBe("x")
      }
      yield* Effect.sleep(Duration.millis(50))
      expect((yield* supervisor.value).length - before).toBe(0)
      for (const c of clients) c.end()
      yield* Effect.promise(() => Promise.all(clients.map((c) => new Promise((r) => c.on("close", r)))))
    })), 60_000)

  it.live("closing the listener's scope ends handshakes in progress at once and closes idle connections; fds and ops back to baseline", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving(echo)
      const port = portOf(s.listener)
      // Two silent peers: their handshakes are in progress when the scope closes.
      const silent = [net.connect(port, "127.0.0.1"), net.connect(port, "127.0.0.1")]
      for (const c of silent) c.on("error", () => {})
      const idle = nodeClient(port)
      idle.on("error", () => {})
      const idleClosed = new Promise((r) => idle.on("close", r))
      yield* Effect.promise(() => new Promise((r) => idle.once("secureConnect", r)))
      const silentClosed = Promise.all(silent.map((c) => new Promise((r) => c.on("close", r))))
      yield* Effect.sleep(Duration.millis(100))
      const started = Date.now()
      yield* Scope.close(s.scope, Exit.void)
      yield* Fiber.await(s.fiber)
      yield* Effect.promise(() => Promise.all([idleClosed, silentClosed]))
      // Handshakes in progress end at once, the idle connection after the quiet period: well
      // before the shutdown timeout (5 s) or the handshake timeout (10 s).
      expect(Date.now() - started).toBeLessThan(3000)
      expect((yield* Ringline.stats).connections).toBe(0)
      expect(s.failures).toHaveLength(0)
    }), { shutdownTimeoutMs: 5000 }), 60_000)

  it.live("a handshake that does not finish within handshakeTimeout is closed; the handler is never called", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const s = yield* serving(echo, { handshakeTimeout: "300 millis" })
      const silent = net.connect(portOf(s.listener), "127.0.0.1")
      silent.on("error", () => {})
      const started = Date.now()
      yield* Effect.promise(() => new Promise((r) => silent.on("close", r)))
      expect(Date.now() - started).toBeLessThan(5000)
      expect(s.chunks).toHaveLength(0)
      expect(s.listener.accepted).toBe(0)
    })), 60_000)

  it.live("Tls.secure over a Unix listener: handshakes, then chunks from the completions; accepted counts handshakes", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const path = join(tmpdir(), `ringline-tls-secure-${process.pid}-${Date.now()}.sock`)
      const plain = yield* Unix.listen({ path })
      const context = yield* Tls.serverContext({ cert: p.cert, key: p.key })
      const listener = yield* Tls.secure(plain, { context })
      let inFiber = false
      yield* Effect.forkScoped(Listener.serveChunks(listener, (chunk, c) => {
        if (Option.isSome(Fiber.getCurrentFiber())) inFiber = true
        if (chunk.length > 0) c.unsafeWrite(chunk)
      }))
      const data = randomBytes(256 * 1024)
      const echoed = yield* Effect.promise(() =>
        new Promise<Buffer>((resolve, reject) => {
          const parts: Array<Buffer> = []
          const s = tls.connect({ path, ca: p.ca, servername: "localhost" }, () => s.end(data))
          s.on("data", (d: Buffer) => parts.push(d))
          s.on("end", () => resolve(Buffer.concat(parts)))
          s.on("error", reject)
        })
      )
      expect(sha(echoed)).toBe(sha(data))
      expect(inFiber).toBe(false)
      expect(listener.accepted).toBe(1)
    })), 60_000)
})

/**
 * TLS interop with real peers: node:tls, openssl s_client / s_server (TLS 1.2 and 1.3, ALPN,
 * SNI, renegotiation, KeyUpdate), curl; and ringline to ringline (SPEC §11).
 */
import { describe, expect, it } from "@effect/vitest"
import type { Connection } from "@ringline/core"
import { RinglineTesting } from "@ringline/core"
import { echo } from "./echo.js"
import { Effect, Option } from "effect"
import { execFile } from "node:child_process"
import * as tls from "node:tls"
import { Tls } from "../src/index.js"
import { pki } from "./certs.js"
import { freePort, openssl } from "./peers.js"

const portOf = (l: { readonly address: unknown }) => (l.address as { port: number }).port
const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

/** Everything until the peer's close_notify. */
const readAll = (c: Connection.Connection) =>
  Effect.gen(function*() {
    let out = ""
    while (true) {
      const chunk = yield* c.recv
      if (Option.isNone(chunk)) return out
      out += dec(chunk.value)
    }
  })

/** Reads until `n` bytes arrived. */
const readN = (c: Connection.Connection, n: number) =>
  Effect.gen(function*() {
    let out = ""
    while (out.length < n) {
      const chunk = yield* c.recv
      if (Option.isNone(chunk)) break
      out += dec(chunk.value)
    }
    return out
  })

/** node:tls client: writes `payload`, ends (close_notify + FIN), collects until the server's end. */
const nodeExchange = (port: number, payload: string | Buffer, options: tls.ConnectionOptions = {}) =>
  new Promise<{ data: Buffer; alpn: string | false | null; protocol: string | null }>((resolve, reject) => {
    const s = tls.connect({ port, host: "127.0.0.1", ca: pki().ca, servername: "localhost", ...options }, () => s.end(payload))
    const chunks: Array<Buffer> = []
    s.on("data", (d) => chunks.push(d))
    s.on("end", () => resolve({ data: Buffer.concat(chunks), alpn: s.alpnProtocol, protocol: s.getProtocol() }))
    s.on("error", reject)
  })

const serverInfo = { current: undefined as Tls.TlsInfo | undefined }
const echoWithInfo = (c: Connection.Connection) =>
  Effect.suspend(() => {
    serverInfo.current = Option.getOrUndefined(Tls.info(c))
    return echo(c)
  })

describe("TLS servers with node:tls clients (SPEC §11)", () => {
  for (const size of [20, 8192]) {
    it.live(`echo of ${size} B, with ALPN and the negotiated info on both sides`, () =>
      RinglineTesting.withFreshRing(Effect.gen(function*() {
        const p = pki()
        const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, alpn: ["echo", "http/1.1"] })
        yield* Effect.forkScoped(listener.serve(echoWithInfo))
        const payload = Buffer.from(Array.from({ length: size }, (_, i) => 97 + (i % 26)))
        const r = yield* Effect.promise(() => nodeExchange(portOf(listener), payload, { ALPNProtocols: ["echo"] }))
        expect(r.data.equals(payload)).toBe(true)
        expect(r.alpn).toBe("echo")
        expect(r.protocol).toBe("TLSv1.3")
        const info = serverInfo.current!
        expect(info.protocol).toBe("TLSv1.3")
        expect(info.cipher).toMatch(/^TLS_(AES|CHACHA20)/)
        expect(info.alpn).toBe("echo")
        expect(info.servername).toBe("localhost")
      })))
  }

  it.live("TLS 1.2 with node:tls (IANA cipher name) and maxVersion", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, maxVersion: "TLSv1.2" })
      yield* Effect.forkScoped(listener.serve(echoWithInfo))
      const r = yield* Effect.promise(() => nodeExchange(portOf(listener), "twelve"))
      expect(r.data.toString()).toBe("twelve")
      expect(r.protocol).toBe("TLSv1.2")
      expect(serverInfo.current!.protocol).toBe("TLSv1.2")
      expect(serverInfo.current!.cipher).toMatch(/^TLS_ECDHE_ECDSA_WITH_/)
    })))
})

describe("ringline TLS client", () => {
  it.live("to a ringline TLS server (SPEC §11): echo, ALPN, SNI, then a resumed session", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({
        port: 0,
        cert: p.cert,
        key: p.key,
        alpn: ["h2", "echo"],
        sni: { "other.test": p.other }
      })
      yield* Effect.forkScoped(listener.serve(echoWithInfo))
      const target = `127.0.0.1:${portOf(listener)}`
      for (const round of [1, 2]) {
        const c = yield* Tls.connect(target, { ca: p.ca, servername: "localhost", alpn: ["echo"] })
        yield* c.send(enc(`round ${round}`))
        expect(yield* readN(c, 7)).toBe(`round ${round}`)
        const info = Option.getOrThrow(Tls.info(c))
        expect(info.alpn).toBe("echo")
        expect(info.peerCertificate?.subject).toBe("CN=localhost")
        // TLS 1.3 tickets arrive after the first handshake: the second connection resumes.
        expect(info.resumed).toBe(round === 2)
        yield* c.shutdownWrite
        expect(yield* readAll(c)).toBe("")
        yield* c.close
      }
      // SNI picks the other certificate.
      const o = yield* Tls.connect(target, { ca: p.ca, servername: "other.test" })
      expect(Option.getOrThrow(Tls.info(o)).peerCertificate?.subject).toBe("CN=other.test")
      yield* o.send(enc("sni"))
      expect(yield* readN(o, 3)).toBe("sni")
      expect(serverInfo.current!.servername).toBe("other.test")
    })))

  it.live("to a node:tls server (TLS 1.2 and 1.3), verifying 127.0.0.1 as an IP SAN", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const server = tls.createServer({ cert: p.cert, key: p.key, ALPNProtocols: ["echo"] }, (s) => s.pipe(s))
      const port = yield* Effect.promise(() => new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as any).port))))
      yield* Effect.addFinalizer(() => Effect.promise(() => new Promise((r) => server.close(r))))
      for (const maxVersion of ["TLSv1.2", "TLSv1.3"] as const) {
        const c = yield* Tls.connect(`127.0.0.1:${port}`, { ca: p.ca, alpn: ["echo"], maxVersion })
        expect(Option.getOrThrow(Tls.info(c)).protocol).toBe(maxVersion)
        expect(Option.getOrThrow(Tls.info(c)).alpn).toBe("echo")
        yield* c.sendv([enc("SCATTER"), enc("-"), enc("GATHER")])
        expect(yield* readN(c, 14)).toBe("SCATTER-GATHER")
        yield* c.chain([enc("HELLO"), enc("WORLD")])
        expect(yield* readN(c, 10)).toBe("HELLOWORLD")
        yield* c.close
      }
    })))
})

describe("openssl peers", () => {
  for (const version of ["-tls1_2", "-tls1_3"]) {
    it.live(`s_client ${version} with ALPN and SNI against a ringline server`, () =>
      RinglineTesting.withFreshRing(Effect.gen(function*() {
        const p = pki()
        const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, alpn: ["echo"], sni: { "other.test": p.other } })
        yield* Effect.forkScoped(listener.serve(echoWithInfo))
        const c = openssl(["s_client", version, "-connect", `127.0.0.1:${portOf(listener)}`, "-CAfile", p.caFile, "-servername", "other.test", "-alpn", "echo"])
        yield* Effect.addFinalizer(() => Effect.promise(() => c.kill()))
        yield* Effect.promise(() => c.waitFor(/Verify return code: 0/))
        c.child.stdin.write("ping-from-s_client\n")
        // s_client prints what it receives (its stdin is a pipe, not echoed).
        const out = yield* Effect.promise(() => c.waitFor(/ping-from-s_client/))
        expect(out).toContain("ALPN protocol: echo")
        expect(out).toMatch(/subject=CN ?= ?other\.test/)
        expect(out).toContain(version === "-tls1_2" ? "TLSv1.2" : "TLSv1.3")
        expect(serverInfo.current!.servername).toBe("other.test")
        c.child.stdin.end()
        yield* Effect.promise(() => c.exited)
      })))

    it.live(`s_server ${version} with ALPN and SNI, ringline client`, () =>
      RinglineTesting.withFreshRing(Effect.gen(function*() {
        const p = pki()
        const port = yield* Effect.promise(freePort)
        const s = openssl([
          "s_server", version, "-accept", `127.0.0.1:${port}`, "-cert", p.certFile, "-key", p.keyFile,
          "-cert2", `${p.dir}/other.pem`, "-key2", `${p.dir}/other.key`, "-servername", "other.test",
          "-alpn", "echo", "-rev", "-naccept", "2"
        ])
        yield* Effect.addFinalizer(() => Effect.promise(() => s.kill()))
        yield* Effect.promise(() => s.waitFor(/ACCEPT/))
        // s_server applies -alpn to its main context only, so ALPN and SNI are checked apart.
        const c = yield* Tls.connect(`127.0.0.1:${port}`, { ca: p.ca, alpn: ["echo"] })
        const info = Option.getOrThrow(Tls.info(c))
        expect(info.alpn).toBe("echo")
        expect(info.protocol).toBe(version === "-tls1_2" ? "TLSv1.2" : "TLSv1.3")
        expect(info.peerCertificate?.subject).toBe("CN=localhost")
        yield* c.send(enc("abcdef\n"))
        // -rev answers each line reversed.
        expect(yield* readN(c, 7)).toBe("fedcba\n")
        yield* c.close
        const o = yield* Tls.connect(`127.0.0.1:${port}`, { ca: p.ca, servername: "other.test" })
        expect(Option.getOrThrow(Tls.info(o)).peerCertificate?.subject).toBe("CN=other.test")
        yield* o.send(enc("xyz\n"))
        expect(yield* readN(o, 4)).toBe("zyx\n")
        yield* o.close
      })))
  }

  it.live("renegotiation is refused (s_client -tls1_2, then R: no_renegotiation alert)", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(listener.serve(echo))
      const c = openssl(["s_client", "-tls1_2", "-connect", `127.0.0.1:${portOf(listener)}`, "-CAfile", p.caFile])
      yield* Effect.addFinalizer(() => Effect.promise(() => c.kill()))
      yield* Effect.promise(() => c.waitFor(/Verify return code: 0/))
      c.child.stdin.write("R\n")
      const out = yield* Effect.promise(() => c.waitFor(/no renegotiation|closed|errno|error/i))
      expect(out).toContain("RENEGOTIATING")
      expect(out).toMatch(/no renegotiation/i)
    })))

  it.live("KeyUpdate both directions (TLS 1.3): s_client K, then Tls.keyUpdate(requestPeer)", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(listener.serve((conn) =>
        Effect.gen(function*() {
          // Echo one line, update our keys (asking the peer too), echo the next.
          const first = yield* readN(conn, "before-update\n".length)
          yield* conn.send(enc(first))
          yield* Tls.keyUpdate(conn, true)
          yield* echo(conn)
        })
      ))
      const c = openssl(["s_client", "-tls1_3", "-connect", `127.0.0.1:${portOf(listener)}`, "-CAfile", p.caFile])
      yield* Effect.addFinalizer(() => Effect.promise(() => c.kill()))
      yield* Effect.promise(() => c.waitFor(/Verify return code: 0/))
      // Peer-initiated update with update_requested: our engine answers inside SSL_read.
      c.child.stdin.write("K\n")
      yield* Effect.promise(() => c.waitFor(/KEYUPDATE/))
      c.child.stdin.write("before-update\n")
      yield* Effect.promise(() => c.waitFor(/before-update/))
      c.child.stdin.write("after-update\n")
      const out = yield* Effect.promise(() => c.waitFor(/after-update/))
      expect(out).not.toMatch(/alert|error/i)
      c.child.stdin.end()
      yield* Effect.promise(() => c.exited)
    })))
})

describe("curl", () => {
  it.live("GET over HTTPS against a ringline TLS server (ALPN http/1.1)", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, alpn: ["http/1.1"] })
      yield* Effect.forkScoped(listener.serve((conn) =>
        Effect.gen(function*() {
          let req = ""
          while (!req.includes("\r\n\r\n")) {
            const chunk = yield* conn.recv
            if (Option.isNone(chunk)) return
            req += dec(chunk.value)
          }
          const body = `hello ${req.split(" ")[1]}`
          yield* conn.send(enc(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`))
        })
      ))
      const out = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) =>
          execFile("curl", ["-sS", "--http1.1", "--cacert", p.caFile, `https://localhost:${portOf(listener)}/tls`], (e, stdout, stderr) =>
            e ? reject(new Error(`${e.message}: ${stderr}`)) : resolve(stdout))
        )
      )
      expect(out).toBe("hello /tls")
    })))
})

/** Certificate verification: host names, trust, expiry, client certificates; typed failures. */
import { describe, expect, it } from "@effect/vitest"
import { RinglineTesting, Tcp } from "@ringline/core"
import { echo } from "./echo.js"
import { Effect, Exit, Option } from "effect"
import * as tls from "node:tls"
import { Tls } from "../src/index.js"
import { pki } from "./certs.js"

const portOf = (l: { readonly address: unknown }) => (l.address as { port: number }).port

const failure = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  return Option.getOrThrow(Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable((c as any).error ?? (c as any).left))))
}

const server = (creds: { cert: string; key: string }, extra: Partial<Tls.ListenOptions> = {}) =>
  Effect.gen(function*() {
    const listener = yield* Tls.listen({ port: 0, ...creds, ...extra })
    yield* Effect.forkScoped(listener.serve(echo))
    return `127.0.0.1:${portOf(listener)}`
  })

describe("verification", () => {
  it.live("wrong host name → TlsHandshakeError Verify 'hostname mismatch'", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const target = yield* server(p)
      const e = failure(yield* Effect.exit(Tls.connect(target, { ca: p.ca, servername: "wrong.test" })))
      expect(e._tag).toBe("TlsHandshakeError")
      expect(e).toMatchObject({ reason: "Verify", detail: "hostname mismatch" })
    })))

  it.live("untrusted CA → 'unable to get local issuer certificate'; rejectUnauthorized: false connects and reports it", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const target = yield* server(p.untrusted)
      const e = failure(yield* Effect.exit(Tls.connect(target, { ca: p.ca, servername: "localhost" })))
      expect(e).toMatchObject({ _tag: "TlsHandshakeError", reason: "Verify", detail: "unable to get local issuer certificate" })
      // Without `ca` our test CA is not trusted either (Node's root store only).
      const e2 = failure(yield* Effect.exit(Tls.connect(target, { servername: "localhost" })))
      expect(e2).toMatchObject({ reason: "Verify", detail: "unable to get local issuer certificate" })
      const c = yield* Tls.connect(target, { servername: "localhost", rejectUnauthorized: false })
      expect(Option.getOrThrow(Tls.info(c)).authorizationError).toBe("unable to get local issuer certificate")
    })))

  it.live("expired certificate → 'certificate has expired'", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const target = yield* server(p.expired)
      const e = failure(yield* Effect.exit(Tls.connect(target, { ca: p.ca, servername: "localhost" })))
      expect(e).toMatchObject({ _tag: "TlsHandshakeError", reason: "Verify", detail: "certificate has expired" })
    })))

  it.live("node:tls rejects our server's wrong certificate the same way (sanity of the PKI)", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const target = yield* server(p.untrusted)
      const err = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ port: Number(target.split(":")[1]), host: "127.0.0.1", ca: p.ca, servername: "localhost" })
          s.on("secureConnect", () => resolve("connected"))
          s.on("error", (e) => resolve((e as any).code))
        })
      )
      expect(err).toMatch(/^UNABLE_TO_/)
    })))

  it.live("client certificates: requested and verified; a client without one is refused", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      let peerSubject: string | undefined
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key, ca: p.ca, requestCert: true })
      yield* Effect.forkScoped(listener.serve((c) =>
        Effect.suspend(() => {
          peerSubject = Option.getOrThrow(Tls.info(c)).peerCertificate?.subject
          return echo(c)
        })
      ))
      const port = portOf(listener)
      // node:tls with a client certificate.
      const got = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          const s = tls.connect({ port, host: "127.0.0.1", ca: p.ca, servername: "localhost", cert: p.client.cert, key: p.client.key }, () => s.end("with cert"))
          let out = ""
          s.on("data", (d) => (out += d))
          s.on("end", () => resolve(out))
          s.on("error", reject)
        })
      )
      expect(got).toBe("with cert")
      expect(peerSubject).toBe("CN=ringline client")
      // A ringline client with a certificate.
      const c = yield* Tls.connect(`127.0.0.1:${port}`, { ca: p.ca, servername: "localhost", cert: p.client.cert, key: p.client.key })
      yield* c.send(new TextEncoder().encode("x"))
      expect(Option.isSome(yield* c.recv)).toBe(true)
      // Without a certificate: TLS 1.3 clients finish their handshake first, then hear the alert.
      const refused = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ port, host: "127.0.0.1", ca: p.ca, servername: "localhost" }, () => s.write("no cert"))
          s.on("data", () => resolve("served"))
          s.on("error", (e) => resolve((e as any).code ?? e.message))
          s.on("end", () => resolve("ended"))
        })
      )
      expect(refused).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET|ended/)
      expect(refused).not.toBe("served")
    })))

  it.live("bad options are rejected with the field named", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const e1 = failure(yield* Effect.exit(Tls.listen({ port: 0, cert: "not a pem", key: p.key })))
      expect(e1).toMatchObject({ _tag: "TlsConfigError", field: "cert" })
      const e2 = failure(yield* Effect.exit(Tls.listen({ port: 0, cert: p.cert, key: p.other.key })))
      expect(e2).toMatchObject({ _tag: "TlsConfigError", field: "cert" })
      expect(e2.message).toMatch(/key/)
      const e3 = failure(yield* Effect.exit(Tls.listen({ port: 0, cert: p.cert, key: p.key, minVersion: "TLSv1.0" as any })))
      expect(e3).toMatchObject({ _tag: "TlsConfigError", field: "minVersion" })
      const e4 = failure(yield* Effect.exit(Tls.connect("127.0.0.1:1", { alpn: [""] })))
      expect(e4).toMatchObject({ _tag: "TlsConfigError", field: "alpn" })
    })))

  it.live("a name to verify that is empty, not a string or holds a NUL is a TlsConfigError naming it, never an unchecked host", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      // A server whose certificate is for other.test only: each name below must not accept it.
      // Before, "" and a missing or non-string host skipped the host check (OpenSSL checks no
      // name that was never set) and "other.test\0.evil.example" was checked as "other.test"
      // (a C string): all of them connected.
      const target = yield* server(p.other)
      const port = Number(target.split(":")[1])
      for (const servername of ["", "other.test\0.evil.example", "other.test\0"]) {
        const e = failure(yield* Effect.exit(Effect.scoped(Tls.connect(target, { ca: p.ca, servername }))))
        expect(e, JSON.stringify(servername)).toMatchObject({ _tag: "TlsConfigError", field: "servername" })
      }
      for (const host of ["", undefined, 42]) {
        const e = failure(yield* Effect.exit(Effect.scoped(Tls.connect({ host, port } as any, { ca: p.ca }))))
        expect(e, String(host)).toMatchObject({ _tag: "TlsConfigError", field: "host" })
      }
      for (const host of [undefined, "", 42, "other.test\0.evil.example"]) {
        const e = failure(yield* Effect.exit(Effect.scoped(Effect.flatMap(Tcp.connect(target), (c) =>
          Tls.upgrade(c, { side: "client", host, ca: p.ca } as any)))))
        expect(e, String(host)).toMatchObject({ _tag: "TlsConfigError", field: "host" })
      }
      // The certificate is good for its own name: the refusals above are the names', not the PKI's.
      yield* Effect.scoped(Tls.connect(target, { ca: p.ca, servername: "other.test" }))
      yield* Effect.scoped(Effect.flatMap(Tcp.connect(target), (c) => Tls.upgrade(c, { side: "client", host: "other.test", ca: p.ca })))
    })))
})

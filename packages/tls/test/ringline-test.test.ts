/**
 * TLS over RinglineTest's in-memory network: the same engine and Connection code as on the ring,
 * with ciphertext copied out of the engine's chunks (the in-memory wire cannot send from native
 * memory). Users test their TLS services without a kernel ring.
 */
import { describe, expect, it } from "@effect/vitest"
import { RinglineTest } from "@ringline/core"
import { Chunk, Effect, Option, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { Tls } from "../src/index.js"
import { pki } from "./certs.js"

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const concat = (chunks: Chunk.Chunk<Uint8Array>) => Buffer.concat(Chunk.toReadonlyArray(chunks))

describe("TLS on RinglineTest", () => {
  it.live("echo of 1 MiB through Tls.listen and Tls.connect, hash-checked; session info as on the ring", () =>
    Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 4433, cert: p.cert, key: p.key, alpn: ["echo"] })
      yield* Effect.forkScoped(listener.serve((c) => c.stream.pipe(Stream.run(c.sink))))
      const conn = yield* Tls.connect("127.0.0.1:4433", { ca: p.ca, servername: "localhost", alpn: ["echo"] })
      const info = Option.getOrThrow(Tls.info(conn))
      expect(info.protocol).toBe("TLSv1.3")
      expect(info.alpn).toBe("echo")
      const payload = randomBytes(1 << 20)
      const [, echoed] = yield* Effect.all([
        Effect.zipRight(conn.send(payload), conn.shutdownWrite),
        Stream.runCollect(conn.stream)
      ], { concurrency: 2 })
      const got = concat(echoed)
      expect(got.length).toBe(payload.length)
      expect(sha(got)).toBe(sha(payload))
    }).pipe(Effect.scoped, Effect.provide(RinglineTest.layer())), 30_000)

  it.live("a wrong host name fails with the typed error (reason Verify, OpenSSL's words)", () =>
    Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 4433, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(listener.serve((c) => c.stream.pipe(Stream.run(c.sink))))
      const error = yield* Effect.flip(Tls.connect("127.0.0.1:4433", { ca: p.ca, servername: "wrong.example" }))
      expect(error._tag).toBe("TlsHandshakeError")
      expect(error._tag === "TlsHandshakeError" && error.reason).toBe("Verify")
      expect(error.message).toMatch(/hostname mismatch/)
    }).pipe(Effect.scoped, Effect.provide(RinglineTest.layer())), 30_000)

  it.live("plaintext from a scripted peer closes that connection only; the next client is served", () =>
    Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 4433, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(listener.serve((c) => c.stream.pipe(Stream.run(c.sink))))
      const peer = yield* RinglineTest.connect("127.0.0.1:4433")
      yield* peer.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      // The server answers garbage with at most an alert, then ends the connection.
      const answer = yield* Effect.either(peer.readAll)
      if (answer._tag === "Right") expect(answer.right.length).toBeLessThan(64)
      else expect(answer.left._tag).toBe("PeerError")
      const conn = yield* Tls.connect("127.0.0.1:4433", { ca: p.ca, servername: "localhost" })
      yield* conn.send(new TextEncoder().encode("still here"))
      yield* conn.shutdownWrite
      expect(new TextDecoder().decode(concat(yield* Stream.runCollect(conn.stream)))).toBe("still here")
    }).pipe(Effect.scoped, Effect.provide(RinglineTest.layer())), 30_000)
})

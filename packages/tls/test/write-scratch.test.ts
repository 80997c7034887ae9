/**
 * `TlsSession.writeScratch` (packages/native/src/tls.cc): the engine's small writes are copied
 * into the scratch that follows the io area in its ArrayBuffer and encrypted from there. It must
 * encrypt exactly those bytes (the peer decrypts what was put there), and refuse a length outside
 * the scratch (or any length but 0 when the io area has no scratch) with a RangeError instead of
 * reading other memory.
 */
import { describe, expect, it } from "vitest"
import type * as Native from "@ringline/native"
import { createRequire } from "node:module"
import { pki } from "./certs.js"

const native = createRequire(import.meta.url)("@ringline/native") as typeof Native

/** Offsets in the io area (TlsIo in packages/native/src/tls.h). */
const Io = { plain: 0, spans: 2, spanBase: 1024, length: 1024 + 3 * 1024 } as const
const HandshakeDone = 1
const SCRATCH = 4096

/** An io area with `scratch` bytes after it in the same buffer, and the scratch's view. */
const ioWithScratch = (scratch: number) => {
  const memory = new ArrayBuffer(Io.length * 8 + scratch)
  return { io: new Float64Array(memory, 0, Io.length), scratch: new Uint8Array(memory, Io.length * 8, scratch) }
}

/** The ciphertext a call reported, copied out of the session's chunks. */
const output = (session: Native.TlsSession, io: Float64Array): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (let i = 0; i < io[Io.spans]!; i++) {
    const b = Io.spanBase + 3 * i
    parts.push(session.copy(io[b]!, io[b + 1]!, io[b + 2]!))
  }
  return Buffer.concat(parts)
}

/** A client and a server session with their handshake done, bytes carried between them in memory. */
const connected = (serverScratch: number) => {
  const p = pki()
  const c = { io: new Float64Array(Io.length) }
  const s = ioWithScratch(serverScratch)
  const client = new native.TlsSession(new native.TlsContext({ server: false, verify: 0 }), c.io)
  const server = new native.TlsSession(new native.TlsContext({ server: true, cert: p.cert, key: p.key }), s.io)
  const plain = new Uint8Array(64 * 1024)
  let clientDone = (client.handshake() & HandshakeDone) !== 0
  let serverDone = false
  let toServer = output(client, c.io)
  // (Each call is made every round: its io area then holds that call's output, not an earlier one's.)
  for (let round = 0; round < 10 && !(clientDone && serverDone && toServer.length === 0); round++) {
    if ((server.feed(toServer, plain) & HandshakeDone) !== 0) serverDone = true
    const toClient = output(server, s.io)
    if ((client.feed(toClient, plain) & HandshakeDone) !== 0) clientDone = true
    toServer = output(client, c.io)
  }
  expect(clientDone && serverDone).toBe(true)
  expect(client.error()).toBeNull()
  expect(server.error()).toBeNull()
  /** What the client decrypts from the server's last call. */
  const received = (): Uint8Array => {
    const ciphertext = output(server, s.io)
    client.feed(ciphertext, plain)
    return plain.slice(0, c.io[Io.plain]!)
  }
  return { client, server, scratch: s.scratch, received }
}

describe("TlsSession.writeScratch", () => {
  it("encrypts exactly the first len bytes of the scratch after the io area", () => {
    const { client, server, scratch, received } = connected(SCRATCH)
    try {
      for (const n of [1, 64, 1000, SCRATCH]) {
        const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)
        scratch.fill(0xee) // bytes past `n` must not be sent
        scratch.set(bytes)
        server.writeScratch(n)
        expect(server.error()).toBeNull()
        expect(Array.from(received())).toEqual(Array.from(bytes))
      }
      // The same bytes through write() of a small array V8 keeps on its heap: same plaintext.
      const small = Uint8Array.from({ length: 64 }, (_, i) => i)
      server.write(small)
      expect(Array.from(received())).toEqual(Array.from(small))
      // Nothing: no record at all.
      server.writeScratch(0)
      expect(received().length).toBe(0)
    } finally {
      client.free()
      server.free()
    }
  })

  it("refuses a length outside the scratch, and any length but 0 without a scratch", () => {
    const { client, server } = connected(SCRATCH)
    const bare = new native.TlsSession(new native.TlsContext({ server: false, verify: 0 }), new Float64Array(Io.length))
    try {
      for (const bad of [SCRATCH + 1, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => server.writeScratch(bad)).toThrow(RangeError)
      }
      expect(() => bare.writeScratch(1)).toThrow(RangeError)
      expect(() => bare.writeScratch(0)).not.toThrow()
      expect(() => (server.writeScratch as (v: unknown) => number)("1")).toThrow()
    } finally {
      client.free()
      server.free()
      bare.free()
    }
  })
})

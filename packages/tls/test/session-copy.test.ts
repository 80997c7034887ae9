/**
 * `TlsSession.copy` (packages/native/src/tls.cc), the one native call that hands JS a copy of
 * engine memory (RinglineTest's in-memory wire sends from JS): it must return exactly the bytes
 * of a span the session reported, and refuse anything outside the chunk's written bytes, a chunk
 * that was given back, or a freed session, with a RangeError instead of reading other memory.
 */
import { describe, expect, it } from "vitest"
import type * as Native from "@ringline/native"
import { createRequire } from "node:module"
import { pki } from "./certs.js"

const native = createRequire(import.meta.url)("@ringline/native") as typeof Native

/** Offsets in the io area (TlsIo in packages/native/src/tls.h). */
const Io = { spans: 2, releases: 4, releaseBase: 64, spanBase: 1024, length: 1024 + 3 * 1024 } as const

const spansOf = (io: Float64Array) =>
  Array.from({ length: io[Io.spans]! }, (_, i) => {
    const b = Io.spanBase + 3 * i
    return { id: io[b]!, addr: io[b + 1]!, len: io[b + 2]! }
  })

const outOfRange = (f: () => unknown) => expect(f).toThrow(RangeError)

describe("TlsSession.copy", () => {
  it("copies exactly a reported span (a ClientHello a server session accepts) and nothing outside it", () => {
    const p = pki()
    const clientIo = new Float64Array(Io.length)
    const client = new native.TlsSession(new native.TlsContext({ server: false, verify: 0 }), clientIo)
    const serverIo = new Float64Array(Io.length)
    const server = new native.TlsSession(
      new native.TlsContext({ server: true, cert: p.cert, key: p.key }),
      serverIo
    )
    try {
      client.handshake()
      const spans = spansOf(clientIo)
      expect(spans.length).toBeGreaterThan(0)
      const { addr, id, len } = spans[0]!
      const hello = client.copy(id, addr, len)
      expect(hello).toBeInstanceOf(Uint8Array)
      expect(hello.length).toBe(len)
      // A TLS handshake record whose declared length fits the span.
      expect(hello[0]).toBe(0x16)
      expect(5 + ((hello[3]! << 8) | hello[4]!)).toBeLessThanOrEqual(len)
      // The copy is the real record: a server session answers it with its own flight.
      server.feed(hello, new Uint8Array(64 * 1024))
      expect(server.error()).toBeNull()
      expect(serverIo[Io.spans]).toBeGreaterThan(0)

      // Parts of the span are fine, anything reaching outside it is not.
      expect(Array.from(client.copy(id, addr + 1, len - 1))).toEqual(Array.from(hello.subarray(1)))
      expect(client.copy(id, addr + len, 0).length).toBe(0)
      outOfRange(() => client.copy(id, addr - 1, len))
      outOfRange(() => client.copy(id, addr, len + 1))
      outOfRange(() => client.copy(id, addr + len, 1))
      outOfRange(() => client.copy(id, addr, -1))
      outOfRange(() => client.copy(id, Number.NaN, 1))
      outOfRange(() => client.copy(id, addr, Number.POSITIVE_INFINITY))
      outOfRange(() => client.copy(id + 1000, addr, len))

      // A chunk given back (through the io area, as the engine does) is gone.
      clientIo[Io.releaseBase] = id
      clientIo[Io.releases] = 1
      client.release()
      outOfRange(() => client.copy(id, addr, len))
    } finally {
      client.free()
      server.free()
    }
  })

  it("a freed session has no chunks: copy is a RangeError, not a read of freed memory", () => {
    const io = new Float64Array(Io.length)
    const session = new native.TlsSession(new native.TlsContext({ server: false, verify: 0 }), io)
    session.handshake()
    const [span] = spansOf(io)
    expect(span).toBeDefined()
    session.free()
    outOfRange(() => session.copy(span!.id, span!.addr, span!.len))
  })
})

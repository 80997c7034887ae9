/** Conformance: bytes arrive whole and in order, through read(parse), stream/sink, send and write. */
import { describe, expect } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { Connection, Tcp, Unix } from "../../src/index.js"
import { echo } from "../helpers.js"
import { acceptedPair, connectPeer, line, listenPeer, settle, text } from "./driver.js"
import { drivers } from "./drivers.js"

/** Settles until `c` holds at least `n` received bytes no reader took yet. */
const buffered = (c: Connection.Connection, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50 && c.bufferedBytes < n; i++) yield* settle
    expect(c.bufferedBytes).toBe(n)
  })

const pattern = (n: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff
  return b
}

describe.each(drivers)("echo and ordering ($name)", (d) => {
  d.it("a served connection echoes what the peer writes", () =>
    d.run(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      yield* Effect.forkScoped(l.serve(echo))
      const peer = yield* connectPeer(l.address)
      yield* peer.write("hello ringline")
      expect(text(yield* peer.read(14))).toBe("hello ringline")
      const big = pattern(300_000)
      yield* peer.write(big)
      yield* peer.end
      expect(Buffer.from(yield* peer.readAll).equals(Buffer.from(big))).toBe(true)
    })))

  d.it("an outbound connection talks to a listening peer", () =>
    d.run(Effect.gen(function*() {
      const pl = yield* listenPeer
      const c = yield* Tcp.connect(pl.target as { host: string; port: number })
      const peer = yield* pl.accept
      yield* c.send(new TextEncoder().encode("ping\n"))
      expect(text(yield* peer.read(5))).toBe("ping\n")
      yield* peer.write("pong\n")
      expect(yield* c.read(line)).toBe("pong")
    })))

  d.it("read(parse) assembles a message split across writes", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const reading = yield* Effect.fork(c.read(line))
      yield* peer.write("hel")
      yield* settle
      yield* peer.write("lo wor")
      yield* settle
      yield* peer.write("ld\nrest")
      expect(yield* reading.await.pipe(Effect.flatten)).toBe("hello world")
      expect(c.bufferedBytes).toBe(4)
    })))

  d.it("read(parse) splits coalesced messages, one per read", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.write("a\nbb\nccc\n")
      expect([yield* c.read(line), yield* c.read(line), yield* c.read(line)]).toEqual(["a", "bb", "ccc"])
      expect(c.bufferedBytes).toBe(0)
    })))

  d.it("stream piped into sink echoes a large transfer, then EOF", () =>
    d.run(Effect.gen(function*() {
      const l = yield* Unix.listen({ path: `/tmp/ringline-conf-${process.pid}-${Date.now()}.sock` })
      yield* Effect.forkScoped(l.serve((conn) => conn.stream.pipe(Stream.run(conn.sink))))
      const peer = yield* connectPeer(l.address)
      const big = pattern(1024 * 1024)
      const back = yield* Effect.fork(peer.readAll)
      yield* peer.write(big)
      yield* peer.end
      const got = yield* back.await.pipe(Effect.flatten)
      expect(got.length).toBe(big.length)
      expect(Buffer.from(got).equals(Buffer.from(big))).toBe(true)
    })))

  d.it("many sends of mixed kinds arrive in call order", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const enc = new TextEncoder()
      let expected = ""
      for (let i = 0; i < 600; i++) {
        const msg = `${i}:${"x".repeat(i % 50)};`
        expected += msg
        const bytes = enc.encode(msg)
        if (i % 3 === 0) yield* c.write(bytes)
        else if (i % 3 === 1) yield* c.send(bytes)
        else yield* c.sendv([bytes.subarray(0, 1), bytes.subarray(1)])
      }
      const big = "B".repeat(200_000)
      expected += big
      yield* c.send(enc.encode(big))
      expect(text(yield* peer.read(expected.length))).toBe(expected)
      expect(c.bytesSent).toBe(expected.length)
    })))

  d.it("recv returns owned chunks and None at the peer's end", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      yield* peer.write("abc")
      yield* peer.end
      let got = ""
      while (true) {
        const chunk = yield* c.recv
        if (Option.isNone(chunk)) break
        got += text(chunk.value)
      }
      expect(got).toBe("abc")
      expect(c.bytesReceived).toBe(3)
    })))

  // Bytes that arrive while nobody reads are gathered in the connection's reassembly buffer; a
  // recv taking them all gets that memory itself (no copy), so the next arrivals must go elsewhere.
  d.it("a recv chunk of buffered bytes stays intact while more bytes arrive and are read", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const first = pattern(50_000)
      yield* peer.write(first)
      yield* buffered(c, first.length)
      const chunk = Option.getOrThrow(yield* c.recv)
      expect(chunk.length).toBe(first.length)
      // What the chunk's memory holds beyond its bytes is zero, never stale memory (it may be
      // the reassembly buffer itself, allocated without zero-filling).
      const whole = new Uint8Array(chunk.buffer)
      expect(whole.subarray(0, chunk.byteOffset).every((b) => b === 0)).toBe(true)
      expect(whole.subarray(chunk.byteOffset + chunk.length).every((b) => b === 0)).toBe(true)
      for (const fill of [0xee, 0x11]) {
        const next = new Uint8Array(30_000).fill(fill)
        yield* peer.write(next)
        yield* buffered(c, next.length)
        const got = Option.getOrThrow(yield* c.recv)
        expect(Buffer.from(got).equals(Buffer.from(next))).toBe(true)
      }
      expect(Buffer.from(chunk).equals(Buffer.from(first))).toBe(true)
    })))

  // A parser's view of buffered bytes written without a copy: the send goes out from the
  // reassembly memory (frozen), and the bytes the parser left must move intact to the buffer
  // that takes the next arrivals.
  d.it("unsafeWrite of a parser's view of buffered bytes sends exactly those bytes while more arrive", () =>
    d.run(Effect.gen(function*() {
      const { conn: c, peer } = yield* acceptedPair
      const first = pattern(60_000)
      yield* peer.write(first)
      yield* buffered(c, first.length)
      // Echo all but the last 1000 bytes, which stay buffered for the next read.
      const n = yield* c.read((bytes) => {
        c.unsafeWrite(bytes.subarray(0, bytes.length - 1000))
        return Connection.done(bytes.length - 1000, bytes.length - 1000)
      })
      expect(n).toBe(first.length - 1000)
      const second = new Uint8Array(40_000).fill(0x5a)
      yield* peer.write(second)
      yield* buffered(c, 1000 + second.length)
      const rest = Option.getOrThrow(yield* c.recv)
      expect(Buffer.from(rest).equals(Buffer.concat([first.subarray(first.length - 1000), second]))).toBe(true)
      expect(Buffer.from(yield* peer.read(n)).equals(Buffer.from(first.subarray(0, n)))).toBe(true)
    })))
})

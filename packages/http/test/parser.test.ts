/**
 * The addon's llhttp parser driven as the connection drives it: a byte stream of pipelined
 * requests cut at every position must give the same heads, bodies and ends as the whole stream,
 * and heads are only handed over complete (the bytes of a partial head stay with the caller).
 */
import { describe, expect, it } from "@effect/vitest"
import { type Head, native, parseInto, type Sink } from "../src/internal/parser.js"

const stream = [
  "GET /a?x=1 HTTP/1.1\r\nHost: example\r\nX-Many: 1\r\nX-Many: 2\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
  "POST /b HTTP/1.1\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
  "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
  "DELETE /d HTTP/1.1\r\nEmpty:\r\n\r\n",
  "GET /e HTTP/1.1\r\nConnection: close\r\n\r\n"
].join("")

interface Event {
  readonly kind: string
  readonly value: string
}

/** Feeds `bytes` as a connection would: unconsumed bytes are offered again with the next piece. */
const run = (pieces: ReadonlyArray<Uint8Array>, maxHeads = 64) => {
  const id = native().httpParserCreate(16384, 64)
  const events: Array<Event> = []
  const heads: Array<Head> = []
  let body = ""
  const sink: Sink = {
    head: (h) => {
      heads.push(h)
      events.push({ kind: "head", value: `${h.method} ${h.url} ${h.flags} ${JSON.stringify(h.decodeHeaders())}` })
    },
    body: (c) => (body += Buffer.from(c).toString("latin1")),
    end: () => {
      events.push({ kind: "end", value: body })
      body = ""
    },
    error: (status, reason) => events.push({ kind: "error", value: `${status} ${reason}` })
  }
  let pending = new Uint8Array(0)
  try {
    for (const piece of pieces) {
      const all = new Uint8Array(pending.length + piece.length)
      all.set(pending)
      all.set(piece, pending.length)
      const consumed = parseInto(id, all, maxHeads, sink)
      pending = all.slice(consumed)
    }
  } finally {
    native().httpParserFree(id)
  }
  return { events, heads, pending }
}

describe("llhttp records", () => {
  const bytes = new Uint8Array(Buffer.from(stream, "latin1"))

  it("parses pipelined requests: heads, bodies (chunked decoded), ends, flags", () => {
    const { events, pending } = run([bytes])
    expect(events.map((e) => e.kind)).toEqual(["head", "end", "head", "end", "head", "end", "head", "end", "head", "end"])
    expect(events[0]!.value).toContain(`GET /a?x=1`)
    expect(events[0]!.value).toContain(`"x-many":"1, 2"`)
    expect(events[0]!.value).toContain(`"cookie":"a=1; b=2"`)
    expect(events[3]!.value).toBe("hello world")
    expect(events[5]!.value).toBe("wikipedia")
    expect(events[6]!.value).toContain(`"empty":""`)
    expect(pending.length).toBe(0)
  })

  it("gives the same events for the stream cut at every position", () => {
    const whole = run([bytes]).events
    for (let cut = 1; cut < bytes.length; cut++) {
      const { events, pending } = run([bytes.subarray(0, cut), bytes.subarray(cut)])
      expect(events, `cut at ${cut}`).toEqual(whole)
      expect(pending.length).toBe(0)
    }
  })

  it("gives the same events fed one byte at a time", () => {
    const pieces = Array.from(bytes, (b) => Uint8Array.of(b))
    expect(run(pieces).events).toEqual(run([bytes]).events)
  })

  it("stops after a Connection: close request and after an upgrade, leaving the rest", () => {
    const tail = "GET /never HTTP/1.1\r\n\r\n"
    const close = run([new Uint8Array(Buffer.from("GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + tail))])
    expect(close.events.filter((e) => e.kind === "head").length).toBe(1)
    expect(Buffer.from(close.pending).toString()).toBe(tail)
    const up = run([new Uint8Array(Buffer.from("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", "latin1"))])
    expect(up.heads[0]!.flags & 2).toBe(2)
    expect(Buffer.from(up.pending).toString("latin1")).toBe("\x81\x05hello")
  })

  it("hands over at most maxHeads heads per call", () => {
    const three = new Uint8Array(Buffer.from("GET /1 HTTP/1.1\r\n\r\n".repeat(3)))
    const { events, pending } = run([three], 2)
    expect(events.filter((e) => e.kind === "head").length).toBe(2)
    expect(Buffer.from(pending).toString()).toBe("GET /1 HTTP/1.1\r\n\r\n")
  })

  it("rejects smuggling shapes and bad framing with 400, oversized heads with 431", () => {
    const cases: Array<[string, string]> = [
      ["POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400"],
      ["POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400"],
      ["POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\nX : a\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(65) + "\r\n", "431"],
      ["GET / HTTP/1.1\r\nX: " + "y".repeat(17000) + "\r\n\r\n", "431"]
    ]
    for (const [req, status] of cases) {
      const { events } = run([new Uint8Array(Buffer.from(req))])
      expect(events.at(-1)?.kind, JSON.stringify(req.slice(0, 60))).toBe("error")
      expect(events.at(-1)?.value.startsWith(status), req.slice(0, 60)).toBe(true)
    }
  })
})

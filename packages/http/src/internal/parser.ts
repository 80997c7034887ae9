/**
 * The addon's llhttp parser seen from JS: one `httpParse` call per received chunk, whose records
 * (shared Int32Array) are turned into request heads and body chunks here. Layout: see
 * packages/native/src/http_parser.cc.
 */
import type * as Native from "@ringline/native"
import { createRequire } from "node:module"

let loaded: typeof Native | undefined

/** The addon, loaded on first use (importing this package never needs the native build). */
export const native = (): typeof Native => {
  if (loaded === undefined) loaded = createRequire(import.meta.url)("@ringline/native") as typeof Native
  return loaded
}

/** Record kinds (first word of a record). */
export const Rec = { Head: 1, Body: 2, End: 3, Error: 4 } as const

/** Flags of a head record. */
export const HeadFlag = { KeepAlive: 1, Upgrade: 2, Chunked: 4, ContentLength: 8, ExpectContinue: 16 } as const

/** Words of a head record before its header entries. */
export const HeadFixed = 11

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string

/** Latin-1 text of `bytes[start, end)` (what Node does for the request line and header values). */
export const latin1 = (bytes: Uint8Array, start: number, end: number): string =>
  start === end ? "" : latin1Slice.call(bytes, start, end)

/**
 * A parsed request head. Its header section is kept as one latin-1 string (one allocation, taken
 * before the receive buffer goes back to the kernel); names and values are cut out of it on first
 * use.
 */
export class Head {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly flags: number,
    /** major * 10 + minor */
    readonly version: number,
    readonly contentLength: number,
    /** The header section, latin-1. */
    readonly text: string,
    /** nHeaders × (nameStart, nameLen, valueStart, valueLen), relative to `text`. */
    readonly fields: ReadonlyArray<number>
  ) {}

  /** Header names lower-cased; repeated fields joined with ", " ("; " for cookie). */
  decodeHeaders(): Record<string, string> {
    const out: Record<string, string> = {}
    const f = this.fields
    const t = this.text
    for (let i = 0; i < f.length; i += 4) {
      const name = t.slice(f[i]!, f[i]! + f[i + 1]!).toLowerCase()
      const value = t.slice(f[i + 2]!, f[i + 2]! + f[i + 3]!)
      const prev = out[name]
      out[name] = prev === undefined ? value : prev + (name === "cookie" ? "; " : ", ") + value
    }
    return out
  }
}

/** What one parse call saw, in order; `end` marks the end of the current message's body. */
export interface Sink {
  head(head: Head): void
  body(chunk: Uint8Array): void
  end(): void
  error(status: number, reason: string): void
}

/**
 * Runs the native parser over `view` and feeds `sink`; returns the bytes consumed. The view may be
 * a kernel buffer: every byte kept (head section, body chunks) is copied here.
 */
let rec: Int32Array | undefined
let methods: ReadonlyArray<string> = []

export const parseInto = (id: number, view: Uint8Array, maxHeads: number, sink: Sink): number => {
  const n = native()
  if (rec === undefined) {
    rec = n.httpRecords
    methods = n.httpMethods
  }
  const consumed = n.httpParse(id, view, maxHeads)
  const words = rec[0]!
  let i = 2
  while (i < words) {
    switch (rec[i]) {
      case Rec.Head: {
        const nh = rec[i + 10]!
        const headStart = rec[i + 6]!
        const headEnd = rec[i + 7]!
        const fields: Array<number> = new Array(nh * 4)
        for (let h = 0, b = i + HeadFixed; h < nh * 4; h += 4, b += 4) {
          fields[h] = rec[b]! - headStart
          fields[h + 1] = rec[b + 1]!
          fields[h + 2] = rec[b + 2]! - headStart
          fields[h + 3] = rec[b + 3]!
        }
        const text = latin1(view, headStart, headEnd)
        sink.head(
          new Head(
            methods[rec[i + 1]!] ?? "GET",
            text.slice(rec[i + 8]! - headStart, rec[i + 9]! - headStart),
            rec[i + 2]!,
            rec[i + 3]!,
            rec[i + 4]! * 4294967296 + (rec[i + 5]! >>> 0),
            text,
            fields
          )
        )
        i += HeadFixed + nh * 4
        break
      }
      case Rec.Body:
        sink.body(view.slice(rec[i + 1]!, rec[i + 1]! + rec[i + 2]!))
        i += 3
        break
      case Rec.End:
        sink.end()
        i += 1
        break
      case Rec.Error:
        sink.error(rec[i + 1]!, n.httpErrorName(rec[i + 2]!))
        i += 4
        break
      default:
        throw new Error(`http parser: unknown record ${rec[i]} at ${i}`)
    }
  }
  return consumed
}

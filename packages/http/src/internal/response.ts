/**
 * Response encoding: the status line and headers become one latin-1 string written with one
 * `unsafeWrite`; the Date header is formatted once per second.
 */
import * as Cookies from "@effect/platform/Cookies"
import type * as ServerResponse from "@effect/platform/HttpServerResponse"
import { STATUS_CODES } from "node:http"

let dateSecond = -1
let dateLine = ""

/** `Date: <IMF-fixdate>\r\n`, cached for the current second. */
export const dateHeader = (): string => {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`
  }
  return dateLine
}

const invalidValue = /[\r\n\0]/
const invalidName = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/

/** Thrown (as a defect) for a header that would split the response, as Node does. */
export class InvalidHeader extends Error {
  constructor(readonly header: string) {
    super(`invalid character in response header "${header}"`)
  }
}

/** Statuses whose responses never carry a body (RFC 9110 §6.4.1). */
export const bodyless = (status: number): boolean => status === 204 || status === 304 || (status >= 100 && status < 200)

/**
 * The response head up to (not including) the final CRLF and the connection headers: status line,
 * the response's headers and cookies, Date. Returns whether the headers carry a Content-Length.
 */
export const encodeHead = (
  response: ServerResponse.HttpServerResponse,
  headers: Record<string, string>
): string => {
  const status = response.status
  let s = `HTTP/1.1 ${status} ${response.statusText ?? STATUS_CODES[status] ?? "unknown"}\r\n`
  for (const name in headers) {
    const value = headers[name]!
    if (invalidName.test(name) || invalidValue.test(value)) throw new InvalidHeader(name)
    s += `${name}: ${value}\r\n`
  }
  if (!Cookies.isEmpty(response.cookies)) {
    for (const c of Cookies.toSetCookieHeaders(response.cookies)) {
      if (invalidValue.test(c)) throw new InvalidHeader("set-cookie")
      s += `set-cookie: ${c}\r\n`
    }
  }
  return s + dateHeader()
}

/** The bytes of `s` (latin-1), in a fresh buffer the connection may send from. */
export const bytes = (s: string): Uint8Array => Buffer.from(s, "latin1")

/**
 * Bodies up to this size go out in the same buffer as their head: the connection starts a send
 * for the first write at once, so a separate body write would cost a second send (and a second
 * completion) per response.
 */
export const coalesceMax = 8192

/** `head` (latin-1) followed by `body`, in one fresh buffer. */
export const headAndBody = (head: string, body: Uint8Array): Uint8Array => {
  const n = head.length
  const out = Buffer.allocUnsafe(n + body.length)
  out.write(head, 0, n, "latin1")
  out.set(body, n)
  return out
}

/** A minimal response for errors found before any app runs (400, 408, 413, 431, 500). */
export const simple = (status: number): Uint8Array =>
  bytes(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nConnection: close\r\n${dateHeader()}Content-Length: 0\r\n\r\n`)

const crlf = bytes("\r\n")
const lastChunk = bytes("0\r\n\r\n")

/** The framing around one chunk of a chunked body. */
export const chunkHeader = (size: number): Uint8Array => bytes(`${size.toString(16)}\r\n`)
export const chunkTrailer = crlf
export const chunkedEnd = lastChunk

/**
 * struct sockaddr encoding for AF_INET, AF_INET6 and AF_UNIX, written straight into the memory the
 * kernel reads (an op's argument area), so a connect needs no N-API call.
 */
import { isIPv4, isIPv6 } from "node:net"
import type { Address, UdpAddress } from "../Address.js"
import * as Addr from "../Address.js"

export const AF_UNIX = 1
export const AF_INET = 2
export const AF_INET6 = 10
export const SOCK_STREAM = 1
export const SOCK_DGRAM = 2
const UNIX_PATH_MAX = 108

const parseIPv4 = (host: string, out: Uint8Array, at: number): void => {
  const parts = host.split(".")
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i])
}

const parseIPv6 = (host: string, out: Uint8Array, at: number): void => {
  const zone = host.indexOf("%")
  if (zone >= 0) host = host.slice(0, zone)
  const groups: Array<number> = []
  let tail: Array<number> = []
  const embed = (s: string, into: Array<number>): void => {
    if (isIPv4(s)) {
      const b = s.split(".").map(Number)
      into.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!)
    } else if (s !== "") {
      into.push(parseInt(s, 16))
    }
  }
  const dbl = host.indexOf("::")
  if (dbl >= 0) {
    host.slice(0, dbl).split(":").forEach((s) => embed(s, groups))
    host.slice(dbl + 2).split(":").forEach((s) => embed(s, tail))
  } else {
    host.split(":").forEach((s) => embed(s, groups))
    tail = []
  }
  const all = [...groups, ...new Array(8 - groups.length - tail.length).fill(0), ...tail]
  for (let i = 0; i < 8; i++) {
    out[at + 2 * i] = all[i]! >> 8
    out[at + 2 * i + 1] = all[i]! & 0xff
  }
}

/**
 * Writes `address` as a sockaddr at `out[at..]`; returns its length. Callers check the address
 * first (`badUnixPath`, `badPort`, a numeric host): this runs between staging steps, where a
 * throw would leave a half-built op.
 */
export const encode = (address: Address | UdpAddress, out: Uint8Array, at = 0): number => {
  const view = new DataView(out.buffer, out.byteOffset + at)
  if (address._tag === "UnixAddress") {
    const path = Buffer.from(address.path)
    if (path.length >= UNIX_PATH_MAX) {
      throw new RangeError(`Unix socket path is ${path.length} bytes; the limit is ${UNIX_PATH_MAX - 1}`)
    }
    out.fill(0, at, at + 2 + path.length + 1)
    view.setUint16(0, AF_UNIX, true)
    out.set(path, at + 2)
    // Abstract sockets (leading NUL) are addressed by their exact length, without a terminator.
    return path[0] === 0 ? 2 + path.length : 2 + path.length + 1
  }
  if (address.family === 4) {
    out.fill(0, at, at + 16)
    view.setUint16(0, AF_INET, true)
    view.setUint16(2, address.port, false)
    parseIPv4(address.host, out, at + 4)
    return 16
  }
  out.fill(0, at, at + 28)
  view.setUint16(0, AF_INET6, true)
  view.setUint16(2, address.port, false)
  parseIPv6(address.host, out, at + 8)
  return 28
}

export const encodeToBytes = (address: Address | UdpAddress): Uint8Array => {
  const out = new Uint8Array(112)
  return out.subarray(0, encode(address, out))
}

const formatIPv6 = (b: Uint8Array): string => {
  const g: Array<number> = []
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!)
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`
  }
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1, bestLen = 0
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (best < 0) return hex.join(":")
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`
}

export const decode = (bytes: Uint8Array): Address => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const family = view.getUint16(0, true)
  if (family === AF_INET) {
    return Addr.tcp(`${bytes[4]}.${bytes[5]}.${bytes[6]}.${bytes[7]}`, view.getUint16(2, false), 4)
  }
  if (family === AF_INET6) {
    return Addr.tcp(formatIPv6(bytes.subarray(8, 24)), view.getUint16(2, false), 6)
  }
  if (family === AF_UNIX) {
    let end = bytes.length
    if (bytes[2] !== 0) {
      const nul = bytes.indexOf(0, 2)
      if (nul >= 0) end = nul
    }
    return Addr.unix(Buffer.from(bytes.subarray(2, end)).toString())
  }
  throw new RangeError(`unsupported address family ${family}`)
}

/** A numeric host of the right family, or undefined when `host` needs a DNS lookup. */
export const literal = (host: string, port: number): Address | undefined =>
  isIPv4(host) ? Addr.tcp(host, port, 4) : isIPv6(host) ? Addr.tcp(host, port, 6) : undefined

/**
 * The typed socket options of `Connection.getOption` / `setOption`: for each name, the
 * (level, optname) pair of <sys/socket.h> / <netinet/tcp.h> on Linux, how a value is checked and
 * encoded into the int the kernel takes, and how the kernel's int is decoded back.
 */
import { Duration } from "effect"
import type { SocketOptionInput, SocketOptions } from "../Connection.js"

export const SOL_SOCKET = 1
export const SO_SNDBUF = 7
export const SO_RCVBUF = 8
export const SO_KEEPALIVE = 9
export const IPPROTO_TCP = 6
export const TCP_NODELAY = 1
export const TCP_KEEPIDLE = 4

interface Codec<A, I = A> {
  readonly level: number
  readonly name: number
  /** The int for the kernel, or what is wrong with `value` (any run-time value), in words. */
  readonly encode: (value: I) => number | string
  readonly decode: (raw: number) => A
}

const flag = (level: number, name: number): Codec<boolean> => ({
  level,
  name,
  encode: (v) => (typeof v === "boolean" ? (v ? 1 : 0) : "must be a boolean"),
  decode: (raw) => raw !== 0
})

const bytes = (name: number): Codec<number> => ({
  level: SOL_SOCKET,
  name,
  encode: (v) => (Number.isInteger(v) && v > 0 && v <= 0x3fffffff ? v : "must be an integer number of bytes between 1 and 2^30-1"),
  decode: (raw) => raw
})

export const codecs: { readonly [K in keyof SocketOptions]: Codec<SocketOptions[K], SocketOptionInput[K]> } = {
  noDelay: flag(IPPROTO_TCP, TCP_NODELAY),
  keepAlive: flag(SOL_SOCKET, SO_KEEPALIVE),
  keepAliveIdle: {
    level: IPPROTO_TCP,
    name: TCP_KEEPIDLE,
    // The kernel counts whole seconds, 1..32767 (MAX_TCP_KEEPIDLE).
    encode: (v) => {
      const d = Duration.decodeUnknown(v)
      if (d._tag === "None" || !Duration.isFinite(d.value)) return "must be a finite duration"
      const s = Math.round(Duration.toSeconds(d.value))
      return s >= 1 && s <= 32767 ? s : "must be between 1 and 32767 seconds"
    },
    decode: (raw) => Duration.seconds(raw)
  },
  sendBufferSize: bytes(SO_SNDBUF),
  receiveBufferSize: bytes(SO_RCVBUF)
}

/** Whether `name` is one of the typed options (a caller may pass anything at run time). */
export const isOption = (name: unknown): name is keyof SocketOptions =>
  typeof name === "string" && Object.prototype.hasOwnProperty.call(codecs, name)

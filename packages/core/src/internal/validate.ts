/**
 * Argument checks run before anything is staged on the ring. Each returns why a value is wrong
 * (a phrase naming what was expected and what came), or undefined when it is fine; the callers
 * turn that into their own typed error (SocketError, ConnectError, ProcessError, SystemError).
 *
 * The rule: a value the TypeScript type admits but the kernel would misread (a port of 70000,
 * a path with a NUL byte that C would cut short) is a typed failure; a value of the wrong
 * JavaScript type where bytes are expected is a defect (TypeError), see `bytesOf`.
 */

/**
 * A short, bounded description of any value for an error message. It never throws: the value may
 * be hostile (a Proxy, a getter that throws), and the message must still be built.
 */
export const show = (value: unknown): string => {
  try {
    if (typeof value === "string") return JSON.stringify(value.length > 64 ? value.slice(0, 64) + "…" : value)
    if (typeof value === "number" || typeof value === "boolean") return String(value)
    if (typeof value === "bigint") return `${value}n`
    if (value === null) return "null"
    if (value === undefined) return "undefined"
    if (typeof value === "function") return "a function"
    if (typeof value === "symbol") return value.toString()
    // A tagged value (an Effect data type, a Connection.done/needMore lookalike) is named by its tag.
    if (Object.prototype.hasOwnProperty.call(value, "_tag")) {
      return `an object with _tag ${show((value as { _tag: unknown })._tag)}`
    }
    const name = (value as object).constructor?.name
    return typeof name === "string" && name !== "" && name !== "Object" ? `a ${name}` : "an object"
  } catch {
    return "an unprintable value"
  }
}

/** A TCP/UDP port: an integer 0..65535 (0 asks the kernel for a free one where that makes sense). */
export const badPort = (port: unknown): string | undefined =>
  typeof port === "number" && Number.isInteger(port) && port >= 0 && port <= 65535
    ? undefined
    : `must be an integer from 0 to 65535, got ${show(port)}`

/** A string the kernel reads as a C string: a NUL byte would silently cut it short. */
export const badCString = (value: unknown): string | undefined =>
  typeof value !== "string"
    ? `must be a string, got ${show(value)}`
    : value.includes("\0")
    ? `must not contain NUL bytes, got ${show(value)}`
    : undefined

/**
 * A Unix socket path: at most 107 bytes (sun_path holds 108 with the terminator). A path starting
 * with NUL names an abstract socket, addressed by its exact length, so NULs are allowed there.
 */
export const badUnixPath = (path: unknown): string | undefined => {
  if (typeof path !== "string") return `must be a string, got ${show(path)}`
  const abstract = path[0] === "\0"
  if (!abstract && path.includes("\0")) return `must not contain NUL bytes, got ${show(path)}`
  const bytes = Buffer.byteLength(path)
  const limit = abstract ? 108 : 107
  return bytes > limit ? `is ${bytes} bytes long; a Unix socket path holds at most ${limit}` : undefined
}

/** A count such as a backlog or a queue capacity: an integer from `min` up. */
export const badCount = (value: unknown, min: number): string | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= min
    ? undefined
    : `must be an integer of at least ${min}, got ${show(value)}`

/**
 * Bytes to send. A `Uint8Array` (a Node `Buffer` is one) is used as is: one `instanceof` check
 * on the hot path, no allocation. Any other `ArrayBufferView` (`DataView`, `Int32Array`, ...)
 * sends its exact bytes, through a `Uint8Array` over the same memory. Anything else is a
 * programming error: a `TypeError` naming the operation's argument (callers make it a defect, or
 * throw it from non-Effect APIs), raised before anything is queued.
 */
export const bytesOf = (value: unknown, where: string): Uint8Array => {
  if (value instanceof Uint8Array) return value
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  throw notBytes(value, where)
}

export const notBytes = (value: unknown, where: string): TypeError =>
  new TypeError(`${where} must be a Uint8Array or another ArrayBufferView, got ${show(value)}`)

/**
 * TCP on the ring.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import { type ConnectOptions, Ringline } from "./Ringline.js"
import { type ConnectError, invalidConnect, type SocketError } from "./RinglineError.js"
import { show } from "./internal/validate.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /** Numeric address or host name; default `127.0.0.1`. */
  readonly host?: string
  /** 0 (default) picks a free port; read it from `listener.address`. */
  readonly port?: number
  readonly backlog?: number
  readonly reusePort?: boolean
}

/**
 * Listens on a TCP port. The listener (and every connection it accepted) closes with the scope.
 * A port outside 0..65535, a host with a NUL byte or a negative backlog fails with `SocketError`
 * (`EINVAL`, `argument` naming it) before anything is created.
 *
 * @example
 * ```ts
 * const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
 * yield* listener.serve((conn) => conn.stream.pipe(Stream.run(conn.sink)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (options: ListenOptions = {}): Effect.Effect<Listener, SocketError, Ringline | Scope.Scope> =>
  Effect.flatMap(Ringline, (r) => r.listen({ _tag: "Tcp", ...options }))

/**
 * Connects to `host:port` (a string such as `"127.0.0.1:80"` or `"[::1]:80"`, or an object). Host
 * names are resolved first. The connection closes with the scope. A malformed target, a port
 * outside 0..65535 or a host with a NUL byte fails with `ConnectError` (reason
 * `InvalidArgument`, naming the argument) before anything is submitted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  target: string | { readonly host: string; readonly port: number },
  options?: ConnectOptions
): Effect.Effect<Connection, ConnectError, Ringline | Scope.Scope> =>
  Effect.flatMap(Ringline, (r) =>
    Effect.flatMap(parseTarget(target), (t) => r.connect(t, options))
  )

/**
 * `"host:port"` / `"[v6]:port"` into `{ host, port }`. What is wrong with a malformed string is
 * said in the error (`InvalidArgument`); the port's range is checked by the connect itself.
 */
const parseTarget = (target: string | { readonly host: string; readonly port: number }) => {
  if (typeof target !== "string") return Effect.succeed(target)
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(target) ?? /^([^:[\]]*):([^:]*)$/.exec(target)
  if (m === null) {
    return Effect.fail(invalidConnect(
      show(target),
      "target",
      `must be "host:port" or "[ipv6]:port", got ${show(target)}${target.includes(":") ? "" : " (no port)"}`
    ))
  }
  if (!/^\d{1,5}$/.test(m[2]!)) {
    return Effect.fail(invalidConnect(show(target), "port", `must be an integer from 0 to 65535, got ${show(m[2])}`))
  }
  return Effect.succeed({ host: m[1]!, port: Number(m[2]) })
}

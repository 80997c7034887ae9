/**
 * TCP on the ring.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import { type ConnectOptions, Ringline, type TcpListenOptions, type TcpTarget } from "./Ringline.js"
import { type ConnectError, invalidConnect, type SocketError } from "./RinglineError.js"
import { show } from "./internal/validate.js"

/**
 * The options of {@link listen}: `Ringline.TcpListenOptions` under its old name.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenOptions = TcpListenOptions

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
export const listen = (options: TcpListenOptions = {}): Effect.Effect<Listener, SocketError, Ringline | Scope.Scope> =>
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
  target: string | TcpTarget,
  options?: ConnectOptions
): Effect.Effect<Connection, ConnectError, Ringline | Scope.Scope> =>
  Effect.flatMap(Ringline, (r) =>
    Effect.flatMap(parseTarget(target), (t) => r.connect(t, options))
  )

/**
 * `"host:port"` / `"[v6]:port"` into `{ host, port }`. What is wrong with a malformed string is
 * said in the error (`InvalidArgument`); the port's range is checked by the connect itself.
 */
const parseTarget = (target: string | TcpTarget): Effect.Effect<TcpTarget, ConnectError> => {
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

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
import { ConnectError, type SocketError } from "./RinglineError.js"

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
 * names are resolved first. The connection closes with the scope.
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

const parseTarget = (target: string | { readonly host: string; readonly port: number }) => {
  if (typeof target !== "string") return Effect.succeed(target)
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(target) ?? /^([^:]+):(\d+)$/.exec(target)
  return m === null
    ? Effect.fail(new ConnectError({ reason: "Other", address: target, errno: 22, code: "EINVAL" }))
    : Effect.succeed({ host: m[1]!, port: Number(m[2]) })
}

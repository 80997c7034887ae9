/**
 * Unix-domain stream sockets on the ring.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Addr from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import { type ConnectOptions, Ringline, type UnixListenOptions } from "./Ringline.js"
import type { ConnectError, SocketError } from "./RinglineError.js"

/**
 * The options of {@link listen} (`Ringline.UnixListenOptions`).
 *
 * @since 0.2.0
 * @category models
 */
export type ListenOptions = UnixListenOptions

/**
 * Listens on a Unix socket path. A stale socket file at `path` is removed first (a regular file
 * is not: that fails with EADDRINUSE); the file is removed again when the listener closes.
 * A path longer than 107 bytes or with a NUL byte (other than the leading one of an abstract
 * socket name) fails with `SocketError` (`EINVAL`, argument `path`) before anything is created.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (options: UnixListenOptions): Effect.Effect<Listener, SocketError, Ringline | Scope.Scope> =>
  Effect.flatMap(Ringline, (r) => r.listen({ _tag: "Unix", ...options }))

/**
 * Connects to the Unix socket at `path`. A path longer than 107 bytes or with a NUL byte (other
 * than an abstract name's leading one) fails with `ConnectError` (reason `InvalidArgument`)
 * before anything is submitted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (path: string, options?: ConnectOptions): Effect.Effect<Connection, ConnectError, Ringline | Scope.Scope> =>
  Effect.flatMap(Ringline, (r) => r.connect(Addr.unix(path), options))

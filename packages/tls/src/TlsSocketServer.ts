/**
 * `@effect/platform`'s `SocketServer` over TLS: platform code (e.g. anything written against
 * `SocketServer.SocketServer`) serves TLS unchanged; each `Socket` carries plaintext.
 *
 * @since 0.1.0
 */
import * as SocketServer from "@effect/platform/SocketServer"
import type { Ringline } from "@ringline/core"
import { RinglineSocketServer } from "@ringline/core"
import { Effect, Layer, type Scope } from "effect"
import * as Tls from "./Tls.js"

/**
 * A `SocketServer` whose connections completed a TLS handshake (see `Tls.listen` for the options).
 * Handshake failures never reach `run`'s handler.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Tls.ListenOptions
): Effect.Effect<SocketServer.SocketServer["Type"], SocketServer.SocketServerError, Ringline.Ringline | Scope.Scope> =>
  Effect.map(
    Effect.mapError(Tls.listen(options), (cause) => new SocketServer.SocketServerError({ reason: "Open", cause })),
    RinglineSocketServer.fromListener
  )

/**
 * @example
 * ```ts
 * const Live = TlsSocketServer.layer({ port: 8443, cert, key }).pipe(Layer.provide(Ringline.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Tls.ListenOptions
): Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError, Ringline.Ringline> =>
  Layer.scoped(SocketServer.SocketServer, make(options))

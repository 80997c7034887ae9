/**
 * An `@effect/platform` `HttpServer` on the ring: HTTP/1.1 parsed by llhttp inside the addon (one
 * native call per received chunk), requests handed to the app as a cheap `HttpServerRequest`,
 * responses written straight to the connection's send queue. Apps written for
 * `NodeHttpServer.layer` run unchanged by swapping the Layer.
 *
 * @since 0.1.0
 */
import type * as Etag from "@effect/platform/Etag"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as Platform from "@effect/platform/HttpPlatform"
import * as Server from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import type * as Path from "@effect/platform/Path"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type { Listener } from "@ringline/core"
import { Ringline } from "@ringline/core"
import type { Tls } from "@ringline/tls"
import type { RinglineConfigError, RinglineUnavailable } from "@ringline/core/RinglineError"
import type { Effect, Scope } from "effect"
import { Layer } from "effect"
import * as internal from "./internal/server.js"

/**
 * Options of {@link layer}. Every limit has Node's default unless said otherwise.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Address to bind; default `0.0.0.0`. */
  readonly host?: string | undefined
  /** 0 (default) picks a free port: read it from `HttpServer.address`. */
  readonly port?: number | undefined
  readonly backlog?: number | undefined
  readonly reusePort?: boolean | undefined
  /** Bytes of a request line plus header section; beyond it: 431. Default 16384 (Node's). */
  readonly maxHeaderSize?: number | undefined
  /** Header fields per request; beyond it: 431. Default 256. */
  readonly maxHeaders?: number | undefined
  /**
   * Bytes of a request body; a larger Content-Length is answered 413 before the app runs, and a
   * chunked body that grows past it fails the body read and is answered 413. Default: the
   * `HttpIncomingMessage.MaxBodySize` in the Layer's context, else 10 MiB (as NodeHttpServer).
   */
  readonly maxBodySize?: number | undefined
  /** Parsed requests waiting for their turn before the connection stops reading. Default 32. */
  readonly maxPipelined?: number | undefined
  /** Time allowed for a request head (slowloris bound); answered 408. Default 60 s. */
  readonly headersTimeout?: import("effect").Duration.DurationInput | undefined
  /** Idle time after which a keep-alive connection is closed. Default 5 s. */
  readonly keepAliveTimeout?: import("effect").Duration.DurationInput | undefined
  /**
   * Time allowed for a request body to arrive, from the end of its head (a slow or stalled upload).
   * When it runs out: 408 if that request was not answered yet, the handler interrupted (its body
   * read fails), the connection closed. Default 300 s (Node's `requestTimeout`).
   */
  readonly bodyTimeout?: import("effect").Duration.DurationInput | undefined
  /** On release: how long in-flight requests may take before they are interrupted. Default 10 s. */
  readonly shutdownTimeout?: import("effect").Duration.DurationInput | undefined
  /** Look up each connection's peer for `request.remoteAddress` (one extra op per connection). Default true. */
  readonly remoteAddress?: boolean | undefined
  /**
   * Serve HTTPS: certificate, key and the other `Tls.ServerOptions` of `@ringline/tls` (SNI,
   * client certificates, session tickets...). ALPN offers `http/1.1` unless `alpn` is given.
   * Not with `reusePort`.
   */
  readonly tls?: Tls.ServerOptions | undefined
  /**
   * Serve the connections of this listener instead of binding one, e.g. a worker's share of a
   * `RinglineWorkers` set's port: `listen: (yield* RinglineWorkers.WorkerContext).listen` (its
   * own SO_REUSEPORT socket, or the connections the acceptor hands it). Acquired when the Layer
   * is built, in the server's scope. Not with `host`, `port`, `backlog`, `reusePort` or `tls`.
   */
  readonly listen?: Effect.Effect<Listener.Listener, unknown, Ringline.Ringline | Scope.Scope> | undefined
}

/**
 * The `HttpServer` alone (listening when the Layer is built), on the ring of the `Ringline` in
 * context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Server.HttpServer, HttpServerError.ServeError, Ringline.Ringline | Scope.Scope> = internal.make

/**
 * `HttpServer.HttpServer` only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (options: Options): Layer.Layer<Server.HttpServer, HttpServerError.ServeError, Ringline.Ringline> =>
  Layer.scoped(Server.HttpServer, internal.make(options))

/**
 * What `NodeHttpServer.layerContext` provides to apps, on the ring: `HttpPlatform` (file responses
 * read through `RinglineFileSystem`), `Etag.Generator` (weak), `FileSystem` (`RinglineFileSystem`)
 * and `Path`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerContext: Layer.Layer<
  Platform.HttpPlatform | Etag.Generator | FileSystem.FileSystem | Path.Path,
  never,
  Ringline.Ringline
> = internal.layerContext

/**
 * The drop-in for `NodeHttpServer.layer`: the `HttpServer` plus {@link layerContext}. Needs a
 * `Ringline` (e.g. `Layer.provide(Ringline.layer())`).
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 * import { Ringline } from "@ringline/core"
 * import { RinglineHttpServer } from "@ringline/http"
 * import { Layer } from "effect"
 *
 * const app = HttpRouter.empty.pipe(HttpRouter.get("/", HttpServerResponse.text("Hello, World!")))
 *
 * HttpServer.serve(app).pipe(
 *   Layer.provide(RinglineHttpServer.layer({ port: 3000 })),
 *   Layer.provide(Ringline.layer()),
 *   Layer.launch,
 *   Ringline.runMain
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Server.HttpServer | Platform.HttpPlatform | Etag.Generator | FileSystem.FileSystem | Path.Path,
  HttpServerError.ServeError,
  Ringline.Ringline
> => Layer.mergeAll(layerServer(options), layerContext)

/**
 * Like `NodeHttpServer.layerTest`: the server on a free port of 127.0.0.1 on its own ring, and an
 * `HttpClient` whose relative URLs go to it (`HttpClient.get("/")`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest: Layer.Layer<
  Server.HttpServer | Platform.HttpPlatform | Etag.Generator | FileSystem.FileSystem | Path.Path | HttpClient.HttpClient,
  HttpServerError.ServeError | RinglineUnavailable | RinglineConfigError
> = Server.layerTestClient.pipe(
  Layer.provide(FetchHttpClient.layer),
  Layer.provideMerge(layer({ host: "127.0.0.1", port: 0 })),
  Layer.provide(Ringline.layer())
)

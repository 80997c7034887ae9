/**
 * The server: a ringline listener, an accept loop started by `serve`, one fiber per connection,
 * and graceful shutdown (stop accepting, close idle keep-alive connections at once, let in-flight
 * requests finish within the shutdown timeout, then interrupt what is left).
 */
import * as Etag from "@effect/platform/Etag"
import * as FileSystem from "@effect/platform/FileSystem"
import * as App from "@effect/platform/HttpApp"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import type * as Middleware from "@effect/platform/HttpMiddleware"
import * as Platform from "@effect/platform/HttpPlatform"
import * as Server from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as ServerResponse from "@effect/platform/HttpServerResponse"
import * as Path from "@effect/platform/Path"
import { Address, type Listener, type Ringline, Tcp } from "@ringline/core"
import { Tls } from "@ringline/tls"
import type { Connection } from "@ringline/core/Connection"
import { RinglineFileSystem } from "@ringline/storage"
import { Duration, Effect, Either, Exit, FiberSet, Layer, Option, Scope, Stream } from "effect"
import { ExecutionStrategy } from "effect"
import Mime from "mime"
import { handleResponse, handleResponseNow, HttpConnection, type Limits } from "./connection.js"
import { makeHandler } from "./handled.js"

/** Options of `RinglineHttpServer.layer` (see the public module for the documentation). */
export interface ServerOptions {
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly backlog?: number | undefined
  readonly reusePort?: boolean | undefined
  readonly maxHeaderSize?: number | undefined
  readonly maxHeaders?: number | undefined
  readonly maxBodySize?: number | undefined
  readonly maxPipelined?: number | undefined
  readonly headersTimeout?: Duration.DurationInput | undefined
  readonly keepAliveTimeout?: Duration.DurationInput | undefined
  readonly bodyTimeout?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  readonly remoteAddress?: boolean | undefined
  readonly tls?: Tls.ServerOptions | undefined
  readonly listen?: Effect.Effect<Listener.Listener, unknown, Ringline.Ringline | Scope.Scope> | undefined
}

/** A bad option: names the field and its rule. */
export class ServerOptionError extends Error {
  constructor(readonly field: string, rule: string) {
    super(`invalid RinglineHttpServer option: ${field}: ${rule}`)
  }
}

const positiveInt = (field: string, value: number | undefined, fallback: number, max = 2 ** 31 - 1): number => {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1 || value > max) throw new ServerOptionError(field, `must be an integer in 1..${max}, got ${String(value)}`)
  return value
}

const millis = (field: string, value: Duration.DurationInput | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  const d = Duration.decodeUnknown(value)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0) {
    throw new ServerOptionError(field, `must be a positive finite duration, got ${String(value)}`)
  }
  return Duration.toMillis(d.value)
}

/** Validated limits, or the first bad field. */
export const resolveOptions = (options: ServerOptions, maxBodyFromContext: number | undefined) =>
  Effect.try({
    try: () => {
      if (options.tls !== undefined && (typeof options.tls !== "object" || options.tls === null)) {
        // (null reached Tls.listen's option spread and died there: "Cannot read properties of null")
        throw new ServerOptionError("tls", `must be an object of Tls.ServerOptions, got ${String(options.tls)}`)
      }
      if (options.tls !== undefined && options.reusePort !== undefined) {
        throw new ServerOptionError("reusePort", "is not available with tls (the TLS listener binds its own socket)")
      }
      if (options.listen !== undefined) {
        if (!Effect.isEffect(options.listen)) throw new ServerOptionError("listen", "must be an Effect giving a Listener")
        // The listener is bound already: options that say how to bind it would be ignored.
        for (const field of ["host", "port", "backlog", "reusePort", "tls"] as const) {
          if (options[field] !== undefined) throw new ServerOptionError(field, "is not available with listen (the listener is bound already)")
        }
      }
      if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) {
        throw new ServerOptionError("port", `must be an integer in 0..65535, got ${String(options.port)}`)
      }
      const limits: Limits & { shutdownTimeoutMs: number } = {
        maxHeaderSize: positiveInt("maxHeaderSize", options.maxHeaderSize, 16384),
        maxHeaders: positiveInt("maxHeaders", options.maxHeaders, 256, 4096),
        maxBodySize: options.maxBodySize === undefined
          ? maxBodyFromContext ?? 10 * 1024 * 1024
          : positiveInt("maxBodySize", options.maxBodySize, 0, Number.MAX_SAFE_INTEGER),
        maxPipelined: positiveInt("maxPipelined", options.maxPipelined, 32, 1024),
        bodyHighWater: 65536,
        headersTimeoutMs: millis("headersTimeout", options.headersTimeout, 60_000),
        keepAliveTimeoutMs: millis("keepAliveTimeout", options.keepAliveTimeout, 5_000),
        bodyTimeoutMs: millis("bodyTimeout", options.bodyTimeout, 300_000),
        shutdownTimeoutMs: millis("shutdownTimeout", options.shutdownTimeout, 10_000)
      }
      return limits
    },
    catch: (e) => e instanceof ServerOptionError ? e : new ServerOptionError("options", String(e))
  })

/** @internal */
export const make = (
  options: ServerOptions
): Effect.Effect<Server.HttpServer, HttpServerError.ServeError, Ringline.Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const maxBody = Option.getOrUndefined(yield* IncomingMessage.MaxBodySize)
    const limits = yield* Effect.mapError(
      resolveOptions(options, maxBody === undefined ? undefined : Number(maxBody)),
      (cause) => new HttpServerError.ServeError({ cause })
    )
    const scope = yield* Effect.scope
    // The listener has its own scope so that shutdown can stop accepting before connections end.
    const listenerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const bind = {
      host: options.host ?? "0.0.0.0",
      port: options.port ?? 0,
      ...(options.backlog !== undefined ? { backlog: options.backlog } : {})
    }
    // HTTPS: the TLS listener hands over connections after their handshake; ALPN offers
    // http/1.1 unless the options say otherwise (HTTP/2 is not served).
    const listen: Effect.Effect<Listener.Listener, unknown, Ringline.Ringline | Scope.Scope> = options.listen !== undefined
      ? options.listen
      : options.tls !== undefined
      ? Tls.listen({ ...options.tls, alpn: options.tls.alpn ?? ["http/1.1"], ...bind })
      : Tcp.listen({ ...bind, ...(options.reusePort !== undefined ? { reusePort: options.reusePort } : {}) })
    const listener = yield* listen.pipe(
      Scope.extend(listenerScope),
      Effect.mapError((cause) => new HttpServerError.ServeError({ cause }))
    )
    const address = listener.address
    const wantRemote = options.remoteAddress !== false

    const serve = (httpApp: App.Default<unknown>, middleware?: Middleware.HttpMiddleware) =>
      Effect.gen(function*() {
        const handler = makeHandler(httpApp, handleResponse, handleResponseNow, middleware)
        const fibers = yield* FiberSet.make<void, never>()
        const connections = new Set<HttpConnection>()

        const handle = (conn: Connection) =>
          Effect.gen(function*() {
            let remote: string | undefined
            if (wantRemote) {
              const peer = yield* Effect.either(conn.peerAddress)
              if (Either.isRight(peer) && peer.right._tag === "TcpAddress") remote = peer.right.host
            }
            const http = new HttpConnection(conn, limits, remote)
            connections.add(http)
            yield* Effect.ensuring(http.serve(handler), Effect.sync(() => connections.delete(http)))
          })

        const acceptOne = Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const connScope = yield* Scope.make()
            const conn = yield* restore(Scope.extend(listener.accept, connScope)).pipe(
              Effect.onError(() => Scope.close(connScope, Exit.void))
            )
            // The fiber would inherit this region's uninterruptibility: it must stay interruptible
            // (client aborts, shutdown).
            yield* FiberSet.run(
              fibers,
              Effect.ensuring(Effect.interruptible(handle(conn)), Scope.close(connScope, Exit.void))
            )
          })
        )
        yield* Effect.forkScoped(Effect.ignore(Effect.forever(acceptOne)))

        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            yield* Scope.close(listenerScope, Exit.void)
            for (const c of connections) c.shutdown()
            yield* Effect.timeoutOption(FiberSet.awaitEmpty(fibers), limits.shutdownTimeoutMs)
          })
        )
      })

    return Server.make({
      address: address._tag === "TcpAddress"
        ? { _tag: "TcpAddress", hostname: address.host, port: address.port }
        : { _tag: "UnixAddress", path: address.path },
      serve
    })
  })

/**
 * File responses read through the ring (RinglineFileSystem), typed by extension as Node's are.
 * Unlike NodeHttpPlatform, a range is exact: Node passes the exclusive end to createReadStream,
 * whose `end` is inclusive, and sends one byte more than its Content-Length.
 */
export const platform = Layer.effect(
  Platform.HttpPlatform,
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Platform.make({
      fileResponse(path, status, statusText, headers, start, end, contentLength) {
        return ServerResponse.stream(
          fs.stream(path, { offset: start, ...(end !== undefined ? { bytesToRead: end - start } : {}) }),
          {
            contentLength,
            headers: { ...headers, "content-type": headers["content-type"] ?? Mime.getType(path) ?? "application/octet-stream" },
            status,
            ...(statusText !== undefined ? { statusText } : {})
          }
        )
      },
      fileWebResponse(file, status, statusText, headers) {
        return ServerResponse.stream(
          Stream.fromReadableStream(() => file.stream() as ReadableStream<Uint8Array>, (e) => e),
          {
            headers: {
              ...headers,
              "content-type": headers["content-type"] ?? Mime.getType(file.name) ?? "application/octet-stream",
              "content-length": file.size.toString()
            },
            status,
            ...(statusText !== undefined ? { statusText } : {})
          }
        )
      }
    }))
).pipe(
  // As NodeHttpPlatform: file responses carry strong ETags whatever Generator the app has.
  Layer.provide(Etag.layer)
)

/** What `NodeHttpServer.layerContext` gives apps, on the ring. */
export const layerContext: Layer.Layer<
  Platform.HttpPlatform | Etag.Generator | FileSystem.FileSystem | Path.Path,
  never,
  Ringline.Ringline
> = Layer.mergeAll(platform, Path.layer).pipe(
  Layer.provideMerge(Etag.layerWeak),
  Layer.provideMerge(RinglineFileSystem.layer)
)

/** Address of a server as a URL base (for layerTest). */
export const formatAddress = (a: Server.Address): string =>
  a._tag === "UnixAddress" ? a.path : Address.format(Address.tcp(a.hostname === "0.0.0.0" ? "127.0.0.1" : a.hostname, a.port))

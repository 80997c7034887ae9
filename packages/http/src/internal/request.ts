/**
 * The `HttpServerRequest` of one request on a ringline connection: cheap to create (method and URL
 * decoded, headers decoded on first use), body read from the connection on demand.
 */
import * as Cookies from "@effect/platform/Cookies"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Headers from "@effect/platform/Headers"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import * as Error from "@effect/platform/HttpServerError"
import * as ServerRequest from "@effect/platform/HttpServerRequest"
import * as Multipart from "@effect/platform/Multipart"
import type * as Path from "@effect/platform/Path"
import type * as Socket from "@effect/platform/Socket"
import * as UrlParams from "@effect/platform/UrlParams"
import { Effect, Inspectable, Option, Stream } from "effect"
import type { Scope } from "effect"
import type { Exchange } from "./exchange.js"

const decoder = new TextDecoder()

/**
 * The body Streams handed out, by exchange: a response whose body is one of them, untransformed
 * (`HttpServerResponse.stream(request.stream)`), is written by pumping the exchange's chunks
 * straight to the connection (see connection.ts) instead of running the Stream per chunk.
 */
export const bodyStreams = new WeakMap<object, RinglineServerRequest>()

/** @internal */
export class RinglineServerRequest extends Inspectable.Class implements ServerRequest.HttpServerRequest {
  readonly [ServerRequest.TypeId]: ServerRequest.TypeId = ServerRequest.TypeId
  readonly [IncomingMessage.TypeId]: IncomingMessage.TypeId = IncomingMessage.TypeId

  constructor(
    readonly exchange: Exchange,
    readonly url: string,
    private headersOverride?: Headers.Headers,
    private remoteAddressOverride?: string
  ) {
    super()
  }

  get source(): Exchange {
    return this.exchange
  }

  get method(): HttpMethod {
    return this.exchange.head.method as HttpMethod
  }

  get originalUrl(): string {
    return this.exchange.head.url
  }

  get headers(): Headers.Headers {
    this.headersOverride ??= Headers.unsafeFromRecord(this.exchange.head.decodeHeaders())
    return this.headersOverride
  }

  private cachedCookies: Record<string, string> | undefined
  get cookies(): Record<string, string> {
    return this.cachedCookies ??= Cookies.parseHeader(this.headers.cookie ?? "")
  }

  get remoteAddress(): Option.Option<string> {
    return this.remoteAddressOverride !== undefined
      ? Option.some(this.remoteAddressOverride)
      : Option.fromNullable(this.exchange.remoteAddress)
  }

  modify(options: {
    readonly url?: string | undefined
    readonly headers?: Headers.Headers | undefined
    readonly remoteAddress?: string | undefined
  }): ServerRequest.HttpServerRequest {
    return new RinglineServerRequest(
      this.exchange,
      options.url ?? this.url,
      options.headers ?? this.headersOverride,
      options.remoteAddress ?? this.remoteAddressOverride
    )
  }

  private decodeErrorFn: ((cause: unknown) => Error.RequestError) | undefined = undefined
  /** A body read failure as the body Stream reports it (built on first use: most requests have none). */
  get decodeError(): (cause: unknown) => Error.RequestError {
    return this.decodeErrorFn ??= (cause) => new Error.RequestError({ request: this, reason: "Decode", cause })
  }

  /** The body as it arrives (each chunk an owned copy), with the connection's backpressure. */
  get stream(): Stream.Stream<Uint8Array, Error.RequestError> {
    const stream = Stream.repeatEffectOption(
      Effect.mapError(this.exchange.pull, (e) => Option.map(e, this.decodeError))
    )
    bodyStreams.set(stream, this)
    return stream
  }

  private bytesEffect: Effect.Effect<Uint8Array, Error.RequestError> | undefined
  /** The whole body, at most `HttpIncomingMessage.MaxBodySize` bytes (cached: read once). */
  private get bytes(): Effect.Effect<Uint8Array, Error.RequestError> {
    return this.bytesEffect ??= Effect.runSync(Effect.cached(
      Effect.flatMap(IncomingMessage.MaxBodySize, (max) =>
        Effect.mapError(
          this.exchange.readAll(Option.isSome(max) ? Number(max.value) : undefined),
          this.decodeError
        ))
    ))
  }

  get text(): Effect.Effect<string, Error.RequestError> {
    return Effect.map(this.bytes, (b) => decoder.decode(b))
  }

  get json(): Effect.Effect<unknown, Error.RequestError> {
    return Effect.tryMap(this.text, {
      try: (s) => s === "" ? null : JSON.parse(s) as unknown,
      catch: this.decodeError
    })
  }

  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, Error.RequestError> {
    return Effect.flatMap(this.text, (s) =>
      Effect.try({ try: () => UrlParams.fromInput(new URLSearchParams(s)), catch: this.decodeError }))
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, Error.RequestError> {
    return Effect.map(this.bytes, (b) =>
      b.byteOffset === 0 && b.byteLength === b.buffer.byteLength
        ? b.buffer as ArrayBuffer
        : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer)
  }

  private multipartEffect:
    | Effect.Effect<Multipart.Persisted, Multipart.MultipartError, Scope.Scope | FileSystem.FileSystem | Path.Path>
    | undefined
  get multipart(): Effect.Effect<
    Multipart.Persisted,
    Multipart.MultipartError,
    Scope.Scope | FileSystem.FileSystem | Path.Path
  > {
    return this.multipartEffect ??= Effect.runSync(Effect.cached(Multipart.toPersisted(this.multipartStream)))
  }

  get multipartStream(): Stream.Stream<Multipart.Part, Multipart.MultipartError> {
    return Stream.pipeThroughChannel(
      Stream.mapError(this.stream, (cause) => new Multipart.MultipartError({ reason: "InternalError", cause })),
      Multipart.makeChannel(this.headers)
    )
  }

  get upgrade(): Effect.Effect<Socket.Socket, Error.RequestError> {
    return this.exchange.upgrade(this)
  }

  override toString(): string {
    return `ServerRequest(${this.method} ${this.url})`
  }

  override toJSON(): unknown {
    return IncomingMessage.inspect(this, {
      _id: "@effect/platform/HttpServerRequest",
      method: this.method,
      url: this.originalUrl
    })
  }
}

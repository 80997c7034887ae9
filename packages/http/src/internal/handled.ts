/**
 * The per-request pipeline of `HttpApp.toHandled` (request Scope, the `HttpMiddleware.tracer`
 * server span, failures turned into responses, pre-response handlers, the serve middleware),
 * fused so that a request costs few fiber steps.
 *
 * Why not `toHandled` itself: under it every layer provides its own service (the Scope, the
 * request, the parent span) with its own `locally`, and each one copies the fiber's context and
 * FiberRefs twice and wraps the rest in `acquireUseRelease`; measured here that was ~3/4 of the CPU
 * a `GET /` spent in JS outside the app. This module switches the context once per request (request,
 * Scope and span together) and back once at the end. What the app, the middleware, the pre-response
 * handlers and a tracer can observe is the same as under `toHandled` + NodeHttpServer: the span's
 * name, kind, parent (from trace headers), attributes and exit, `Scope` closed with the request's
 * exit unless ejected (`HttpApp.ejectDefaultScopeClose`), the `handled` mark on the request, the
 * uninterruptible region around the app (routes make their handlers interruptible). The
 * conformance test compares spans and responses with NodeHttpServer's.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpApp from "@effect/platform/HttpApp"
import * as Middleware from "@effect/platform/HttpMiddleware"
import * as ServerError from "@effect/platform/HttpServerError"
import * as ServerRequest from "@effect/platform/HttpServerRequest"
import * as ServerResponse from "@effect/platform/HttpServerResponse"
import * as TraceContext from "@effect/platform/HttpTraceContext"
import { Cause, Context, Effect, FiberRef, GlobalValue, Option, Scope, Tracer } from "effect"

/** The platform's marks, shared through global symbols/values (same keys as @effect/platform/HttpApp). */
const handledSymbol = Symbol.for("@effect/platform/HttpApp/handled")
const ejectedScopes = GlobalValue.globalValue(
  "@effect/platform/HttpApp/ejectedScopes",
  () => new WeakSet<Scope.Scope>()
)

type Respond = (
  request: ServerRequest.HttpServerRequest,
  response: ServerResponse.HttpServerResponse
) => Effect.Effect<unknown, unknown>

const currentRequest = (fiber: { readonly currentContext: Context.Context<never> }) =>
  Context.unsafeGet(fiber.currentContext as Context.Context<ServerRequest.HttpServerRequest>, ServerRequest.HttpServerRequest)

const markHandled = (request: ServerRequest.HttpServerRequest): void => {
  ;(request as unknown as Record<symbol, boolean>)[handledSymbol] = true
}

type AnyApp = Effect.Effect<ServerResponse.HttpServerResponse, unknown, any>
type Middleware = (app: HttpApp.Default<any, any>) => HttpApp.Default<any, any>

/**
 * What `toHandled` runs inside its tracer: the app, its response handed to `handleResponse` (after
 * the pre-response handlers), a failure turned into its response first, all under the serve
 * middleware. Built once per `serve`; the same steps as the platform's.
 */
const handledApp = (app: AnyApp, handleResponse: Respond, middleware: Middleware | undefined): AnyApp => {
  const respond = (request: ServerRequest.HttpServerRequest, response: ServerResponse.HttpServerResponse) =>
    Effect.withFiberRuntime<ServerResponse.HttpServerResponse, unknown>((fiber) => {
      const handler = fiber.getFiberRef(HttpApp.currentPreResponseHandlers)
      if (handler._tag === "None") {
        markHandled(request)
        return Effect.as(handleResponse(request, response), response)
      }
      return Effect.tap(handler.value(request, response), (response) => {
        markHandled(request)
        return handleResponse(request, response)
      })
    })
  const responded = Effect.withFiberRuntime<ServerResponse.HttpServerResponse, unknown, any>((fiber) =>
    Effect.flatMap(app, (response) => respond(currentRequest(fiber), response))
  )
  const withErrorHandling = Effect.catchAllCause(responded, (cause) =>
    Effect.withFiberRuntime<ServerResponse.HttpServerResponse, unknown>((fiber) =>
      Effect.flatMap(ServerError.causeResponse(cause), ([response, cause]) =>
        Effect.zipRight(
          respond(currentRequest(fiber), response),
          Cause.isEmptyType(cause) ? Effect.succeed(response) : Effect.failCause(cause)
        ))
    ))
  return middleware === undefined ? withErrorHandling : middleware(withErrorHandling as HttpApp.Default<any, any>)
}

/** With a serve middleware, what `toHandled` does after its tracer: answer what nobody answered. */
const afterMiddleware = (handleResponse: Respond) => ({
  onFailure: (cause: Cause.Cause<unknown>) =>
    Effect.withFiberRuntime<unknown, unknown>((fiber) => {
      const request = currentRequest(fiber)
      if (handledSymbol in request) return Effect.void
      return Effect.matchCauseEffect(ServerError.causeResponse(cause), {
        onFailure: () => handleResponse(request, ServerResponse.empty({ status: 500 })),
        onSuccess: ([response]) => handleResponse(request, response)
      })
    }),
  onSuccess: (response: ServerResponse.HttpServerResponse) =>
    Effect.withFiberRuntime<unknown, unknown>((fiber) => {
      const request = currentRequest(fiber)
      return handledSymbol in request ? Effect.void : handleResponse(request, response)
    })
})

/** The URL attributes of the server span. */
export interface UrlParts {
  readonly full: string
  readonly path: string
  readonly query: string
  readonly scheme: string
}

// A target and a Host that the WHATWG URL parser leaves as they are (no percent-encoding, no dot
// segments, no scheme-relative "//", no default port, no IPv4 number forms, no case change): then the attributes are plain
// string pieces and `new URL` (a visible share of a small request's CPU) is not needed.
const plainTarget = /^\/(?!\/)[A-Za-z0-9\-._~!$&()*+,;=:@/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*)?$/
const plainHost = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::[1-9][0-9]{0,4})?$/
const dottedQuad = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?::|$)/

// The last plain URL's parts: a server answering the same target and Host again (most of its
// traffic, for a busy endpoint) skips the tests and the string building. Immutable, so sharing
// one object between requests is safe.
let lastTarget = ""
let lastHost = ""
let lastParts: UrlParts | undefined = undefined

/** What `HttpServerRequest.toURL` gives the tracer (userinfo redacted), without `new URL` when the URL is plain. */
export const urlParts = (request: ServerRequest.HttpServerRequest): UrlParts | undefined => {
  const target = request.url
  const host = request.headers.host ?? "localhost"
  const scheme = request.headers["x-forwarded-proto"] === "https" ? "https" : "http"
  if (target === lastTarget && host === lastHost && lastParts !== undefined && lastParts.scheme === scheme) return lastParts
  if (plainTarget.test(target) && !target.includes("/.") && plainHost.test(host)) {
    const colon = host.indexOf(":")
    const port = colon === -1 ? "" : host.slice(colon + 1)
    const name = colon === -1 ? host : host.slice(0, colon)
    const lastLabel = name.slice(name.lastIndexOf(".") + 1)
    const numeric = lastLabel.charCodeAt(0) >= 48 && lastLabel.charCodeAt(0) <= 57
    const defaultPort = port === (scheme === "https" ? "443" : "80")
    if (!defaultPort && Number(port || "0") <= 65535 && (!numeric || dottedQuad.test(host))) {
      const q = target.indexOf("?")
      lastTarget = target
      lastHost = host
      return lastParts = {
        full: `${scheme}://${host}${target}`,
        path: q === -1 ? target : target.slice(0, q),
        query: q === -1 ? "" : target.slice(q + 1),
        scheme
      }
    }
  }
  const url = Option.getOrUndefined(ServerRequest.toURL(request))
  if (url === undefined) return undefined
  if (url.username !== "" || url.password !== "") {
    url.username = "REDACTED"
    url.password = "REDACTED"
  }
  return { full: url.toString(), path: url.pathname, query: url.search.slice(1), scheme: url.protocol.slice(0, -1) }
}

/**
 * The fiber's context plus the request's Scope, the request and (when traced) the server span, in
 * one copy of the context's map (`Context.add` copies it once per service).
 */
const requestContext = (
  base: Context.Context<never>,
  scope: Scope.Scope,
  request: ServerRequest.HttpServerRequest,
  span: Tracer.Span | undefined
): Context.Context<never> => {
  const map = new Map(base.unsafeMap)
  map.set(Scope.Scope.key, scope)
  map.set(ServerRequest.HttpServerRequest.key, request)
  if (span !== undefined) map.set(Tracer.ParentSpan.key, span)
  return Context.unsafeMake(map)
}

/**
 * The server span of `HttpMiddleware.tracer` around `inner`, with the request's context (plus the
 * span as parent) switched in once.
 */
const traced = (
  fiber: { getFiberRef<A>(ref: FiberRef.FiberRef<A>): A; readonly currentContext: Context.Context<never> },
  request: ServerRequest.HttpServerRequest,
  base: Context.Context<never>,
  scope: Scope.Scope,
  inner: AnyApp
): AnyApp => {
  const url = urlParts(request)
  const redactedNames = fiber.getFiberRef(Headers.currentRedactedNames)
  const redactedHeaders = Headers.redact(request.headers, redactedNames)
  const nameGenerator = Context.get(fiber.currentContext as Context.Context<never>, Middleware.SpanNameGenerator)
  return Effect.useSpan(nameGenerator(request), {
    parent: Option.getOrUndefined(TraceContext.fromHeaders(request.headers)),
    kind: "server",
    captureStackTrace: false
  }, (span) => {
    span.attribute("http.request.method", request.method)
    if (url !== undefined) {
      span.attribute("url.full", url.full)
      span.attribute("url.path", url.path)
      if (url.query !== "") span.attribute("url.query", url.query)
      span.attribute("url.scheme", url.scheme)
    }
    if (request.headers["user-agent"] !== undefined) span.attribute("user_agent.original", request.headers["user-agent"])
    for (const name in redactedHeaders) span.attribute(`http.request.header.${name}`, String(redactedHeaders[name]))
    if (request.remoteAddress._tag === "Some") span.attribute("client.address", request.remoteAddress.value)
    return Effect.flatMap(
      Effect.exit(Effect.zipRight(FiberRef.set(FiberRef.currentContext, requestContext(base, scope, request, span)), inner)),
      (exit) => {
        const response = ServerError.exitResponse(exit)
        span.attribute("http.response.status_code", response.status)
        const redacted = Headers.redact(response.headers, redactedNames)
        for (const name in redacted) span.attribute(`http.response.header.${name}`, String(redacted[name]))
        return exit
      }
    )
  })
}

/**
 * `HttpApp.toHandled(app, handleResponse, middleware)` as a function of the request: runs the app
 * for `request` on the calling fiber and hands its response to `handleResponse`. Never fails; the
 * app's failure (already answered) is dropped, as NodeHttpServer drops it.
 */
export const makeHandler = (
  app: HttpApp.Default<unknown, any>,
  handleResponse: Respond,
  middleware?: Middleware | undefined
): (request: ServerRequest.HttpServerRequest) => Effect.Effect<void> => {
  const inner = handledApp(app, handleResponse, middleware)
  const after = middleware === undefined ? undefined : afterMiddleware(handleResponse)
  const makeScope = Scope.make()
  return (request) =>
    Effect.uninterruptible(Effect.flatMap(makeScope, (scope) =>
      Effect.withFiberRuntime<void>((fiber) => {
        const base = fiber.currentContext
        const disabled = fiber.getFiberRef(Middleware.currentTracerDisabledWhen)(request)
        const run: Effect.Effect<unknown, unknown> = disabled
          ? Effect.zipRight(
            FiberRef.set(FiberRef.currentContext, requestContext(base, scope, request, undefined)),
            inner as Effect.Effect<unknown, unknown>
          )
          : traced(fiber, request, base, scope, inner) as Effect.Effect<unknown, unknown>
        return Effect.flatMap(
          Effect.exit(after === undefined ? run : Effect.matchCauseEffect(run as AnyApp, after) as Effect.Effect<unknown, unknown>),
          (exit) =>
            Effect.zipRight(
              FiberRef.set(FiberRef.currentContext, base),
              ejectedScopes.has(scope) ? Effect.void : Scope.close(scope, exit)
            )
        )
      })))
}

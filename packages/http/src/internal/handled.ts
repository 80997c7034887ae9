/**
 * The per-request pipeline of `HttpApp.toHandled` (request Scope, the `HttpMiddleware.tracer`
 * server span, failures turned into responses, pre-response handlers, the serve middleware),
 * fused so that a request costs few fiber steps.
 *
 * Why not `toHandled` itself: under it every layer provides its own service (the Scope, the
 * request, the parent span) with its own `locally`, and each one copies the fiber's context and
 * FiberRefs twice and wraps the rest in `acquireUseRelease`; measured here that was ~3/4 of the CPU
 * a `GET /` spent in JS outside the app. This module switches the context once per request (request,
 * Scope and span together) and back once at the end, makes and ends the server span in plain code
 * (as `Effect.useSpan` does, without its `onExit`), and, without a serve middleware, writes the
 * response from the app's own continuation. What the app, the middleware, the pre-response
 * handlers and a tracer can observe is the same as under `toHandled` + NodeHttpServer: the span's
 * name, kind, parent (from trace headers), attributes, annotations and exit, `Scope` closed with
 * the request's exit unless ejected (`HttpApp.ejectDefaultScopeClose`), the `handled` mark on the
 * request, the uninterruptible region around the app (routes make their handlers interruptible).
 * The tracing test compares spans and responses with NodeHttpServer's.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpApp from "@effect/platform/HttpApp"
import * as Middleware from "@effect/platform/HttpMiddleware"
import * as ServerError from "@effect/platform/HttpServerError"
import * as ServerRequest from "@effect/platform/HttpServerRequest"
import * as ServerResponse from "@effect/platform/HttpServerResponse"
import * as TraceContext from "@effect/platform/HttpTraceContext"
import { Cause, Chunk, Clock, Context, Effect, Exit, type Fiber, FiberRef, FiberRefs, GlobalValue, HashMap, Option, Scope, Tracer } from "effect"
import { RequestScope } from "./requestScope.js"

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

/**
 * `handleResponse` done eagerly: called inside a continuation of the request's fiber, it writes
 * what it can at once and returns what is left to run (a stream body, waiting for the send queue
 * to drain), or `undefined` when the response is out. May throw (an invalid header): a defect.
 */
export type RespondNow = (
  request: ServerRequest.HttpServerRequest,
  response: ServerResponse.HttpServerResponse
) => Effect.Effect<unknown, unknown> | undefined

const currentRequest = (fiber: { readonly currentContext: Context.Context<never> }) =>
  Context.unsafeGet(fiber.currentContext as Context.Context<ServerRequest.HttpServerRequest>, ServerRequest.HttpServerRequest)

const markHandled = (request: ServerRequest.HttpServerRequest): void => {
  ;(request as unknown as Record<symbol, boolean>)[handledSymbol] = true
}

type AnyApp = Effect.Effect<ServerResponse.HttpServerResponse, unknown, any>
type Middleware = (app: HttpApp.Default<any, any>) => HttpApp.Default<any, any>

/** `toHandled`'s answer to a response: the pre-response handlers, then `handleResponse`. */
const respondWith = (handleResponse: Respond) =>
(request: ServerRequest.HttpServerRequest, response: ServerResponse.HttpServerResponse) =>
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

type RespondFn = ReturnType<typeof respondWith>

/** `toHandled`'s answer to a failure: its response is sent, the failure kept (unless it was only a response). */
const answerFailure = (respond: RespondFn, request: ServerRequest.HttpServerRequest, cause: Cause.Cause<unknown>) =>
  Effect.flatMap(ServerError.causeResponse(cause), ([response, cause]) =>
    Effect.zipRight(
      respond(request, response),
      Cause.isEmptyType(cause) ? Effect.succeed(response) : Effect.failCause(cause)
    ))

/**
 * What `toHandled` runs inside its tracer under a serve middleware: the app, its response handed
 * to `handleResponse` (after the pre-response handlers), a failure turned into its response
 * first, all under the middleware, which may replace the request in the context (hence
 * `currentRequest`). Built once per `serve`; the same steps as the platform's.
 */
const handledApp = (app: AnyApp, respond: RespondFn, middleware: Middleware): AnyApp => {
  const responded = Effect.withFiberRuntime<ServerResponse.HttpServerResponse, unknown, any>((fiber) =>
    Effect.flatMap(app, (response) => respond(currentRequest(fiber), response))
  )
  const withErrorHandling = Effect.catchAllCause(
    responded,
    (cause) => Effect.withFiberRuntime<ServerResponse.HttpServerResponse, unknown>((fiber) => answerFailure(respond, currentRequest(fiber), cause))
  )
  return middleware(withErrorHandling as HttpApp.Default<any, any>)
}

/**
 * The same steps without a middleware, for one request: nothing can replace the request, and a
 * response without pre-response handlers is written from the app's continuation itself
 * (`respondNow`), so a plain response costs no Effect steps beyond the app's own.
 */
const directApp = (
  app: AnyApp,
  respond: RespondFn,
  respondNow: RespondNow,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  request: ServerRequest.HttpServerRequest
): AnyApp => {
  const onFailure = (cause: Cause.Cause<unknown>) => answerFailure(respond, request, cause)
  return Effect.matchCauseEffect(app, {
    onFailure,
    onSuccess: (response) => {
      if (fiber.getFiberRef(HttpApp.currentPreResponseHandlers)._tag === "Some") {
        return Effect.catchAllCause(respond(request, response), onFailure)
      }
      markHandled(request)
      let rest: Effect.Effect<unknown, unknown> | undefined
      try {
        rest = respondNow(request, response)
      } catch (defect) {
        rest = Effect.die(defect)
      }
      return rest === undefined ? Effect.succeed(response) : Effect.catchAllCause(Effect.as(rest, response), onFailure)
    }
  })
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

const serverSpanOptions = (parent: Tracer.AnySpan | undefined) => ({ parent, kind: "server" as const, captureStackTrace: false })

/** A parent that disabled propagation is skipped for its own parent (Effect's `filterDisablePropagation`). */
const propagatedParent = (span: Option.Option<Tracer.AnySpan>): Option.Option<Tracer.AnySpan> =>
  Option.flatMap(span, (s) =>
    Context.get(s.context, Tracer.DisablePropagation)
      ? s._tag === "Span" ? propagatedParent(s.parent) : Option.none()
      : Option.some(s))

/**
 * The server span, made as `Effect.useSpan` makes it when the tracer is enabled (parent, links
 * and annotations from the fiber, start time from its Clock), without the Effect steps.
 */
const makeServerSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  name: string,
  options: ReturnType<typeof serverSpanOptions>,
  timing: boolean
): Tracer.Span => {
  const services = fiber.currentDefaultServices
  const clock = Context.get(services, Clock.Clock)
  const refs = fiber.getFiberRefs()
  const annotations = FiberRefs.get(refs, FiberRef.currentTracerSpanAnnotations)
  const links = FiberRefs.get(refs, FiberRef.currentTracerSpanLinks)
  const parent = options.parent !== undefined
    ? Option.some(options.parent)
    : propagatedParent(Context.getOption(fiber.currentContext, Tracer.ParentSpan))
  const span = fiber.currentTracer.span(
    name,
    parent,
    Context.empty(),
    links._tag === "Some" ? Chunk.toReadonlyArray(links.value) : [],
    timing ? clock.unsafeCurrentTimeNanos() : BigInt(0),
    "server",
    options
  )
  if (annotations._tag === "Some") HashMap.forEach(annotations.value, (value, key) => span.attribute(key, value))
  return span
}

/** `HttpMiddleware.tracer`'s request attributes. */
const requestAttributes = (
  span: Tracer.Span,
  request: ServerRequest.HttpServerRequest,
  redactedNames: ReadonlyArray<string | RegExp>
): void => {
  const url = urlParts(request)
  span.attribute("http.request.method", request.method)
  if (url !== undefined) {
    span.attribute("url.full", url.full)
    span.attribute("url.path", url.path)
    if (url.query !== "") span.attribute("url.query", url.query)
    span.attribute("url.scheme", url.scheme)
  }
  if (request.headers["user-agent"] !== undefined) span.attribute("user_agent.original", request.headers["user-agent"])
  const redactedHeaders = Headers.redact(request.headers, redactedNames)
  for (const name in redactedHeaders) span.attribute(`http.request.header.${name}`, String(redactedHeaders[name]))
  if (request.remoteAddress._tag === "Some") span.attribute("client.address", request.remoteAddress.value)
}

/** `HttpMiddleware.tracer`'s response attributes, then the span's end (as `useSpan` ends it). */
const endServerSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  span: Tracer.Span,
  redactedNames: ReadonlyArray<string | RegExp>,
  exit: Exit.Exit<unknown, unknown>
): void => {
  const response = ServerError.exitResponse(exit as Exit.Exit<ServerResponse.HttpServerResponse, unknown>)
  span.attribute("http.response.status_code", response.status)
  const redacted = Headers.redact(response.headers, redactedNames)
  for (const name in redacted) span.attribute(`http.response.header.${name}`, String(redacted[name]))
  if (span.status._tag === "Ended") return
  const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
  span.end(timing ? Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos() : BigInt(0), exit)
}

/**
 * `HttpApp.toHandled(app, handleResponse, middleware)` as a function of the request: runs the app
 * for `request` on the calling fiber and hands its response to `handleResponse` (without a
 * middleware: `respondNow`, from the app's continuation). Never fails; the app's failure (already
 * answered) is dropped, as NodeHttpServer drops it.
 */
export const makeHandler = (
  app: HttpApp.Default<unknown, any>,
  handleResponse: Respond,
  respondNow: RespondNow,
  middleware?: Middleware | undefined
): (request: ServerRequest.HttpServerRequest) => Effect.Effect<void> => {
  const respond = respondWith(handleResponse)
  const wrapped = middleware === undefined ? undefined : handledApp(app, respond, middleware)
  const after = middleware === undefined ? undefined : afterMiddleware(handleResponse)
  return (request) =>
    Effect.uninterruptible(Effect.withFiberRuntime<void>((fiber) => {
      const base = fiber.currentContext
      const scope = new RequestScope()
      // The request's context is switched in and out with FiberRef.set: Effect.locally would add an
      // acquireUseRelease around the request.
      const finish = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
        const restore = FiberRef.set(FiberRef.currentContext, base)
        const close = ejectedScopes.has(scope) ? undefined : scope.closeNow(exit)
        return close === undefined ? restore : Effect.zipRight(restore, close)
      }
      const finished = { onFailure: (cause: Cause.Cause<unknown>) => finish(Exit.failCause(cause)), onSuccess: (a: unknown) => finish(Exit.succeed(a)) }
      const start = (span: Tracer.Span | undefined, redactedNames: ReadonlyArray<string | RegExp>): Effect.Effect<void> => {
        // The app's requirements are in the request's context (as under toHandled).
        const body = (wrapped ?? directApp(app, respond, respondNow, fiber as Fiber.RuntimeFiber<unknown, unknown>, request)) as Effect.Effect<ServerResponse.HttpServerResponse, unknown>
        const run = Effect.zipRight(FiberRef.set(FiberRef.currentContext, requestContext(base, scope, request, span)), body)
        if (span === undefined) {
          return Effect.matchCauseEffect(after === undefined ? run : Effect.matchCauseEffect(run, after), finished)
        }
        requestAttributes(span, request, redactedNames)
        const ended = (exit: Exit.Exit<unknown, unknown>) => endServerSpan(fiber as Fiber.RuntimeFiber<unknown, unknown>, span, redactedNames, exit)
        if (after === undefined) {
          return Effect.matchCauseEffect(run, {
            onFailure: (cause) => {
              const exit = Exit.failCause(cause)
              ended(exit)
              return finish(exit)
            },
            onSuccess: (response) => {
              const exit = Exit.succeed(response)
              ended(exit)
              return finish(exit)
            }
          })
        }
        // The span ends before the middleware's leftovers are answered, as under toHandled.
        return Effect.matchCauseEffect(
          Effect.matchCauseEffect(run, {
            onFailure: (cause) => {
              ended(Exit.failCause(cause))
              return after.onFailure(cause)
            },
            onSuccess: (response) => {
              ended(Exit.succeed(response))
              return after.onSuccess(response)
            }
          }),
          finished
        )
      }
      if (fiber.getFiberRef(Middleware.currentTracerDisabledWhen)(request)) return start(undefined, [])
      const redactedNames = fiber.getFiberRef(Headers.currentRedactedNames)
      const name = Context.get(base as Context.Context<never>, Middleware.SpanNameGenerator)(request)
      const options = serverSpanOptions(Option.getOrUndefined(TraceContext.fromHeaders(request.headers)))
      // With the tracer disabled (Effect.withTracerEnabled(false)) Effect makes a no-op span.
      return fiber.getFiberRef(FiberRef.currentTracerEnabled)
        ? start(makeServerSpan(fiber as Fiber.RuntimeFiber<unknown, unknown>, name, options, fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)), redactedNames)
        : Effect.flatMap(Effect.makeSpan(name, options), (span) => start(span, redactedNames))
    }))
}

/**
 * What an app and a tracer observe around each request is the same under RinglineHttpServer (whose
 * per-request pipeline is fused, see src/internal/handled.ts) as under NodeHttpServer: the server
 * span (name, kind, parent from trace headers, attributes, exit), the app's child spans, the request
 * Scope closed with the request's exit, pre-response handlers, and a serve middleware's effect
 * on the response, with the tracer on or disabled for the request.
 */
import { HttpApp, HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope, Tracer } from "effect"
import * as http from "node:http"
import { RinglineTesting } from "@ringline/core"
import * as RinglineHttpServer from "../src/RinglineHttpServer.js"
import { urlParts } from "../src/internal/handled.js"
import { nodeRequest } from "./helpers.js"

interface Ended {
  readonly name: string
  readonly kind: string
  readonly parent: string | undefined
  readonly attributes: Record<string, unknown>
  readonly exit: string
}

/** A tracer that records every ended span; ports in attribute values are masked. */
const recorder = () => {
  const ended: Array<Ended> = []
  let next = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span & { status: Tracer.SpanStatus } = {
        _tag: "Span",
        name,
        spanId: `s${++next}`,
        traceId: parent._tag === "Some" ? parent.value.traceId : `t${next}`,
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end(endTime, exit) {
          span.status = { _tag: "Ended", startTime, endTime, exit }
          ended.push({
            name,
            kind,
            parent: parent._tag === "Some" ? (parent.value._tag === "Span" ? parent.value.name : `external:${parent.value.spanId}`) : undefined,
            attributes: Object.fromEntries(
              [...attributes].map(([k, v]) => [k, typeof v === "string" ? v.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT") : v])
            ),
            exit: Exit.isSuccess(exit) ? "success" : Exit.isInterrupted(exit) ? "interrupted" : "failure"
          })
        },
        attribute(key, value) {
          attributes.set(key, value)
        },
        event() {},
        addLinks() {}
      }
      return span
    },
    context: (f) => f()
  })
  return { tracer, ended }
}

const finalized: Array<string> = []

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello")),
  HttpRouter.get("/child", Effect.withSpan(HttpServerResponse.text("child"), "child-span")),
  HttpRouter.get(
    "/span",
    Effect.map(Effect.currentSpan, (s) => HttpServerResponse.text(`${s.name} ${s.kind}`)).pipe(
      Effect.orElseSucceed(() => HttpServerResponse.text("no span"))
    )
  ),
  HttpRouter.get(
    "/scope",
    Effect.flatMap(Scope.Scope, (scope) =>
      Effect.as(
        Scope.addFinalizerExit(scope, (exit) => Effect.sync(() => finalized.push(`scope ${exit._tag}`))),
        HttpServerResponse.text("scoped")
      ))
  ),
  HttpRouter.get(
    "/eject",
    // The app takes the request scope over (HttpApp.ejectDefaultScopeClose) and closes it itself
    // after the response.
    Effect.flatMap(Scope.Scope, (scope) =>
      Effect.gen(function*() {
        yield* Scope.addFinalizerExit(scope, (exit) => Effect.sync(() => finalized.push(`ejected ${exit._tag}`)))
        HttpApp.ejectDefaultScopeClose(scope)
        yield* Effect.forkDaemon(Effect.zipRight(Effect.sleep("5 millis"), Scope.close(scope as Scope.CloseableScope, Exit.fail("app"))))
        return HttpServerResponse.text("ejected")
      }))
  ),
  HttpRouter.get("/fail", Effect.fail(new Error("boom"))),
  HttpRouter.get("/die", Effect.die("defect")),
  HttpRouter.get(
    "/pre",
    Effect.as(
      HttpApp.appendPreResponseHandler((_req, res) => Effect.succeed(HttpServerResponse.setHeader(res, "x-pre", "1"))),
      HttpServerResponse.text("pre")
    )
  )
)

const middleware = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (req): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, any> =>
    req.url === "/mw-fail"
      ? Effect.fail(new Error("middleware failed"))
      : Effect.map(app, (res) => HttpServerResponse.setHeader(res, "x-mw", req.url)))
)

const paths = ["/", "/child", "/span", "/scope", "/eject", "/fail", "/die", "/pre", "/missing", "/mw-fail"]

const exercise = (port: number) =>
  Effect.gen(function*() {
    const out: Array<unknown> = []
    for (const path of paths) {
      const r = yield* nodeRequest(port, { path })
      out.push({ path, status: r.status, body: r.body, pre: r.headers["x-pre"], mw: r.headers["x-mw"] })
    }
    // A W3C parent from the client.
    const traced = yield* nodeRequest(port, {
      path: "/child",
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }
    })
    out.push({ path: "traceparent", status: traced.status })
    yield* Effect.sleep("20 millis")
    return out
  })

/**
 * `env`: what the serving fiber carries into every request — span annotations and no span timing
 * ("annotated"), or the tracer switched off (`Effect.withTracerEnabled(false)`: no-op spans).
 */
type Mode = { readonly middleware: boolean; readonly tracerDisabled: boolean; readonly env?: "annotated" | "tracerOff" }

/** Serves `app` with `serve` under a recording tracer; returns the responses, spans and finalizers. */
const observe = (serveOn: (serve: Effect.Effect<void, never, HttpServer.HttpServer>, body: (port: number) => Effect.Effect<unknown, Error>) => Effect.Effect<unknown, unknown>, mode: Mode) =>
  Effect.gen(function*() {
    const { ended, tracer } = recorder()
    finalized.length = 0
    const serve = Effect.flatMap(HttpServer.HttpServer, (server) =>
      mode.middleware ? server.serve(app, middleware) : server.serve(app)).pipe(
        (serve) =>
          mode.env === "annotated"
            ? serve.pipe(Effect.annotateSpans({ "deployment.color": "blue" }), Effect.withTracerTiming(false))
            : mode.env === "tracerOff"
            ? Effect.withTracerEnabled(serve, false)
            : serve,
        Effect.withTracer(tracer),
        Effect.locally(HttpMiddleware.currentTracerDisabledWhen, () => mode.tracerDisabled)
      ) as Effect.Effect<void, never, HttpServer.HttpServer>
    const responses = yield* serveOn(serve, exercise)
    return { responses, spans: ended.map((s) => ({ ...s })), finalized: [...finalized] }
  })

const onNode = (serve: Effect.Effect<void, never, HttpServer.HttpServer>, body: (port: number) => Effect.Effect<unknown, Error>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const ctx = yield* Layer.build(NodeHttpServer.layer(http.createServer, { host: "127.0.0.1", port: 0 }))
      const server = Context.get(ctx, HttpServer.HttpServer)
      yield* Effect.provide(serve, ctx)
      return yield* body(server.address._tag === "TcpAddress" ? server.address.port : 0)
    })
  )

const onRingline = (serve: Effect.Effect<void, never, HttpServer.HttpServer>, body: (port: number) => Effect.Effect<unknown, Error>) =>
  RinglineTesting.withFreshRing(
    Effect.gen(function*() {
      const ctx = yield* Layer.build(RinglineHttpServer.layer({ host: "127.0.0.1", port: 0 }))
      const server = Context.get(ctx, HttpServer.HttpServer)
      yield* Effect.provide(serve, ctx)
      return yield* body(server.address._tag === "TcpAddress" ? server.address.port : 0)
    })
  )

describe("tracing and request scope like NodeHttpServer", () => {
  for (const mode of [
    { middleware: false, tracerDisabled: false },
    { middleware: true, tracerDisabled: false },
    { middleware: true, tracerDisabled: true },
    { middleware: false, tracerDisabled: true },
    { middleware: false, tracerDisabled: false, env: "annotated" as const },
    { middleware: true, tracerDisabled: false, env: "tracerOff" as const }
  ] satisfies ReadonlyArray<Mode>) {
    it.live(`middleware ${mode.middleware}, tracer disabled ${mode.tracerDisabled}${mode.env ? `, ${mode.env}` : ""}`, () =>
      Effect.gen(function*() {
        const expected = yield* observe(onNode, mode)
        const actual = yield* observe(onRingline, mode)
        expect(actual.responses).toEqual(expected.responses)
        expect(actual.finalized).toEqual(expected.finalized)
        expect(expected.finalized).toContain("ejected Failure")
        expect(actual.spans.length).toBe(expected.spans.length)
        for (let i = 0; i < expected.spans.length; i++) {
          const a = actual.spans[i]!
          const e = expected.spans[i]!
          expect(a, `span ${i} (${e.name} ${String(e.attributes["url.path"] ?? "")})`).toEqual(e)
        }
        if (mode.env === "tracerOff") expect(expected.spans).toEqual([])
        if (mode.env === "annotated") {
          expect(expected.spans.some((s) => s.kind === "server" && s.attributes["deployment.color"] === "blue")).toBe(true)
        }
        if (!mode.tracerDisabled && mode.env !== "tracerOff") {
          expect(expected.spans.some((s) => s.name === "http.server GET" && s.kind === "server")).toBe(true)
          expect(expected.spans.some((s) => s.parent === "external:b7ad6b7169203331")).toBe(true)
          expect(expected.spans.some((s) => s.name === "child-span" && s.parent === "http.server GET")).toBe(true)
        }
      }))
  }
})

describe("server span URL attributes", () => {
  const viaURL = (url: string, headers: Record<string, string>) => {
    const request = { url, headers } as unknown as HttpServerRequest.HttpServerRequest
    const u = HttpServerRequest.toURL(request)
    if (u._tag === "None") return undefined
    const v = u.value
    if (v.username !== "" || v.password !== "") {
      v.username = "REDACTED"
      v.password = "REDACTED"
    }
    return { full: v.toString(), path: v.pathname, query: v.search.slice(1), scheme: v.protocol.slice(0, -1) }
  }
  const targets = [
    "/", "/a/b.html", "/a?", "/a?x=1&y=%20z", "/a/./b", "/a/../b", "/.", "/%2e%2e/x", "/a b", "/é", "/a'b?c'd",
    "/a?b?c/d", "/a#frag", "/A/B?Q=R", "//double", "/a\\b", "/a|b?{x}", "/~user/(x)*+,;=:@!$&", "*", "http://other/x"
  ]
  const hosts = [
    undefined, "example.com", "EXAMPLE.com", "example.com:80", "example.com:443", "example.com:8080",
    "example.com:080", "127.0.0.1:3000", "127.1", "0x7f.0.0.1", "300.0.0.1", "1.2.3.04", "[::1]:8080",
    "a.b-c.d", "host:0", "host:70000", "a..b", "user:pw@host", "xn--bcher-kva.example", "exa mple"
  ]
  it("equal to new URL's, with and without x-forwarded-proto", () => {
    for (const url of targets) {
      for (const host of hosts) {
        for (const proto of [undefined, "https"]) {
          const headers: Record<string, string> = {}
          if (host !== undefined) headers.host = host
          if (proto !== undefined) headers["x-forwarded-proto"] = proto
          const request = { url, headers } as unknown as HttpServerRequest.HttpServerRequest
          expect(urlParts(request), `${url} ${host} ${proto}`).toEqual(viaURL(url, headers))
        }
      }
    }
  })
})

/**
 * RinglineHttpServer.layerTest used the way NodeHttpServer.layerTest is: serve an app in the test's
 * scope and call it through the provided HttpClient with relative URLs.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer } from "effect"
import { HttpServerError } from "@effect/platform"
import { Ringline, RinglineTesting } from "@ringline/core"
import * as RinglineHttpServer from "../src/RinglineHttpServer.js"

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello, World!")),
  HttpRouter.post("/json", Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => Effect.map(r.json, HttpServerResponse.unsafeJson)))
)

describe("RinglineHttpServer.layerTest", () => {
  it.live("serves an app to the provided HttpClient", () =>
    Effect.gen(function*() {
      yield* HttpServer.serveEffect(app)
      const text = yield* HttpClient.get("/").pipe(Effect.flatMap((r) => r.text))
      expect(text).toBe("Hello, World!")
      const json = yield* HttpClientRequest.post("/json").pipe(
        HttpClientRequest.bodyUnsafeJson({ a: [1, 2] }),
        HttpClient.execute,
        Effect.flatMap((r) => r.json)
      )
      expect(json).toEqual({ a: [1, 2] })
      const server = yield* HttpServer.HttpServer
      expect(server.address._tag).toBe("TcpAddress")
    }).pipe(Effect.scoped, Effect.provide(RinglineHttpServer.layerTest)))
})

describe("RinglineHttpServer options", () => {
  it.live("hostile option values fail the Layer with a ServeError naming the field, nothing listens", () =>
    RinglineTesting.withFreshRing(
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
          ["port", { port: 70000 }],
          ["port", { port: -1 }],
          ["port", { port: 1.5 }],
          ["port", { port: "80" }],
          ["port", { port: Symbol("p") }],
          ["maxHeaderSize", { maxHeaderSize: 0 }],
          ["maxHeaderSize", { maxHeaderSize: NaN }],
          ["maxHeaders", { maxHeaders: 5000 }],
          ["maxBodySize", { maxBodySize: -1 }],
          ["maxPipelined", { maxPipelined: Symbol("n") }],
          ["headersTimeout", { headersTimeout: -1 }],
          ["headersTimeout", { headersTimeout: "soon" }],
          ["keepAliveTimeout", { keepAliveTimeout: Infinity }],
          ["bodyTimeout", { bodyTimeout: 0 }],
          ["bodyTimeout", { bodyTimeout: "later" }],
          ["shutdownTimeout", { shutdownTimeout: NaN }],
          ["listen", { listen: "not an Effect" }],
          ["tls", { tls: null }],
          ["tls", { tls: 42 }],
          // `listen` serves a listener bound already: `port` (given in every case here) conflicts.
          ["port", { listen: Effect.never }]
        ]
        for (const [field, options] of cases) {
          const exit = yield* Effect.exit(Effect.scoped(Layer.build(
            RinglineHttpServer.layerServer({ port: 0, ...options } as RinglineHttpServer.Options)
          )))
          const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
          expect(error, `${field}: ${String(Object.values(options)[0])}`).toBeInstanceOf(HttpServerError.ServeError)
          expect((error as HttpServerError.ServeError).cause).toMatchObject({ field })
        }
        expect((yield* Ringline.stats).listeners).toBe(0)
      })
    ))
})

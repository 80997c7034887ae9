/**
 * RinglineHttpServer.layerTest used the way NodeHttpServer.layerTest is: serve an app in the test's
 * scope and call it through the provided HttpClient with relative URLs.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
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

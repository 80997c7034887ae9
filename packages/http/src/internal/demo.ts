/**
 * The demo app (`pnpm run http`), also served by the benchmark under each server: an ordinary
 * HttpRouter app that knows nothing of ringline.
 */
// Module paths, not the "@effect/platform" index: the index loads every module, among them the
// HttpApiSwagger/HttpApiScalar UI bundles (~26 MB of source strings kept in the old generation).
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Stream } from "effect"

const encoder = new TextEncoder()

/** `GET /`, `GET /json`, `POST /echo` (body streamed back), `GET /stream?n=N` (N chunks). */
export const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello, World!")),
  HttpRouter.get("/json", HttpServerResponse.unsafeJson({ hello: "world" })),
  HttpRouter.post(
    "/echo",
    Effect.map(HttpServerRequest.HttpServerRequest, (req) =>
      HttpServerResponse.stream(req.stream, {
        contentType: req.headers["content-type"] ?? "application/octet-stream"
      }))
  ),
  HttpRouter.get(
    "/stream",
    Effect.map(HttpServerRequest.ParsedSearchParams, (params) => {
      const n = Math.min(Math.max(Number(params.n ?? 10) | 0, 0), 1_000_000)
      return HttpServerResponse.stream(
        Stream.map(Stream.range(1, n, 64), (i) => encoder.encode(`chunk ${i}\n`)),
        { contentType: "text/plain" }
      )
    })
  )
)

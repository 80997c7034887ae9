/**
 * The README's @ringline/http example, type-checked with the tests (`pnpm typecheck`); not run.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Ringline } from "@ringline/core"
import { Effect, Layer } from "effect"
import { RinglineHttpServer } from "../src/index.js"

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello, World!")),
  HttpRouter.post("/echo", Effect.map(HttpServerRequest.HttpServerRequest, (req) => HttpServerResponse.stream(req.stream)))
)

export const main = () =>
  HttpServer.serve(app).pipe(
    HttpServer.withLogAddress,
    Layer.provide(RinglineHttpServer.layer({ host: "127.0.0.1", port: 3000 })),
    Layer.provide(Ringline.layer()),
    Layer.launch,
    Ringline.runMain // SIGTERM: stop accepting, close idle keep-alive at once, finish in-flight requests
  )

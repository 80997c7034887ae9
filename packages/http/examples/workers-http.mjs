// The README's "HTTP on N workers" example (worker program): every worker runs this HttpServer app
// on its own ring, serving its share of the set's port in either mode. `listen` hands the server
// the worker's listener (its SO_REUSEPORT socket, or the connections the acceptor passes it).
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { RinglineWorkers } from "@ringline/core"
import { RinglineHttpServer } from "@ringline/http"
import { Effect, Layer } from "effect"

export default Effect.gen(function*() {
  const worker = yield* RinglineWorkers.WorkerContext
  const app = HttpRouter.empty.pipe(
    HttpRouter.get("/", HttpServerResponse.text(`hello from worker ${worker.id}\n`))
  )
  return yield* HttpServer.serve(app).pipe(
    Layer.provide(RinglineHttpServer.layer({ listen: worker.listen })),
    Layer.launch
  )
})

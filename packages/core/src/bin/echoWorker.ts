/**
 * The worker program of `pnpm run echo --workers N`: the demo's echo handler on this worker's
 * share of the port (bin/echo.ts launches it with RinglineWorkers). `data.mode` picks the
 * handler as `--mode` does (`chunks`: RinglineWorkers.serveChunks, no fiber per connection, in
 * both modes: connections the acceptor hands over are served per chunk too); with `data.tls` every connection is a TLS server connection, its
 * handshake done on this worker's ring (one server context per worker) before the echo starts:
 * `Tls.upgrade` inside serve's handler, or in chunks mode `Tls.secure` over the worker's listener.
 */
import { Effect, type Scope } from "effect"
import { echo } from "../internal/echo.js"
import * as Listener from "../Listener.js"
import * as RinglineWorkers from "../RinglineWorkers.js"
import { echoChunk, echoHandlers } from "./echoHandlers.js"
import { type DemoTlsOptions, loadTls } from "./tlsModule.js"

/** What bin/echo.ts hands its workers. */
export interface EchoWorkerData {
  readonly mode?: string
  readonly tls?: DemoTlsOptions
}

export default Effect.gen(function*() {
  const w = yield* RinglineWorkers.WorkerContext
  const data = (w.data ?? {}) as EchoWorkerData
  // Resets and vanished clients are routine for an echo server: end that connection quietly.
  const quietly = { onFailure: () => Effect.void }
  const handler = echoHandlers[data.mode ?? "stream"] ?? echo
  const tls = data.tls
  if (tls === undefined) {
    if (data.mode === "chunks") return yield* RinglineWorkers.serveChunks(echoChunk, quietly)
    return yield* RinglineWorkers.serve((conn) => Effect.ignore(handler(conn)))
  }
  const Tls = yield* loadTls
  // One context per worker: certificate and key parsed once, not per connection.
  const context = yield* (Tls.serverContext(tls) as Effect.Effect<unknown, unknown, Scope.Scope>).pipe(Effect.orDie)
  if (data.mode === "chunks") {
    // Each handshake in a fiber, then the connection's chunks straight from the completions.
    const secured = Tls.secure(yield* RinglineWorkers.listen, { context }) as Effect.Effect<Listener.Listener, unknown, Scope.Scope>
    return yield* Listener.serveChunks(yield* Effect.orDie(secured), echoChunk, quietly)
  }
  // A failed handshake has closed the connection already (Tls.upgrade): nothing to echo.
  return yield* RinglineWorkers.serve((conn) =>
    Effect.ignore(Effect.zipRight(Tls.upgrade(conn, { side: "server", context }) as Effect.Effect<void, unknown>, handler(conn)))
  )
})

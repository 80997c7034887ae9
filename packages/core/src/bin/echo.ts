#!/usr/bin/env node
/**
 * The io_uring echo server: `pnpm run echo --port <p> [--host <h>] [--mode stream|parse]`
 * `[--tls-cert cert.pem --tls-key key.pem [--alpn echo]]` (TLS through @ringline/tls)
 * `[--workers N [--acceptor] [--no-pin] [--young-generation-mb M]]` (with TLS too: every worker does
 * its own handshakes).
 *
 * Every byte received is sent back in order; when the client half-closes, the server finishes
 * sending and then closes. SIGINT/SIGTERM stop it cleanly (connections drained, exit code 0).
 * `--mode stream` (default) uses recv/write; `--mode parse` the zero-copy read(parse) path;
 * `--mode chunks` Listener.serveChunks (no fiber per connection; on workers and over TLS too).
 * The driver reads its configuration from RINGLINE_* environment variables (see RinglineConfig).
 * `--workers N` (N > 1, or with `--acceptor`) serves on N pinned worker threads (RinglineWorkers):
 * SO_REUSEPORT listeners, or with `--acceptor` one accepting ring handing connections out; the
 * shutdown summary then has one line per worker. `--no-pin` leaves the workers' threads to the
 * scheduler (RinglineWorkers `pin: false`). `--young-generation-mb M` caps each worker's V8 young
 * generation (RinglineWorkers `youngGenerationMb`); on one thread use `node --max-semi-space-size`.
 */
import { Effect, type Scope } from "effect"
import { parseArgs } from "node:util"
import * as Address from "../Address.js"
import * as Listener from "../Listener.js"
import * as Ringline from "../Ringline.js"
import * as RinglineWorkers from "../RinglineWorkers.js"
import * as Tcp from "../Tcp.js"
import { echoChunk, echoHandlers, quietFailure } from "./echoHandlers.js"
import type { EchoWorkerData } from "./echoWorker.js"
import { type DemoTlsOptions, loadTls } from "./tlsModule.js"

// `pnpm run echo -- --port 1` passes the "--" through: it is not an argument of ours.
const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--"))
const { values } = parseArgs({
  args,
  options: {
    port: { type: "string", default: "7878" },
    host: { type: "string", default: "127.0.0.1" },
    mode: { type: "string", default: "stream" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    alpn: { type: "string" },
    workers: { type: "string", default: "1" },
    acceptor: { type: "boolean", default: false },
    "no-pin": { type: "boolean", default: false },
    "young-generation-mb": { type: "string" }
  }
})
const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer between 0 and 65535, got ${values.port}`)
  process.exit(2)
}
if (values.mode !== "stream" && values.mode !== "parse" && values.mode !== "chunks") {
  console.error(`--mode must be "stream", "parse" or "chunks", got ${values.mode}`)
  process.exit(2)
}
const workers = Number(values.workers)
if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
  console.error(`--workers must be an integer between 1 and 1024, got ${values.workers}`)
  process.exit(2)
}
const youngGenerationMb = values["young-generation-mb"] === undefined ? undefined : Number(values["young-generation-mb"])

if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
  console.error("--tls-cert and --tls-key go together")
  process.exit(2)
}
const multiWorker = workers > 1 || values.acceptor === true
const suffix = values["tls-cert"] === undefined ? "" : " (tls)"

/** The PEM files of --tls-cert/--tls-key and the protocols of --alpn, read once. */
const tlsOptions = Effect.gen(function*() {
  if (values["tls-cert"] === undefined) return undefined
  const { readFileSync } = yield* Effect.promise(() => import("node:fs"))
  const options: DemoTlsOptions = {
    cert: readFileSync(values["tls-cert"]!, "utf8"),
    key: readFileSync(values["tls-key"]!, "utf8"),
    ...(values.alpn === undefined ? {} : { alpn: values.alpn.split(",") })
  }
  return options
})

/** Plain TCP, or TLS with --tls-cert/--tls-key. */
const listen = Effect.gen(function*() {
  const tls = yield* tlsOptions
  if (tls === undefined) return yield* Tcp.listen({ host: values.host, port })
  const Tls = yield* loadTls
  return yield* Effect.orDie(Tls.listen({ host: values.host, port, ...tls }) as Effect.Effect<Listener.Listener, unknown, Ringline.Ringline | Scope.Scope>)
})

const program = Effect.gen(function*() {
  const listener = yield* listen
  console.log(`listening on ${Address.format(listener.address)}${suffix}`)
  // A one-line summary of the driver's counters when the server stops (on stderr).
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(Ringline.stats, (s) =>
      Effect.sync(() =>
        console.error(
          `ringline: accepted=${s.accepted} closed=${s.closed} bytesIn=${s.bytesIn} bytesOut=${s.bytesOut} ` +
            `cqes=${s.cqes} wakeups=${s.wakeups} (empty ${s.emptyWakeups}) submitted=${s.submitted} sqFull=${s.sqFull} ` +
            `enobufs=${s.enobufs} zeroCopySends=${s.zeroCopySends} vectoredSends=${s.vectoredSends} earlyTurns=${s.earlyTurns} ` +
            `backpressurePauses=${s.backpressurePauses} sendPoolExhausted=${s.sendPoolExhausted} mode=${s.mode}`
        )
      )
    )
  )
  // Resets and vanished clients are routine for an echo server: end that connection quietly.
  if (values.mode === "chunks") return yield* Listener.serveChunks(listener, echoChunk, { onFailure: () => Effect.void })
  const handler = echoHandlers[values.mode!]!
  return yield* listener.serve(handler, { onFailure: quietFailure })
}).pipe(Effect.scoped, Effect.provide(Ringline.layerConfig()))

const multi = Effect.gen(function*() {
  const tls = yield* tlsOptions
  // One ticket key for every worker: a session resumes whichever worker the client reaches.
  const data: EchoWorkerData = {
    mode: values.mode,
    ...(tls === undefined ? {} : { tls: { ...tls, ticketKeys: [(yield* loadTls).generateTicketKey()] } })
  }
  const set = yield* RinglineWorkers.launch({
    module: new URL("./echoWorker.js", import.meta.url),
    workers,
    mode: values.acceptor ? "acceptor" : "reusePort",
    pin: !values["no-pin"],
    host: values.host,
    port,
    data,
    ...(youngGenerationMb === undefined ? {} : { youngGenerationMb })
  })
  console.log(`listening on ${Address.format(yield* set.address)}${suffix}`)
  // The thread ids let a benchmark tell the workers' CPU time from V8's and libuv's threads.
  const tids = (yield* set.workers).map((w) => w.tid)
  console.error(`ringline: ${workers} workers (${set.mode}), thread ids ${tids.join(",")}`)
  // Per-worker counters, taken while the workers still run (the drain follows this finalizer).
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(set.stats, (s) =>
      Effect.sync(() => {
        for (const w of s.workers) {
          console.error(
            `ringline worker ${w.id}: accepted=${w.stats.accepted} closed=${w.stats.closed} connections=${w.stats.connections} ` +
              `bytesIn=${w.stats.bytesIn} bytesOut=${w.stats.bytesOut} cqes=${w.stats.cqes} wakeups=${w.stats.wakeups} ` +
              `(empty ${w.stats.emptyWakeups}) submitted=${w.stats.submitted} mode=${w.stats.mode}`
          )
        }
        if (s.acceptor !== undefined) {
          console.error(`ringline acceptor: accepted=${s.acceptor.accepted} handed=${s.acceptor.handed.join("/")} lost=${s.acceptor.lost}`)
        }
      })
    )
  )
  return yield* set.join
}).pipe(Effect.scoped)

Ringline.runMain<unknown>(multiWorker ? multi : program)

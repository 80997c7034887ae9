// The README's "HTTP on N workers" example (main thread): build (`pnpm exec tsc -b` at the repo
// root), then `node examples/workers-http-main.mjs [--acceptor] [--port 8080]` in packages/http;
// `curl http://127.0.0.1:<port>/`; Ctrl-C (or SIGTERM) drains every worker.
import { Address, Ringline, RinglineWorkers } from "@ringline/core"
import { Effect } from "effect"
import { parseArgs } from "node:util"

const { values } = parseArgs({ options: { port: { type: "string", default: "0" }, acceptor: { type: "boolean", default: false } } })

Ringline.runMain(Effect.scoped(Effect.gen(function*() {
  const set = yield* RinglineWorkers.launch({
    module: new URL("./workers-http.mjs", import.meta.url), // every worker imports this
    workers: 2, // default: every CPU
    mode: values.acceptor ? "acceptor" : "reusePort",
    port: Number(values.port)
  })
  console.log(`listening on ${Address.format(yield* set.address)}`)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(set.stats, (s) =>
      Effect.sync(() => s.workers.forEach((w) => console.log(`worker ${w.id}: accepted=${w.stats.accepted} closed=${w.stats.closed}`)))
    )
  )
  return yield* set.join
})))

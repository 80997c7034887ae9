#!/usr/bin/env node
/**
 * The HTTP demo: `pnpm run http --port <p> [--host <h>] [--tls-cert <pem> --tls-key <pem>]` serves
 * the demo HttpRouter app on the ring (`GET /`, `GET /json`, `POST /echo`, `GET /stream?n=N`),
 * prints `listening on <host>:<port>` and stops cleanly on SIGINT/SIGTERM (in-flight requests
 * finish, idle connections close). With a certificate and key it serves HTTPS (ALPN http/1.1).
 * `--impl node` serves the same app with @effect/platform-node's NodeHttpServer instead (for the
 * benchmark). The ring reads its configuration from RINGLINE_* environment variables.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { Ringline } from "@ringline/core"
import { Effect, Layer } from "effect"
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import * as RinglineHttpServer from "../RinglineHttpServer.js"
import { app } from "../internal/demo.js"

const args = process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--"))
const { values } = parseArgs({
  args,
  options: {
    port: { type: "string", default: "8080" },
    host: { type: "string", default: "127.0.0.1" },
    impl: { type: "string", default: "ringline" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" }
  }
})
const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer between 0 and 65535, got ${values.port}`)
  process.exit(2)
}
if (values.impl !== "ringline" && values.impl !== "node") {
  console.error(`--impl must be "ringline" or "node", got ${values.impl}`)
  process.exit(2)
}

if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
  console.error("--tls-cert and --tls-key go together")
  process.exit(2)
}
const tls = values["tls-cert"] !== undefined && values["tls-key"] !== undefined
  ? { cert: readFileSync(values["tls-cert"]), key: readFileSync(values["tls-key"]) }
  : undefined

const announce = Effect.flatMap(HttpServer.HttpServer, (server) =>
  Effect.sync(() => {
    const a = server.address
    console.log(`listening on ${a._tag === "TcpAddress" ? `${a.hostname}:${a.port}` : a.path}`)
  }))

const serverLayer = async () => {
  if (values.impl === "node") {
    const { NodeHttpServer } = await import("@effect/platform-node")
    const { createServer } = await import("node:http")
    if (tls !== undefined) {
      const { createServer } = await import("node:https")
      return NodeHttpServer.layer(() => createServer(tls), { port, host: values.host })
    }
    return NodeHttpServer.layer(createServer, { port, host: values.host })
  }
  return RinglineHttpServer.layer({ port, host: values.host, tls }).pipe(Layer.provide(Ringline.layer()))
}

const main = Layer.launch(
  Layer.mergeAll(HttpServer.serve(app), Layer.effectDiscard(announce)).pipe(
    Layer.provide(await serverLayer())
  )
)
Ringline.runMain(main)

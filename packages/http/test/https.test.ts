/**
 * HTTPS: RinglineHttpServer over @ringline/tls (`layer({ tls })`, ALPN http/1.1) answering
 * node:https and curl, keep-alive over one TLS connection, request bodies both ways, the demo's
 * `--tls-cert/--tls-key`, and the option rule (`tls` without `reusePort`).
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { HttpServerError } from "@effect/platform"
import { Cause, Effect, Exit, Layer } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import * as https from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RinglineTesting } from "@ringline/core"
import * as RinglineHttpServer from "../src/RinglineHttpServer.js"
import { startDemo, withServer } from "./helpers.js"

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()
const hasCurl = await new Promise<boolean>((r) => execFile("curl", ["--version"], (e) => r(!e)))

/** A self-signed certificate for localhost and 127.0.0.1 (its own trust anchor). */
const credentials = (() => {
  if (!hasOpenssl) return undefined
  const dir = mkdtempSync(join(tmpdir(), "ringline-https-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem",
    "-out", "cert.pem", "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"
  ], { cwd: dir, stdio: "pipe" })
  return {
    certFile: join(dir, "cert.pem"),
    keyFile: join(dir, "key.pem"),
    cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    key: readFileSync(join(dir, "key.pem"), "utf8")
  }
})()
if (credentials === undefined) console.log("SKIP https tests: openssl is not installed (needed to make a certificate)")

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello, TLS!")),
  HttpRouter.post("/echo", Effect.map(HttpServerRequest.HttpServerRequest, (r) => HttpServerResponse.stream(r.stream)))
)

interface Answer {
  readonly status: number
  readonly body: string
  readonly alpn: string | false | null | undefined
  readonly reused: boolean
}

const request = (port: number, agent: https.Agent, path: string, body?: string) =>
  Effect.async<Answer, Error>((resume) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: body === undefined ? "GET" : "POST",
        agent,
        ca: credentials!.cert,
        ALPNProtocols: ["http/1.1"]
      } as https.RequestOptions & { readonly ALPNProtocols: ReadonlyArray<string> },
      (res) => {
        const alpn = (res.socket as import("node:tls").TLSSocket).alpnProtocol
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resume(Effect.succeed({
            status: res.statusCode!,
            body: Buffer.concat(chunks).toString(),
            alpn,
            reused: req.reusedSocket
          })))
      }
    )
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end(body)
    return Effect.sync(() => req.destroy())
  })

describe.skipIf(credentials === undefined)("RinglineHttpServer over TLS", () => {
  it.live("node:https: ALPN http/1.1, keep-alive on one TLS connection, bodies both ways", () =>
    withServer(app, (port) =>
      Effect.gen(function*() {
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1 })
        const first = yield* request(port, agent, "/")
        expect(first).toEqual({ status: 200, body: "Hello, TLS!", alpn: "http/1.1", reused: false })
        const big = "x".repeat(200_000)
        const echoed = yield* request(port, agent, "/echo", big)
        expect(echoed.status).toBe(200)
        expect(echoed.body.length).toBe(big.length)
        expect(echoed.reused).toBe(true)
        agent.destroy()
      }), { tls: { cert: credentials!.cert, key: credentials!.key } }))

  it.live("curl --cacert", () =>
    withServer(app, (port) =>
      Effect.gen(function*() {
        if (!hasCurl) return console.log("SKIP curl over TLS: curl is not installed")
        const out = yield* Effect.async<string, Error>((resume) => {
          execFile("curl", ["-s", "--max-time", "10", "--cacert", credentials!.certFile, `https://localhost:${port}/`], (err, stdout) =>
            resume(err ? Effect.fail(err) : Effect.succeed(stdout)))
        })
        expect(out).toBe("Hello, TLS!")
      }), { tls: { cert: credentials!.cert, key: credentials!.key } }))

  it.live("the demo with --tls-cert/--tls-key serves HTTPS", () =>
    Effect.gen(function*() {
      const { port, stop } = yield* startDemo(["--tls-cert", credentials!.certFile, "--tls-key", credentials!.keyFile])
      const agent = new https.Agent({ keepAlive: false })
      const r = yield* request(port, agent, "/")
      expect(r.status).toBe(200)
      expect(r.alpn).toBe("http/1.1")
      expect(yield* stop).toBe(0)
    }).pipe(Effect.scoped))

  it.live("tls with reusePort is refused, naming the field", () =>
    RinglineTesting.withFreshRing(
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Layer.build(
          RinglineHttpServer.layerServer({ port: 0, reusePort: true, tls: { cert: credentials!.cert, key: credentials!.key } })
        ))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        expect(error).toBeInstanceOf(HttpServerError.ServeError)
        expect((error as HttpServerError.ServeError).cause).toMatchObject({ field: "reusePort" })
      }).pipe(Effect.scoped)
    ))
})


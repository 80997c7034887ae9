/**
 * Conformance: one HttpRouter app served by @effect/platform-node's NodeHttpServer and by
 * RinglineHttpServer answers the same requests with the same status, headers (minus Date) and body.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { nodeRequest, type NodeResult, withServer } from "./helpers.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringline-http-"))
const file = path.join(dir, "hello.txt")
fs.writeFileSync(file, "file contents\n".repeat(100))
// A whole-second mtime: RinglineFileSystem truncates sub-millisecond mtimes where Node's fs.stat
// rounds them, which would show as a one-off difference in the ETag (reported to storage).
fs.utimesSync(file, new Date(1_700_000_000_000), new Date(1_700_000_000_000))

const encoder = new TextEncoder()

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("Hello, World!")),
  HttpRouter.get("/json", HttpServerResponse.unsafeJson({ hello: "world", n: [1, 2, 3] })),
  HttpRouter.get("/html", HttpServerResponse.html`<h1>hi</h1>`),
  HttpRouter.get("/bytes", HttpServerResponse.uint8Array(new Uint8Array([0, 1, 2, 255]))),
  HttpRouter.get("/empty", HttpServerResponse.empty()),
  HttpRouter.get("/created", HttpServerResponse.text("made", { status: 201 })),
  HttpRouter.get("/redirect", HttpServerResponse.redirect("/json")),
  HttpRouter.get("/teapot", HttpServerResponse.text("short and stout", { status: 418, statusText: "I'm a teapot" })),
  HttpRouter.get("/users/:id", Effect.map(HttpRouter.params, (p) => HttpServerResponse.unsafeJson({ id: p.id }))),
  HttpRouter.get("/search", Effect.map(HttpServerRequest.ParsedSearchParams, (p) => HttpServerResponse.unsafeJson(p))),
  HttpRouter.get(
    "/headers",
    Effect.map(HttpServerRequest.HttpServerRequest, (r) =>
      HttpServerResponse.unsafeJson({ ua: r.headers["x-test"] ?? null, accept: r.headers["accept"] ?? null }))
  ),
  HttpRouter.get(
    "/cookies",
    Effect.map(HttpServerRequest.HttpServerRequest, (r) => HttpServerResponse.unsafeJson(r.cookies))
  ),
  HttpRouter.get(
    "/set-cookie",
    HttpServerResponse.text("ok").pipe(
      HttpServerResponse.unsafeSetCookie("a", "1", { path: "/" }),
      HttpServerResponse.unsafeSetCookie("b", "2", { httpOnly: true })
    )
  ),
  HttpRouter.get("/custom-header", HttpServerResponse.text("x", { headers: { "x-custom": "value", "cache-control": "no-store" } })),
  HttpRouter.get("/fail", Effect.fail(new Error("boom"))),
  HttpRouter.get("/die", Effect.die("defect")),
  HttpRouter.get(
    "/stream",
    HttpServerResponse.stream(Stream.map(Stream.range(1, 5), (i) => encoder.encode(`part ${i}\n`)), { contentType: "text/plain" })
  ),
  HttpRouter.get(
    "/stream-length",
    HttpServerResponse.stream(Stream.make(encoder.encode("abc"), encoder.encode("def")), { contentLength: 6 })
  ),
  HttpRouter.get("/file", HttpServerResponse.file(file))
).pipe(
  HttpRouter.get("/file-range", HttpServerResponse.file(file, { offset: 14, bytesToRead: 28 })),
  HttpRouter.post("/text", Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => Effect.map(r.text, (t) => HttpServerResponse.text(`got ${t}`)))),
  HttpRouter.post("/json", Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => Effect.map(r.json, HttpServerResponse.unsafeJson))),
  HttpRouter.post(
    "/form",
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => Effect.map(r.urlParamsBody, (p) => HttpServerResponse.unsafeJson(p)))
  ),
  HttpRouter.post(
    "/schema",
    Effect.map(
      HttpServerRequest.schemaBodyJson(Schema.Struct({ name: Schema.String, age: Schema.Number })),
      (b) => HttpServerResponse.unsafeJson({ ok: b.name })
    )
  ),
  HttpRouter.post(
    "/bytes",
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) =>
      Effect.map(r.arrayBuffer, (b) => HttpServerResponse.text(`${b.byteLength}`)))
  ),
  HttpRouter.post(
    "/multipart",
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) =>
      Effect.map(r.multipart, (m) => HttpServerResponse.unsafeJson(Object.keys(m).sort())))
  ),
  HttpRouter.post("/echo", Effect.map(HttpServerRequest.HttpServerRequest, (r) => HttpServerResponse.stream(r.stream))),
  HttpRouter.put("/put", HttpServerResponse.text("put")),
  HttpRouter.del("/del", HttpServerResponse.empty({ status: 204 })),
  HttpRouter.patch("/patch", HttpServerResponse.text("patched"))
)

interface Req {
  readonly method?: string
  readonly path: string
  readonly headers?: Record<string, string>
  readonly body?: string
}

const form = "--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n" +
  "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n2\r\n--XyZ--\r\n"

const requests: ReadonlyArray<Req> = [
  { path: "/" },
  { path: "/json" },
  { path: "/html" },
  { path: "/bytes" },
  { path: "/empty" },
  { path: "/created" },
  { path: "/redirect" },
  { path: "/teapot" },
  { path: "/users/42" },
  { path: "/search?q=ring&n=1&n=2" },
  { path: "/headers", headers: { "x-test": "hello", accept: "text/plain" } },
  { path: "/cookies", headers: { cookie: "a=1; b=two" } },
  { path: "/set-cookie" },
  { path: "/custom-header" },
  { path: "/fail" },
  { path: "/die" },
  { path: "/stream" },
  { path: "/stream-length" },
  { path: "/file" },
  // Not "/file-range": NodeHttpServer's file responses pass the exclusive end to
  // fs.createReadStream, whose `end` is inclusive, so it sends one byte more than its
  // Content-Length (checked against ringline alone below).
  { path: "/missing" },
  { method: "POST", path: "/" },
  { method: "HEAD", path: "/" },
  { method: "HEAD", path: "/json" },
  { method: "POST", path: "/text", body: "some text" },
  { method: "POST", path: "/text", body: "" },
  { method: "POST", path: "/json", body: `{"a":[1,2,{"b":null}]}`, headers: { "content-type": "application/json" } },
  { method: "POST", path: "/json", body: `{not json`, headers: { "content-type": "application/json" } },
  { method: "POST", path: "/form", body: "a=1&b=hello+world&c=%20x", headers: { "content-type": "application/x-www-form-urlencoded" } },
  { method: "POST", path: "/schema", body: `{"name":"ada","age":36}`, headers: { "content-type": "application/json" } },
  { method: "POST", path: "/schema", body: `{"name":"ada"}`, headers: { "content-type": "application/json" } },
  { method: "POST", path: "/bytes", body: "x".repeat(100_000) },
  { method: "POST", path: "/multipart", body: form, headers: { "content-type": "multipart/form-data; boundary=XyZ" } },
  { method: "POST", path: "/echo", body: "echo me" },
  { method: "PUT", path: "/put" },
  { method: "DELETE", path: "/del" },
  { method: "PATCH", path: "/patch" },
  { method: "OPTIONS", path: "/" }
]

/** Status, headers without Date (names lower-cased, sorted), body. */
const normalise = (r: NodeResult) => ({
  status: r.status,
  headers: Object.fromEntries(Object.entries(r.headers).filter(([k]) => k !== "date").sort(([a], [b]) => a.localeCompare(b))),
  body: r.body
})

const runAll = (port: number) =>
  Effect.gen(function*() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const out = []
    for (const req of requests) {
      const r = yield* nodeRequest(
        port,
        {
          method: req.method ?? "GET",
          path: req.path,
          headers: { ...req.headers, ...(req.body !== undefined ? { "content-length": String(Buffer.byteLength(req.body)) } : {}) },
          ...(req.body !== undefined ? { body: req.body } : {})
        },
        agent
      ).pipe(Effect.tapError(() => Effect.sync(() => console.log(`failed: ${req.method ?? "GET"} ${req.path}`))))
      out.push(normalise(r))
    }
    agent.destroy()
    return out
  })

const nodeAnswers = Effect.scoped(
  Effect.gen(function*() {
    const ctx = yield* Layer.build(NodeHttpServer.layer(http.createServer, { host: "127.0.0.1", port: 0 }))
    const server = yield* Effect.provide(HttpServer.HttpServer, ctx)
    yield* Effect.provide(server.serve(app), ctx)
    return yield* runAll(server.address._tag === "TcpAddress" ? server.address.port : 0)
  })
)

describe("conformance with NodeHttpServer", () => {
  it.live(`the same app answers ${requests.length} requests the same way`, () =>
    Effect.gen(function*() {
      const expected = yield* nodeAnswers
      const actual = yield* withServer(app, runAll)
      expect(requests.length).toBeGreaterThanOrEqual(30)
      for (let i = 0; i < requests.length; i++) {
        const req = requests[i]!
        expect(actual[i], `${req.method ?? "GET"} ${req.path}`).toEqual(expected[i])
      }
    }))

  it.live("a file range is exactly its bytes (through RinglineFileSystem)", () =>
    withServer(app, (port) =>
      Effect.gen(function*() {
        const r = yield* nodeRequest(port, { path: "/file-range" })
        expect(r.headers["content-length"]).toBe("28")
        expect(r.headers["content-type"]).toBe("text/plain")
        expect(r.body).toBe("file contents\n".repeat(2))
        const next = yield* nodeRequest(port, { path: "/" })
        expect(next.body).toBe("Hello, World!")
      })))
})

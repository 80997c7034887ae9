/**
 * Test helpers: a RinglineHttpServer serving an app on a fresh, leak-checked ring, and raw
 * node:net / node:http clients.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import type * as App from "@effect/platform/HttpApp"
import { RinglineTesting } from "@ringline/core"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as net from "node:net"
import * as RinglineHttpServer from "../src/RinglineHttpServer.js"

/** Runs `body` with `app` served on 127.0.0.1:<free port> on a fresh ring (fd and op leak checked). */
export const withServer = <A, E>(
  app: App.Default<any, any>,
  body: (port: number) => Effect.Effect<A, E>,
  options: RinglineHttpServer.Options = {}
) =>
  RinglineTesting.withFreshRing(
    Effect.gen(function*() {
      const ctx = yield* Layer.build(RinglineHttpServer.layer({ host: "127.0.0.1", port: 0, ...options }))
      const server = yield* Effect.provide(HttpServer.HttpServer, ctx)
      yield* Effect.provide(server.serve(app as App.Default<unknown>), ctx)
      const port = server.address._tag === "TcpAddress" ? server.address.port : -1
      return yield* body(port)
    })
  )

export interface RawResult {
  readonly text: string
  readonly closed: boolean
}

/**
 * Writes `request` (string or parts written with a pause between them) on a fresh socket and
 * collects what comes back until `until(text)` holds, the server closes, or `timeoutMs`.
 */
export const raw = (
  port: number,
  request: string | ReadonlyArray<string>,
  options: { readonly until?: (text: string) => boolean; readonly timeoutMs?: number; readonly pauseMs?: number } = {}
): Effect.Effect<RawResult> =>
  Effect.async<RawResult>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    let text = ""
    let finished = false
    const finish = (closed: boolean) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed({ text, closed }))
    }
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 3000)
    socket.setEncoding("latin1")
    socket.on("data", (d: string) => {
      text += d
      if (options.until?.(text)) finish(false)
    })
    socket.on("close", () => finish(true))
    socket.on("error", () => finish(true))
    socket.on("connect", async () => {
      const parts = typeof request === "string" ? [request] : request
      for (let i = 0; i < parts.length; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, options.pauseMs ?? 50))
        if (!socket.destroyed) socket.write(parts[i]!)
      }
    })
    return Effect.sync(() => finish(false))
  })

/** Splits a raw byte stream into responses: status line, headers, body (chunked decoded). */
export const responses = (text: string): Array<{ status: number; headers: Record<string, string>; body: string }> => {
  const out: Array<{ status: number; headers: Record<string, string>; body: string }> = []
  let rest = text
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n")
    if (end < 0) break
    const lines = rest.slice(0, end).split("\r\n")
    const status = Number(lines[0]!.split(" ")[1])
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":")
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
    }
    rest = rest.slice(end + 4)
    let body = ""
    if (headers["transfer-encoding"] === "chunked") {
      let complete = false
      for (;;) {
        const nl = rest.indexOf("\r\n")
        const size = nl < 0 ? NaN : parseInt(rest.slice(0, nl), 16)
        if (Number.isNaN(size) || rest.length < nl + 2 + size + 2) break // incomplete so far
        rest = rest.slice(nl + 2)
        if (size === 0) {
          rest = rest.slice(2)
          complete = true
          break
        }
        body += rest.slice(0, size)
        rest = rest.slice(size + 2)
      }
      if (!complete) break
    } else if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"])
      if (rest.length < n) break
      body = rest.slice(0, n)
      rest = rest.slice(n)
    } else if (status !== 100 && status !== 204 && status !== 304) {
      body = rest
      rest = ""
    }
    out.push({ status, headers, body })
  }
  return out
}

export interface NodeResult {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly body: string
}

/** One request with node:http (its own agent, keep-alive off unless asked). */
export const nodeRequest = (
  port: number,
  options: http.RequestOptions & { readonly body?: string | Uint8Array },
  agent?: http.Agent
): Effect.Effect<NodeResult, Error> =>
  Effect.async<NodeResult, Error>((resume) => {
    const req = http.request({ host: "127.0.0.1", port, agent: agent ?? false, ...options }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () =>
        resume(Effect.succeed({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("latin1") })))
      res.on("error", (e) => resume(Effect.fail(e)))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    if (options.body !== undefined) req.write(options.body)
    req.end()
    return Effect.sync(() => req.destroy())
  })

/**
 * Starts the HTTP demo (`pnpm run http`, or another `script` taking `--port`) with `args` on a free
 * port, waits for its "listening on" banner and answers the port, `stop` (SIGTERM, answers the
 * exit code) and `output` (its stdout so far). The child is killed when the scope closes.
 */
export const startDemo = (args: ReadonlyArray<string>, script = new URL("../dist/bin/http.js", import.meta.url).pathname) =>
  Effect.gen(function*() {
    const child = spawn(process.execPath, [script, "--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] })
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
    let out = ""
    const port = yield* Effect.promise(() =>
      new Promise<number>((resolve, reject) => {
        child.stdout!.on("data", (d: Buffer) => {
          out += d.toString()
          const m = /listening on [^:]+:(\d+)/.exec(out)
          if (m) resolve(Number(m[1]))
        })
        child.on("exit", (code) => reject(new Error(`exited early with ${code}`)))
      })
    )
    const stop = Effect.promise(() =>
      new Promise<number | null>((resolve) => {
        child.on("exit", (c) => resolve(c))
        child.kill("SIGTERM")
      })
    )
    /** Everything the program printed on stdout so far. */
    const output = () => out
    return { port, stop, output }
  })

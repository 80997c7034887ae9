/**
 * Graceful shutdown ends idle handlers at once (issue 9, item 10): a handler waiting for input
 * with nothing buffered and nothing queued is interrupted when the listener's scope closes,
 * instead of waiting out `shutdownTimeout`; a busy one still gets the grace period and finishes.
 * Also: a failing RinglineSocketServer handler shows at the default log level.
 */
import { SocketServer } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option } from "effect"
import { spawn } from "node:child_process"
import * as net from "node:net"
import { RinglineSocketServer, Tcp } from "../src/index.js"
import { echo, nodeClient, readN, withRing } from "./helpers.js"

const bin = new URL("../dist/bin/echo.js", import.meta.url).pathname

describe("graceful shutdown and idle connections", () => {
  it.live("an idle connection is closed at once; a busy handler still finishes its reply", () =>
    withRing(Effect.gen(function*() {
      let port = 0
      let idle: net.Socket | undefined
      let busy: net.Socket | undefined
      const started = yield* Effect.scoped(Effect.gen(function*() {
        const listener = yield* Tcp.listen({ port: 0 })
        port = listener.address._tag === "TcpAddress" ? listener.address.port : 0
        // "slow" is answered after 400 ms of work; anything else is echoed at once.
        yield* Effect.forkScoped(listener.serve((conn) =>
          Effect.gen(function*() {
            while (true) {
              const chunk = yield* conn.recv
              if (Option.isNone(chunk)) return
              if (Buffer.from(chunk.value).toString() === "slow") yield* Effect.sleep(400)
              yield* conn.write(chunk.value)
            }
          })
        ))
        idle = yield* Effect.promise(() => nodeClient(port))
        idle.write("hi")
        expect((yield* Effect.promise(() => readN(idle!, 2))).toString()).toBe("hi")
        busy = yield* Effect.promise(() => nodeClient(port))
        busy.write("slow")
        yield* Effect.sleep(50)
        return Date.now()
      }))
      const elapsed = Date.now() - started
      // The busy handler's reply arrived before its connection closed.
      expect((yield* Effect.promise(() => readN(busy!, 4))).toString()).toBe("slow")
      expect(elapsed).toBeGreaterThanOrEqual(300)
      expect(elapsed).toBeLessThan(2000)
      const ended = (s: net.Socket) =>
        new Promise<void>((r) => {
          if (s.readableEnded || s.destroyed) return r()
          s.on("end", r).on("close", () => r())
          s.resume()
        })
      yield* Effect.promise(() => Promise.all([ended(idle!), ended(busy!)]))
      idle!.destroy()
      busy!.destroy()
    }), { shutdownTimeout: 5000 }))

  it.live("with only idle clients the scope closes well under shutdownTimeout", () =>
    withRing(Effect.gen(function*() {
      const clients: Array<net.Socket> = []
      const started = yield* Effect.scoped(Effect.gen(function*() {
        const listener = yield* Tcp.listen({ port: 0 })
        const port = listener.address._tag === "TcpAddress" ? listener.address.port : 0
        yield* Effect.forkScoped(listener.serve(echo))
        for (let i = 0; i < 5; i++) clients.push(yield* Effect.promise(() => nodeClient(port)))
        yield* Effect.sleep(50)
        return Date.now()
      }))
      expect(Date.now() - started).toBeLessThan(1000)
      clients.forEach((c) => c.destroy())
    }), { shutdownTimeout: 5000 }))

  it("the demo with one idle node client stops on SIGTERM in well under its 5 s shutdownTimeout", async () => {
    const child = spawn(process.execPath, [bin, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RINGLINE_SHUTDOWN_TIMEOUT: "5 seconds" }
    })
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    const port = await new Promise<number>((resolve) => {
      let out = ""
      child.stdout!.on("data", (d) => {
        out += d
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
        if (m) resolve(Number(m[1]))
      })
    })
    const client = await nodeClient(port)
    client.write("ping")
    expect((await readN(client, 4)).toString()).toBe("ping")
    const ended = new Promise<void>((r) => { client.on("end", r).on("close", () => r()); client.resume() })
    const signalled = Date.now()
    child.kill("SIGTERM")
    await ended
    expect(await exited).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(1500)
    client.destroy()
  })
})

describe("RinglineSocketServer handler failures", () => {
  it.live("are logged at Warning, visible at the default minimum log level (Info)", () =>
    withRing(Effect.gen(function*() {
      const logged: Array<{ level: string; message: unknown }> = []
      const logger = Logger.make(({ logLevel, message }) => logged.push({ level: logLevel.label, message }))
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const port = server.address._tag === "TcpAddress" ? server.address.port : 0
      yield* Effect.forkScoped(
        server.run(() => Effect.fail("boom")).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      )
      const c = yield* Effect.promise(() => nodeClient(port))
      for (let i = 0; i < 100 && logged.length === 0; i++) yield* Effect.sleep(10)
      c.destroy()
      expect(logged.map((l) => l.level)).toEqual(["WARN"])
      expect(JSON.stringify(logged[0]!.message)).toContain("Unhandled error in SocketServer")
    })))
})

export type _S = SocketServer.SocketServer
export const _l = Layer.empty

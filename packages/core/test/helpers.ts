/** Shared test helpers: a ring per test, node:net peers, fd and op-table accounting. */
import { Cause, Effect, Logger, LogLevel, Option } from "effect"
import type { Scope } from "effect"
import * as Address from "../src/Address.js"
import { load } from "../src/internal/native.js"
import { decode, encodeToBytes } from "../src/internal/sockaddr.js"
import * as net from "node:net"
import { echo } from "../src/internal/echo.js"
import type { Connection, Listener } from "../src/index.js"
import { Ringline, RinglineTesting } from "../src/index.js"
import type { RinglineConfigInput } from "../src/RinglineConfig.js"

export const layer = (config?: RinglineConfigInput) => Ringline.layer(config)

/**
 * Runs a test whose client resets connections on purpose without the server's resulting
 * "connection handler failed" warnings (a cause made only of ECONNRESET/EPIPE SocketErrors):
 * expected, so kept out of the test log. Every other log line still goes to the default logger.
 */
export const ignoringPeerResets = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provide(effect, Logger.replace(Logger.defaultLogger, Logger.make((options) => {
    if (!(LogLevel.Warning === options.logLevel && isPeerReset(options.cause))) Logger.defaultLogger.log(options)
  })))

const isPeerReset = (cause: Cause.Cause<unknown>): boolean => {
  const failures = [...Cause.failures(cause)]
  return failures.length > 0 && Cause.defects(cause).length === 0 &&
    failures.every((e: any) => e?._tag === "SocketError" && (e.code === "ECONNRESET" || e.code === "EPIPE"))
}

/** Open file descriptors of this process. */
export const fdCount = RinglineTesting.openFds

/** Echo handler: everything back, then half-close after the peer's EOF (the demo's). */
export { echo }

/** A loopback port that was just bound and closed again: nothing listens there. */
export const closedPort: Effect.Effect<number> = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(p))
    })
  })
)

/** Everything a connection receives until the peer's EOF, as a string. */
export const collect = (c: Connection.Connection) =>
  Effect.gen(function*() {
    let out = ""
    while (true) {
      const chunk = yield* c.recv
      if (Option.isNone(chunk)) return out
      out += Buffer.from(chunk.value).toString()
    }
  })

export const echoServer = (options: { port?: number; backlog?: number } = {}) =>
  Effect.gen(function*() {
    const listener = yield* (yield* Effect.promise(() => import("../src/Tcp.js"))).listen({ port: 0, ...options })
    yield* Effect.forkScoped(listener.serve(echo))
    return listener
  })

export const portOf = (listener: Listener.Listener): number =>
  listener.address._tag === "TcpAddress" ? listener.address.port : -1

/** node:net client: connects, writes `payload`, half-closes, and collects everything until EOF. */
export const exchange = (port: number, payload: Uint8Array, host = "127.0.0.1"): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    const s = net.connect(port, host, () => s.end(payload))
    s.on("data", (d) => chunks.push(d))
    s.on("end", () => resolve(Buffer.concat(chunks)))
    s.on("error", reject)
  })

/** A connected node:net socket, ready to use. */
export const nodeClient = (port: number, host = "127.0.0.1"): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => resolve(s))
    s.once("error", reject)
  })

/** Reads exactly `n` bytes from a node:net socket. */
export const readN = (s: net.Socket, n: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let got = 0
    const onData = (d: Buffer) => {
      chunks.push(d)
      got += d.length
      if (got >= n) {
        s.off("data", onData)
        s.off("error", reject)
        s.pause()
        const all = Buffer.concat(chunks)
        if (all.length > n) s.unshift(all.subarray(n))
        resolve(all.subarray(0, n))
      }
    }
    s.on("data", onData)
    s.once("error", reject)
    s.resume()
  })

export const random = (n: number): Buffer => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, Math.min(i, n - 4))
  return b
}

/** A node:net server for outbound tests; returns its port and a close function. */
export const nodeServer = (onConn: (s: net.Socket) => void): Promise<{ port: number; server: net.Server }> =>
  new Promise((resolve) => {
    const server = net.createServer(onConn)
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, server }))
  })

/** A fresh ring per test; fails if an op is still in flight or an fd leaked afterwards. */
export const withRing = RinglineTesting.withFreshRing

/**
 * The port of a loopback listening socket (backlog 0) that nobody accepts from, its queue already
 * filled by node clients: the kernel drops further SYNs, so a connect to it hangs.
 */
export const fullListener: Effect.Effect<number, never, Scope.Scope> = Effect.gen(function*() {
  const native = load()
  const fd = native.listen(encodeToBytes(Address.tcp("127.0.0.1", 0)), 0, false)
  yield* Effect.addFinalizer(() => Effect.sync(() => native.closeFd(fd)))
  const bound = decode(native.sockName(fd, false))
  const port = bound._tag === "TcpAddress" ? bound.port : 0
  const fillers: Array<net.Socket> = []
  for (let i = 0; i < 4; i++) fillers.push(net.connect(port, "127.0.0.1").on("error", () => {}))
  yield* Effect.addFinalizer(() => Effect.sync(() => fillers.forEach((s) => s.destroy())))
  yield* Effect.sleep(100)
  return port
})

export { detachAndReuse } from "./detach.js"

/**
 * The conformance driver for the real ring: `Ringline.layer` on a fresh ring per scenario
 * (leak-checked by `RinglineTesting.withFreshRing`), node:net sockets as the peer, wall-clock time.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as net from "node:net"
import type { Address } from "../../src/Address.js"
import { closedPort, fullListener } from "../helpers.js"
import { RinglineTest, RinglineTesting } from "../../src/index.js"
import { type DriverUnderTest, type Peer, type PeerListener, PeerSide } from "./driver.js"

const peerError = (reason: "EndOfStream" | "Reset", operation: string, received: Uint8Array) =>
  new RinglineTest.PeerError({ reason, operation, detail: `the connection ${reason === "Reset" ? "was reset" : "ended"}`, received })

/** A node:net socket as a scripted peer: its own receive buffer, read on demand. */
export const nodePeer = (s: net.Socket): Peer => {
  const chunks: Array<Buffer> = []
  let length = 0
  let ended = false
  let reset = false
  const wakers = new Set<() => void>()
  const wake = () => wakers.forEach((w) => w())
  s.on("data", (d: Buffer) => {
    chunks.push(d)
    length += d.length
    wake()
  })
  s.on("end", () => {
    ended = true
    wake()
  })
  s.on("error", (e) => {
    if (process.env.CONFORMANCE_DEBUG) console.log("peer error", e)
    reset = true
    wake()
  })
  s.on("close", () => {
    ended = true
    wake()
  })
  const until = (ready: () => boolean) =>
    Effect.async<void>((resume) => {
      const check = () => {
        if (ready()) {
          wakers.delete(check)
          resume(Effect.void)
        }
      }
      wakers.add(check)
      check()
      return Effect.sync(() => wakers.delete(check))
    })
  const take = (n: number): Uint8Array => {
    const all = Buffer.concat(chunks)
    chunks.length = 0
    if (all.length > n) chunks.push(all.subarray(n))
    length = all.length - n
    return new Uint8Array(all.subarray(0, n))
  }
  return {
    write: (bytes) =>
      Effect.async<void>((resume) => {
        s.write(typeof bytes === "string" ? bytes : Buffer.from(bytes), () => resume(Effect.void))
      }),
    read: (n) =>
      Effect.flatMap(until(() => length >= n || ended || reset), () =>
        length >= n
          ? Effect.succeed(take(n))
          : Effect.fail(peerError(reset ? "Reset" : "EndOfStream", "read", take(length)))),
    readAll: Effect.flatMap(until(() => ended || reset), () =>
      reset ? Effect.fail(peerError("Reset", "readAll", take(length))) : Effect.succeed(take(length))),
    end: Effect.sync(() => void s.end()),
    reset: Effect.sync(() => void s.resetAndDestroy()),
    stall: Effect.sync(() => void s.pause()),
    resume: Effect.sync(() => void s.resume())
  }
}

const connected = (options: net.NetConnectOpts): Effect.Effect<Peer, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<net.Socket, Error>((resume) => {
      const s = net.connect({ ...options, allowHalfOpen: true })
      s.once("connect", () => resume(Effect.succeed(s)))
      s.once("error", (e) => resume(Effect.fail(e)))
    }),
    (s) => Effect.sync(() => s.destroy())
  ).pipe(Effect.map(nodePeer))

const nodeListen: Effect.Effect<PeerListener, never, Scope.Scope> = Effect.gen(function*() {
  const queue: Array<net.Socket> = []
  const all: Array<net.Socket> = []
  const wakers = new Set<() => void>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    queue.push(s)
    all.push(s)
    wakers.forEach((w) => w())
  })
  const port = yield* Effect.async<number>((resume) => {
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
  })
  yield* Effect.addFinalizer(() =>
    Effect.async<void>((resume) => {
      all.forEach((s) => s.destroy())
      server.close(() => resume(Effect.void))
    })
  )
  const accept = Effect.async<net.Socket>((resume) => {
    const check = () => {
      const s = queue.shift()
      if (s !== undefined) {
        wakers.delete(check)
        resume(Effect.succeed(s))
      }
    }
    wakers.add(check)
    check()
    return Effect.sync(() => wakers.delete(check))
  })
  return {
    target: { host: "127.0.0.1", port },
    accept: Effect.map(accept, nodePeer)
  }
})

const connectTo = (address: Address) =>
  connected(address._tag === "UnixAddress" ? { path: address.path } : { host: address.host, port: address.port })

export const ringDriver: DriverUnderTest = {
  name: "ring",
  it: it.live,
  run: (body, config) =>
    RinglineTesting.withFreshRing(
      Effect.provideService(body, PeerSide, {
        connect: connectTo,
        listen: nodeListen,
        unbound: Effect.map(closedPort, (port) => ({ host: "127.0.0.1", port })),
        hanging: Effect.map(fullListener, (port) => ({ host: "127.0.0.1", port })),
        advance: (d) => Effect.sleep(d),
        // Kernel round trips on a loaded machine: generous.
        settle: Effect.sleep(300)
      }),
      config
    )
}

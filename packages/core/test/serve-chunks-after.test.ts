/**
 * Transport.serveChunksAfter (the seam `Tls.listen` serves per chunk through) with hostile
 * arguments, against node:net peers: an `open` that throws, answers something that is not an
 * Effect, or fails closes that connection at once (the next is served), and the listener's
 * shutdown does not wait for it; wrong-type arguments are TypeErrors naming the argument.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Scope } from "effect"
import * as net from "node:net"
import { type Connection, Listener, RinglineTesting, Tcp, Transport } from "../src/index.js"
import { exchange, portOf } from "./helpers.js"

/** Resolves when the server closes `port`'s connection (FIN or reset), or with "open" after `ms`. */
const closedByServer = (port: number, ms: number) =>
  new Promise<"closed" | "open">((resolve) => {
    const s = net.connect(port, "127.0.0.1")
    const timer = setTimeout(() => {
      s.destroy()
      resolve("open")
    }, ms)
    const done = () => {
      clearTimeout(timer)
      s.destroy()
      resolve("closed")
    }
    s.on("data", () => {})
    s.on("end", done)
    s.on("close", done)
    s.on("error", done)
  })

const echo = (chunk: Uint8Array, c: Connection.Connection) => {
  if (chunk.length > 0) c.unsafeWrite(chunk)
}

describe("Transport.serveChunksAfter", () => {
  it.live("an open that throws, answers a non-Effect or fails closes that connection; the next is served; shutdown does not wait", () =>
    RinglineTesting.withFreshRing(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const inner = yield* Scope.extend(Tcp.listen({ port: 0 }), scope)
        const outer: Listener.Listener = { ...inner }
        // One bad opening of each kind, in turn; every connection after them opens normally.
        const bad: Array<() => unknown> = [
          () => {
            throw new Error("open threw")
          },
          () => 42,
          () => Effect.fail("open failed")
        ]
        let calls = 0
        expect(Transport.serveChunksAfter(outer, inner, () => {
          const b = bad[calls++]
          return (b === undefined ? Effect.void : b()) as Effect.Effect<void>
        })).toBe(true)
        const failures: Array<Cause.Cause<unknown>> = []
        yield* Effect.forkIn(
          Listener.serveChunks(outer, echo, { onFailure: (cause) => Effect.sync(() => void failures.push(cause)) }),
          scope
        )
        const port = portOf(inner)
        for (let i = 0; i < bad.length; i++) {
          // Closed promptly (the bound is for a loaded machine; before the fix they stayed open).
          expect(yield* Effect.promise(() => closedByServer(port, 10_000))).toBe("closed")
        }
        expect(calls).toBe(bad.length)
        const echoed = yield* Effect.promise(() => exchange(port, Buffer.from("served after them")))
        expect(echoed.toString()).toBe("served after them")
        // The openings' failures are open's to report, not onFailure's.
        expect(failures).toHaveLength(0)
        // Nothing is left for the drain to wait for: well under the 30 s shutdown timeout.
        const started = Date.now()
        yield* Scope.close(scope, Exit.void)
        expect(Date.now() - started).toBeLessThan(10_000)
      }),
      { shutdownTimeout: "30 seconds" }
    ), 60_000)

  it.live("wrong-type arguments: a TypeError naming the argument, nothing derived", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const inner = yield* Tcp.listen({ port: 0 })
      const outer: Listener.Listener = { ...inner }
      const call = (o: unknown, i: unknown, f: unknown) => () => Transport.serveChunksAfter(o as any, i as any, f as any)
      for (const o of [undefined, null, 42, "listener"]) {
        expect(call(o, inner, () => Effect.void)).toThrow(/outer must be a Listener/)
      }
      for (const i of [undefined, null, 42]) expect(call(outer, i, () => Effect.void)).toThrow(/inner must be a Listener/)
      for (const f of [undefined, null, 42, Effect.void]) expect(call(outer, inner, f)).toThrow(/open must be a function/)
      // Nothing was derived: outer's serveChunks runs over its serve (a fiber per connection).
      expect(Transport.serveChunksAfter(outer, { ...inner }, () => Effect.void)).toBe(false)
      // serveChunks on something that is no listener dies naming it (it threw at the call).
      for (const l of [undefined, null, 42]) {
        const exit = yield* Effect.exit(Listener.serveChunks(l as any, echo))
        expect(Exit.isFailure(exit) && Option.getOrUndefined(Cause.dieOption(exit.cause))).toBeDefined()
        if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toMatch(/listener must be a Listener/)
      }
    })))
})

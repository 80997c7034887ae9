/**
 * Handler fibers woken by completions run right after the completion batch
 * (internal/dispatchScheduler.ts). Only the wake-ups of the batch run there: a handler that keeps
 * yielding goes back to Effect's default scheduler, so it cannot hold the event loop, and its
 * neighbours (and the node:net clients in this same process) keep being served.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Connection, Tcp } from "../src/index.js"
import { nodeClient, readN, withRing } from "./helpers.js"

describe("handler fibers run after their completion batch", () => {
  it.live("a handler that yields forever does not starve the other connections", () =>
    withRing(Effect.gen(function*() {
      const listener = yield* Tcp.listen({ port: 0 })
      let spins = 0
      yield* Effect.forkScoped(listener.serve((conn) =>
        Effect.gen(function*() {
          const first = yield* conn.read((b) => Connection.done(b.length, Buffer.from(b).toString()))
          if (first === "spin") {
            // Woken by the completion of that read, then yields forever.
            while (true) {
              spins++
              yield* Effect.yieldNow()
            }
          }
          yield* conn.write(Buffer.from(first))
          while (true) {
            const chunk = yield* conn.recv
            if (Option.isNone(chunk)) return
            yield* conn.write(chunk.value)
          }
        })
      ))
      const port = listener.address._tag === "TcpAddress" ? listener.address.port : -1
      const spinner = yield* Effect.promise(() => nodeClient(port))
      spinner.write("spin")
      while (spins < 100) yield* Effect.sleep(1)
      const s = yield* Effect.promise(() => nodeClient(port))
      for (let i = 0; i < 200; i++) {
        const msg = Buffer.from(`round ${i}`)
        s.write(msg)
        const back = yield* Effect.promise(() => readN(s, msg.length))
        expect(back.equals(msg)).toBe(true)
      }
      expect(spins).toBeGreaterThan(200)
      s.destroy()
      spinner.destroy()
    })), 20_000)
})

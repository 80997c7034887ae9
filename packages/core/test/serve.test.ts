/**
 * Listener.serve: it completes when its listener closes, and a failing handler's cause reaches
 * `onFailure` with the handler's own error type (the server keeps serving).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Effect, Exit, Fiber, Option, Scope } from "effect"
import { Tcp } from "../src/index.js"
import type { Connection } from "../src/index.js"
import { echo, exchange, portOf, withRing } from "./helpers.js"

class Refused extends Data.TaggedError("Refused")<{ readonly byte: number }> {}

describe("Listener.serve", () => {
  it.live("completes (with void) when its listener's scope closes, handlers and all", () =>
    withRing(Effect.gen(function*() {
      const listenerScope = yield* Scope.make()
      const l = yield* Scope.extend(Tcp.listen({ port: 0 }), listenerScope)
      const server = yield* Effect.fork(l.serve(echo))
      expect((yield* Effect.promise(() => exchange(portOf(l), Buffer.from("ping")))).toString()).toBe("ping")
      yield* Scope.close(listenerScope, Exit.void)
      const exit = yield* Fiber.await(server).pipe(Effect.timeout("10 seconds"))
      expect(Exit.isSuccess(exit)).toBe(true)
    })))

  it.live("onFailure gets each failed handler's cause, typed with the handler's error, and serving goes on", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const failures: Array<{ error: Refused; id: number }> = []
      // The handler fails with Refused when the first byte is "x", echoes otherwise.
      const handler = (c: Connection.Connection): Effect.Effect<void, Refused | Connection.ReadError | Connection.WriteError> =>
        Effect.gen(function*() {
          const first = yield* c.recv
          if (Option.isSome(first) && first.value[0] === 0x78) return yield* new Refused({ byte: first.value[0] })
          if (Option.isSome(first)) yield* c.write(first.value)
          yield* c.shutdownWrite
        })
      yield* Effect.forkScoped(l.serve(handler, {
        onFailure: (cause, conn) =>
          Effect.sync(() => {
            // Typed: no cast, `_tag` narrows to Refused.
            const e = Cause.failureOption(cause)
            if (Option.isSome(e) && e.value._tag === "Refused") failures.push({ error: e.value, id: conn.id })
          })
      }))
      expect((yield* Effect.promise(() => exchange(portOf(l), Buffer.from("x marks")))).length).toBe(0)
      expect((yield* Effect.promise(() => exchange(portOf(l), Buffer.from("ok")))).toString()).toBe("ok")
      expect(failures.map((f) => f.error.byte)).toEqual([0x78])
    })))
})

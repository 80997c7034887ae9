/**
 * Using the service after its Layer was released (issue 9, item 7): every entry point fails at
 * once with a typed error and submits nothing; before, Tcp.listen / Tcp.connect / File.open never
 * completed.
 */
import { Command } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, type Context, Effect, Exit, Layer, Option } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Process, Ringline, RinglineClock, RinglineCommandExecutor, RinglineTesting, Tcp, Udp, Unix } from "../src/index.js"
import { closedPort } from "./helpers.js"

/** A Ringline context whose Layer was built and then released. */
export const releasedContext = Effect.scoped(Layer.build(Ringline.layer()))

/** Runs `effect` in `context`; it must fail with a typed error within a second. */
export const promptFailure = <A, E>(
  effect: Effect.Effect<A, E, any>,
  context: Context.Context<any>
) =>
  Effect.gen(function*() {
    const started = Date.now()
    const exit = yield* Effect.exit(Effect.scoped(effect).pipe(Effect.provide(context), Effect.timeout(2000)))
    const elapsed = Date.now() - started
    expect(Exit.isFailure(exit)).toBe(true)
    const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
    expect(Option.isSome(failure)).toBe(true)
    const error = Option.getOrThrow(failure) as any
    expect(error._tag).not.toBe("TimeoutException")
    expect(elapsed).toBeLessThan(1000)
    return error
  })

describe("item 7: use after release", () => {
  it.live("every entry point fails promptly with a typed error; no fd is left", () =>
    Effect.gen(function*() {
      const fdsBefore = RinglineTesting.openFds()
      const port = yield* closedPort
      const dir = mkdtempSync(join(tmpdir(), "ringline-released-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const context = yield* releasedContext
      const cases: Array<[string, Effect.Effect<unknown, unknown, any>, Record<string, unknown>]> = [
        ["Tcp.listen", Tcp.listen({ port: 0 }), { _tag: "SocketError", code: "ESHUTDOWN" }],
        ["Tcp.connect", Tcp.connect({ host: "127.0.0.1", port }), { _tag: "ConnectError", code: "ESHUTDOWN" }],
        ["Tcp.connect by name", Tcp.connect(`localhost:${port}`), { _tag: "ConnectError", code: "ESHUTDOWN" }],
        ["Unix.listen", Unix.listen({ path: join(dir, "s") }), { _tag: "SocketError", code: "ESHUTDOWN" }],
        ["Unix.connect", Unix.connect(join(dir, "s")), { _tag: "ConnectError", code: "ESHUTDOWN" }],
        ["Udp.bind", Udp.bind({ port: 0 }), { _tag: "RinglineUnavailable" }],
        ["Process.spawn", Process.spawn("/bin/true"), { _tag: "RinglineUnavailable" }],
        ["Process.output", Process.output("/bin/true"), { _tag: "RinglineUnavailable" }],
        ["RinglineClock.make", RinglineClock.make(), { _tag: "RinglineUnavailable" }],
        [
          "RinglineCommandExecutor",
          Command.exitCode(Command.make("/bin/true")).pipe(Effect.provide(RinglineCommandExecutor.layer)),
          { _tag: "RinglineUnavailable" }
        ]
      ]
      for (const [name, effect, expected] of cases) {
        const e = yield* promptFailure(effect, context)
        expect({ name, ...e }).toMatchObject({ name, ...expected })
        expect(String(e.message)).toMatch(/released|ESHUTDOWN/)
      }
      expect(RinglineTesting.openFds()).toBeLessThanOrEqual(fdsBefore)
    }).pipe(Effect.scoped))

  it.live("ops on a connection whose Layer was released fail with ConnectionClosed, not a hang", () =>
    Effect.gen(function*() {
      const escaped = yield* Effect.gen(function*() {
        const listener = yield* Tcp.listen({ port: 0 })
        const port = listener.address._tag === "TcpAddress" ? listener.address.port : 0
        return yield* Tcp.connect({ host: "127.0.0.1", port })
      }).pipe(Effect.scoped, Effect.provide(Layer.fresh(Ringline.layer({ shutdownTimeout: 200 }))))
      const started = Date.now()
      expect(yield* Effect.flip(escaped.send(Buffer.from("x")))).toMatchObject({ _tag: "ConnectionClosed" })
      expect(yield* Effect.flip(escaped.recv)).toMatchObject({ _tag: "ConnectionClosed" })
      yield* escaped.close
      expect(Date.now() - started).toBeLessThan(1000)
    }).pipe(Effect.scoped))
})

// The README's "Testing your app" example, verbatim (the last test checks that the README still
// shows exactly this file from the line after this header on).
import { expect, it } from "@effect/vitest"
import { Connection, RinglineTest, Tcp } from "@ringline/core"
import { Effect, Fiber, TestClock } from "effect"
import { readFileSync } from "node:fs"

// The app under test: answers every line with the line in upper case.
const line: Connection.Parser<string> = (bytes) => {
  const end = bytes.indexOf(10)
  return end < 0 ? Connection.needMore() : Connection.done(end + 1, new TextDecoder().decode(bytes.subarray(0, end)))
}
const shout = (conn: Connection.Connection) =>
  Effect.forever(
    Effect.flatMap(conn.read(line), (text) => conn.send(new TextEncoder().encode(text.toUpperCase() + "\n")))
  )

it.scoped("answers in upper case, even when every send is cut short", () =>
  Effect.gen(function*() {
    const listener = yield* Tcp.listen({ port: 7000 })
    yield* Effect.forkScoped(listener.serve(shout))
    const peer = yield* RinglineTest.connect(listener.address) // the client side, scripted
    yield* peer.write("hello\nworld\n")
    yield* peer.expect("HELLO\nWORLD\n")
  }).pipe(Effect.provide(RinglineTest.layer({
    // Fault injected: every send of the app takes at most 2 bytes (the kernel may do that too).
    faults: { rules: [{ op: "send", fault: RinglineTest.shortSend(2), times: Infinity }] }
  }))))

it.scoped("a connect that hangs fails after its timeout, on the TestClock", () =>
  Effect.gen(function*() {
    yield* RinglineTest.listen({ port: 9000 })
    const connecting = yield* Effect.fork(Tcp.connect("127.0.0.1:9000", { timeout: "5 seconds" }))
    yield* TestClock.adjust("5 seconds") // no real time passes
    const error = yield* Effect.flip(Fiber.join(connecting))
    expect(error.reason).toBe("Timeout")
  }).pipe(Effect.provide(RinglineTest.layer({
    faults: { rules: [{ op: "connect", fault: RinglineTest.delay("1 minute") }] }
  }))))

it("the README shows this file", () => {
  const self = readFileSync(new URL(import.meta.url), "utf8").split("\n")
  const example = self.slice(self.findIndex((l) => l.startsWith("import { expect, it }")), self.findIndex((l) => l.startsWith('it("the README'))).join("\n").trim()
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
  expect(readme).toContain(example.replace('import { readFileSync } from "node:fs"\n', ""))
})

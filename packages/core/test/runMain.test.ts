import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { closedPort } from "./helpers.js"

const fixture = new URL("./fixtures/runmain-fail.mjs", import.meta.url).pathname

describe("Ringline.runMain", () => {
  it.live("a failed program exits 1 with its cause pretty-printed on stderr, as NodeRuntime.runMain does", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const r = spawnSync(process.execPath, [fixture, String(port)], { encoding: "utf8", timeout: 30_000, env: { ...process.env, NO_COLOR: "1" } })
      expect(r.status, r.stderr).toBe(1)
      expect(r.stdout).toBe("")
      const [head, error, ...stack] = r.stderr.split("\n")
      // Effect's pretty logger: time, level and fiber, then the error's name and message, then its stack.
      expect(head).toMatch(/^\[\d\d:\d\d:\d\d\.\d\d\d\] ERROR \(#\d+\): ringline: the program failed$/)
      expect(error).toBe(`  ConnectError: connect to 127.0.0.1:${port} failed (Refused): ECONNREFUSED (errno 111)`)
      expect(stack[0]).toMatch(/^ +at /)
      expect(r.stderr).not.toContain("level=ERROR")
    }))
})

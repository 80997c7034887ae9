import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { load } from "../src/internal/native.js"
import { closedPort } from "./helpers.js"

const fixture = new URL("./fixtures/runmain-fail.mjs", import.meta.url).pathname
const mallocFixture = new URL("./fixtures/runmain-malloc.mjs", import.meta.url).pathname

/** Minor page faults of the fixture's buffer churn, in a process of its own (mallopt is process-wide). */
const churnFaults = (tune: "off" | "quiet" | "streaming"): number => {
  const r = spawnSync(process.execPath, ["--expose-gc", mallocFixture, tune], { encoding: "utf8", timeout: 60_000 })
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout).faults
}

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

  // 20 rounds of 32 fresh 512 KiB buffers, each written whole and then freed: with glibc's
  // dynamic thresholds the freed heap top is trimmed and rounds fault memory in again (4,655 to
  // 7,364 faults seen); with the thresholds fixed the same memory is reused (362 to 1,660). The
  // thresholds are fixed from the first large run a reader is handed (a 1 MiB message over
  // loopback here), not before: a server that never streams keeps glibc's defaults, whose arenas
  // give freed memory back (idle memory per connection).
  it.live("tunes glibc's allocator once a reader is handed a large run, unless told not to: freed buffer memory is then reused, not faulted in again", () =>
    Effect.sync(() => {
      const off = churnFaults("off")
      const quiet = churnFaults("quiet")
      const streaming = churnFaults("streaming")
      console.log(`minor page faults of the churn: tuneMalloc off ${off}, before a large run ${quiet}, after one ${streaming}`)
      expect(off).toBeGreaterThan(2000)
      expect(quiet).toBeGreaterThan(2000)
      expect(streaming).toBeLessThan(Math.min(off, quiet) / 2)
    }))

  // Only refusals run here: a call that passes its checks would change this test process's allocator.
  it("the addon's tuneMalloc refuses missing, non-number, negative, NaN and out-of-range thresholds and a non-boolean deferred flag before touching the allocator", () => {
    const native = load() as unknown as { tuneMalloc: (...args: Array<unknown>) => boolean }
    expect(() => native.tuneMalloc()).toThrow(TypeError)
    expect(() => native.tuneMalloc(4096)).toThrow(TypeError)
    expect(() => native.tuneMalloc("4096", 4096)).toThrow(TypeError)
    expect(() => native.tuneMalloc(4096, 4096n)).toThrow(TypeError)
    expect(() => native.tuneMalloc(4096, 4096, "deferred")).toThrow(TypeError)
    expect(() => native.tuneMalloc(4096, 4096, 1)).toThrow(TypeError)
    expect(() => native.tuneMalloc(-1, 4096)).toThrow(RangeError)
    expect(() => native.tuneMalloc(Number.NaN, 4096)).toThrow(RangeError)
    expect(() => native.tuneMalloc(33 * 1024 * 1024, 4096)).toThrow(/mmapThreshold must be 0..32 MiB/)
    expect(() => native.tuneMalloc(4096, 2 * 1024 * 1024 * 1024)).toThrow(RangeError)
    expect(() => native.tuneMalloc(4096, Infinity)).toThrow(RangeError)
  })
})

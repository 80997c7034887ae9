import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { KernelTls } from "../src/index.js"

describe("kernel TLS probe", () => {
  it.live("agrees with /proc/sys/net/ipv4/tcp_available_ulp", () =>
    Effect.gen(function*() {
      const ulps = readFileSync("/proc/sys/net/ipv4/tcp_available_ulp", "utf8").split(/\s+/)
      const exit = yield* Effect.exit(KernelTls.probe)
      expect(Exit.isSuccess(exit)).toBe(ulps.includes("tls"))
      if (Exit.isFailure(exit)) {
        console.log(`SKIP kernel TLS offload path: ${String(exit.cause)}`)
        expect(String(exit.cause)).toContain("modprobe tls")
      }
    }))
})

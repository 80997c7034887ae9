import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { KernelTls } from "../src/index.js"

const addon = createRequire(import.meta.url)("@ringline/native") as { tlsOpensslKtls: boolean; tlsOpensslVersion: string }

describe("kernel TLS probe", () => {
  it.live("agrees with /proc/sys/net/ipv4/tcp_available_ulp and the OpenSSL build, naming each missing piece", () =>
    Effect.gen(function*() {
      const ulp = readFileSync("/proc/sys/net/ipv4/tcp_available_ulp", "utf8").split(/\s+/).includes("tls")
      expect(addon.tlsOpensslVersion).toMatch(/^OpenSSL 3\./)
      const exit = yield* Effect.exit(KernelTls.probe)
      expect(Exit.isSuccess(exit)).toBe(ulp && addon.tlsOpensslKtls)
      if (Exit.isFailure(exit)) {
        console.log(`SKIP kernel TLS offload path: ${String(exit.cause)}`)
        const reason = String(exit.cause)
        expect(reason.includes("modprobe tls")).toBe(!ulp)
        expect(reason.includes("OPENSSL_NO_KTLS")).toBe(!addon.tlsOpensslKtls)
      }
    }))
})

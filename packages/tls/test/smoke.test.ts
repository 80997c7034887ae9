import { describe, expect, it } from "@effect/vitest"
import { Ringline, RinglineTesting } from "@ringline/core"
import { echo } from "@ringline/core/internal/echo"
import { Effect, Option } from "effect"
import * as tls from "node:tls"
import { Tls } from "../src/index.js"
import { pki } from "./certs.js"

const portOf = (l: { address: { _tag: string; port?: number } }) => (l.address as any).port as number

describe("smoke", () => {
  it.effect("node:tls client to a ringline TLS echo server", () =>
    RinglineTesting.withFreshRing(Effect.gen(function*() {
      const p = pki()
      const listener = yield* Tls.listen({ port: 0, cert: p.cert, key: p.key })
      yield* Effect.forkScoped(listener.serve(echo))
      const got = yield* Effect.promise(() => new Promise<string>((resolve, reject) => {
        const s = tls.connect({ port: portOf(listener), host: "127.0.0.1", ca: p.ca, servername: "localhost" }, () => s.end("hello over tls"))
        let out = ""
        s.on("data", (d) => (out += d))
        s.on("end", () => resolve(out))
        s.on("error", reject)
      }))
      expect(got).toBe("hello over tls")
    })))
})

/** `pnpm run echo --tls-cert --tls-key [--alpn] [--mode chunks]`: the demo server speaks TLS. */
import { describe, expect, it } from "vitest"
import * as tls from "node:tls"
import { pki } from "./certs.js"
import { startTlsEchoDemo } from "./echoDemo.js"

describe("the echo demo with --tls-cert", () => {
  it.each([["stream"], ["chunks"]])("--mode %s: prints 'listening on <host>:<port> (tls)' and echoes over TLS with ALPN", async (mode) => {
    const p = pki()
    const { child, exited, port } = await startTlsEchoDemo(["--tls-cert", p.certFile, "--tls-key", p.keyFile, "--alpn", "echo", "--mode", mode])
    try {
      const got = await new Promise<{ data: string; alpn: string | false | null }>((resolve, reject) => {
        const s = tls.connect({ port, host: "127.0.0.1", ca: p.ca, servername: "localhost", ALPNProtocols: ["echo"] }, () => s.end("demo over tls"))
        let data = ""
        s.on("data", (d) => (data += d))
        s.on("end", () => resolve({ data, alpn: s.alpnProtocol }))
        s.on("error", reject)
      })
      expect(got).toEqual({ data: "demo over tls", alpn: "echo" })
      child.kill("SIGTERM")
      expect(await exited).toBe(0)
    } finally {
      child.kill("SIGKILL")
    }
  }, 60_000)
})

/** `pnpm run echo --tls-cert --tls-key [--alpn]`: the demo server speaks TLS. */
import { describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import * as tls from "node:tls"
import { pki } from "./certs.js"

const bin = new URL("../../core/dist/bin/echo.js", import.meta.url).pathname

describe("the echo demo with --tls-cert", () => {
  it("prints 'listening on <host>:<port> (tls)' and echoes over TLS with ALPN", async () => {
    const p = pki()
    const child = spawn(process.execPath, [bin, "--port", "0", "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--alpn", "echo"], { stdio: "pipe" })
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = ""
        child.stdout.on("data", (d) => {
          out += d
          const m = /listening on 127\.0\.0\.1:(\d+) \(tls\)/.exec(out)
          if (m) resolve(Number(m[1]))
        })
        child.on("exit", (code) => reject(new Error(`exited with ${code}: ${out}`)))
      })
      const got = await new Promise<{ data: string; alpn: string | false | null }>((resolve, reject) => {
        const s = tls.connect({ port, host: "127.0.0.1", ca: p.ca, servername: "localhost", ALPNProtocols: ["echo"] }, () => s.end("demo over tls"))
        let data = ""
        s.on("data", (d) => (data += d))
        s.on("end", () => resolve({ data, alpn: s.alpnProtocol }))
        s.on("error", reject)
      })
      expect(got).toEqual({ data: "demo over tls", alpn: "echo" })
      child.kill("SIGTERM")
      expect(await new Promise((r) => child.on("exit", r))).toBe(0)
    } finally {
      child.kill("SIGKILL")
    }
  }, 60_000)
})

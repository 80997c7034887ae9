/**
 * `pnpm run echo --workers 2 [--acceptor] [--mode chunks] --tls-cert --tls-key`: TLS on every worker. Real
 * node:tls clients; the shutdown summary proves both workers did handshakes and echoed.
 */
import { describe, expect, it } from "vitest"
import { randomBytes } from "node:crypto"
import * as tls from "node:tls"
import { pki } from "./certs.js"
import { startTlsEchoDemo } from "./echoDemo.js"

const echoOverTls = (port: number, ca: string, payload: Buffer, session?: Buffer) =>
  new Promise<{ echoed: boolean; alpn: string | false | null; resumed: boolean; session: Buffer | undefined }>((resolve, reject) => {
    let next: Buffer | undefined
    const s = tls.connect(
      { port, host: "127.0.0.1", ca, servername: "localhost", ALPNProtocols: ["echo"], ...(session ? { session } : {}) },
      () => s.end(payload)
    )
    s.on("session", (t) => (next = t))
    const chunks: Array<Buffer> = []
    s.on("data", (d) => chunks.push(d))
    s.on("end", () => resolve({ echoed: Buffer.concat(chunks).equals(payload), alpn: s.alpnProtocol, resumed: s.isSessionReused(), session: next }))
    s.on("error", reject)
  })

describe("the echo demo with --workers 2 and --tls-cert", () => {
  // `--mode chunks`: Tls.secure over each worker's listener, connections served per chunk.
  for (const extra of [[], ["--acceptor"], ["--mode", "chunks"], ["--acceptor", "--mode", "chunks"]]) {
    it(`${extra.join(" ") || "reusePort"}: every worker does TLS handshakes and echoes; a session resumes on any worker; SIGTERM exits 0`, async () => {
      const p = pki()
      const { child, exited, port, stderr } = await startTlsEchoDemo(
        ["--workers", "2", ...extra, "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--alpn", "echo"]
      )
      try {
        // 16 connections at once: with SO_REUSEPORT hashing a worker gets none with odds 2^-15.
        const payloads = Array.from({ length: 16 }, (_, i) => randomBytes(1000 + i * 997))
        const results = await Promise.all(payloads.map((b) => echoOverTls(port, p.ca, b)))
        expect(results.map((r) => [r.echoed, r.alpn])).toEqual(payloads.map(() => [true, "echo"]))
        // The workers share one ticket key: every resumption with the first session's ticket
        // succeeds, whichever worker takes it.
        const ticket = results.find((r) => r.session !== undefined)?.session
        expect(ticket).toBeDefined()
        const again = await Promise.all(Array.from({ length: 6 }, () => echoOverTls(port, p.ca, Buffer.from("again"), ticket)))
        expect(again.map((r) => [r.echoed, r.resumed])).toEqual(again.map(() => [true, true]))
        child.kill("SIGTERM")
        expect(await exited).toBe(0)
        const lines = stderr().split("\n").filter((l) => l.startsWith("ringline worker "))
        expect(lines.length).toBe(2)
        for (const l of lines) expect(Number(/accepted=(\d+)/.exec(l)![1])).toBeGreaterThan(0)
      } finally {
        child.kill("SIGKILL")
      }
    }, 120_000)
  }
})

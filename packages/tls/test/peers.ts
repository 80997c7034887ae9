/** Real TLS peers for the tests: the openssl CLI (s_client / s_server) and node:tls. */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as net from "node:net"

export interface Proc {
  readonly child: ChildProcessWithoutNullStreams
  /** stdout and stderr so far. */
  output(): string
  /** Resolves once the output matches `re` (rejects after `ms` with the output so far). */
  waitFor(re: RegExp, ms?: number): Promise<string>
  readonly exited: Promise<number | null>
  /** Kills the process and resolves once its pipes are closed (so fd counts are back). */
  kill(): Promise<void>
}

export const openssl = (args: ReadonlyArray<string>, cwd?: string): Proc => {
  const child = spawn("openssl", args, { cwd, stdio: "pipe" })
  let out = ""
  const watchers: Array<() => void> = []
  const onData = (d: Buffer) => {
    out += d.toString("latin1")
    for (const w of watchers.slice()) w()
  }
  child.stdout.on("data", onData)
  child.stderr.on("data", onData)
  child.stdin.on("error", () => {})
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => {
    resolve(code)
    for (const w of watchers.slice()) w()
  }))
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()))
  return {
    child,
    output: () => out,
    waitFor: (re, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(out)) {
            watchers.splice(watchers.indexOf(check), 1)
            clearTimeout(timer)
            resolve(out)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            watchers.splice(watchers.indexOf(check), 1)
            clearTimeout(timer)
            reject(new Error(`openssl exited before ${re}: ${out}`))
          }
        }
        const timer = setTimeout(() => {
          watchers.splice(watchers.indexOf(check), 1)
          reject(new Error(`timed out waiting for ${re}; output: ${out}`))
        }, ms)
        watchers.push(check)
        check()
      }),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      return closed
    }
  }
}

/** A free loopback port (bound and released); for openssl s_server, which needs a number. */
export const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(p))
    })
  })

export const sha256 = async (data: Uint8Array | Buffer): Promise<string> =>
  (await import("node:crypto")).createHash("sha256").update(data).digest("hex")

/**
 * Starts the echo demo (`packages/core/dist/bin/echo.js`) with TLS arguments and waits for its
 * "listening on 127.0.0.1:<port> (tls)" line; the TLS demo tests share it.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"

const bin = new URL("../../core/dist/bin/echo.js", import.meta.url).pathname

export interface EchoDemo {
  readonly child: ChildProcessWithoutNullStreams
  readonly port: number
  /** The exit code (or signal name) once the process has exited. */
  readonly exited: Promise<unknown>
  /** Everything the demo wrote to stderr so far. */
  readonly stderr: () => string
}

export const startTlsEchoDemo = async (args: ReadonlyArray<string>): Promise<EchoDemo> => {
  const child = spawn(process.execPath, [bin, "--port", "0", ...args], { stdio: "pipe" })
  let err = ""
  child.stderr.on("data", (d) => (err += d))
  const exited = new Promise((r) => child.on("exit", r))
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = ""
      child.stdout.on("data", (d) => {
        out += d
        const m = /listening on 127\.0\.0\.1:(\d+) \(tls\)/.exec(out)
        if (m) resolve(Number(m[1]))
      })
      child.on("exit", (code) => reject(new Error(`exited with ${code}: ${out} ${err}`)))
    })
    return { child, port, exited, stderr: () => err }
  } catch (e) {
    child.kill("SIGKILL")
    throw e
  }
}

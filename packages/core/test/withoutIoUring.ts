/**
 * Runs code in a Node child process where io_uring is blocked the way Docker's default seccomp
 * profile blocks it (io_uring_setup/enter/register → EPERM on every thread; see
 * `blockIoUringForTesting` in @ringline/native). The machine-wide sysctl
 * kernel.io_uring_disabled is never touched, so rings of other processes keep working.
 */
import { Effect } from "effect"
import { execFile } from "node:child_process"

/** The preload that installs the filter; usable as `node --import <preload> ...` from any package. */
export const blockIoUringPreload = new URL("./fixtures/block-io-uring.mjs", import.meta.url).pathname

/** What the child did: its exit status, output, and its last stdout line parsed as JSON (if any). */
export interface ChildResult {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  readonly result: any
}

/**
 * Runs `source` (an ES module body: top-level await, bare imports resolved from `cwd`, which
 * defaults to packages/core so that `effect` and `@ringline/core` resolve) after the filter is
 * installed. The code reports by printing one JSON line last. Never fails: a crash shows up as a
 * non-zero `status` and `stderr`, which the test asserts on.
 */
export const runWithoutIoUring = (
  source: string,
  options: { readonly cwd?: string; readonly timeoutMs?: number } = {}
): Effect.Effect<ChildResult> =>
  Effect.async<ChildResult>((resume) => {
    const child = execFile(
      process.execPath,
      ["--import", blockIoUringPreload, "--input-type=module", "-e", source],
      {
        cwd: options.cwd ?? new URL("..", import.meta.url).pathname,
        encoding: "utf8",
        timeout: options.timeoutMs ?? 30_000,
        env: { ...process.env, NO_COLOR: "1" }
      },
      (error, stdout, stderr) => {
        const last = stdout.trim().split("\n").pop() ?? ""
        let result: unknown = undefined
        try {
          result = JSON.parse(last)
        } catch {
          result = undefined
        }
        const status = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resume(Effect.succeed({ status, stdout, stderr, result }))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

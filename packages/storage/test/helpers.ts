/** Storage test helpers: a fresh ring per test with op-table and fd accounting (as core's helpers). */
import { RinglineTesting } from "@ringline/core"
import { Effect, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** Open file descriptors of this process. */
export const fdCount = RinglineTesting.openFds

/** A fresh temporary directory, removed (with its contents) when the scope closes. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "ringline-storage-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A fresh ring per test; fails if an op is still in flight or an fd leaked afterwards. */
export const withRing = RinglineTesting.withFreshRing

/** A FIFO (named pipe) in a fresh temporary directory: a file whose reads wait for a writer. */
export const tempFifo: Effect.Effect<string, never, Scope.Scope> = Effect.map(tempDir, (dir) => {
  const path = join(dir, "fifo")
  execFileSync("mkfifo", [path])
  return path
})

/** What a caller may do to memory an op is still using: core's test helper, shared. */
export { detachAndReuse } from "../../core/test/detach.js"

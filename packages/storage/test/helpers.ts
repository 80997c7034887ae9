/** Storage test helpers: a fresh ring per test with op-table and fd accounting (as core's helpers). */
import { RinglineTesting } from "@ringline/core"
import { Effect, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

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

/**
 * What a caller may do to memory an op is still using: moves `view`'s memory to a new
 * ArrayBuffer (structuredClone with a transfer list, which detaches `view`) that is dropped at
 * once, collects it, then allocates `count` arrays of `view`'s former size filled with 0x42,
 * which may take that memory (as core's test helper of the same name). An op that did not pin it now reads or writes those arrays, or
 * faults (a freed large buffer is unmapped: EFAULT).
 */
export const detachAndReuse = (view: Uint8Array, count: number): Array<Uint8Array> => {
  const size = view.byteLength
  void structuredClone(view.buffer, { transfer: [view.buffer as ArrayBuffer] })
  setFlagsFromString("--expose-gc")
  const gc = runInNewContext("gc") as () => void
  gc()
  gc()
  return Array.from({ length: count }, () => new Uint8Array(size).fill(0x42))
}

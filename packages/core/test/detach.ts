/**
 * A test helper with no imports of ringline itself, so that storage's tests share it
 * (packages/storage/test/helpers.ts re-exports it) without loading core's sources beside the
 * built package they test.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

/**
 * What a caller may do to memory an op is still using: moves `view`'s memory to a new
 * ArrayBuffer (structuredClone with a transfer list, which detaches `view`) that is dropped at
 * once, collects it, then allocates `count` arrays of `view`'s former size filled with 0x42,
 * which may take that memory. An op that did not pin it now reads or writes those arrays, or
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

/**
 * When the C allocator gets its streaming thresholds (`Ringline.runMain`'s `tuneMalloc`): not at
 * start-up but when a reader is first handed a large run, i.e. once the process streams.
 *
 * Fixed thresholds save bulk echo its page faults (malloc.cc), but they also make every arena
 * keep its high-water mark: V8's compiler and GC threads, which JIT-compile while a server
 * accepts, then kept ~3 MB (3 KiB per connection of the idle1000 row) that glibc's defaults give
 * back. A server that never receives a large run keeps glibc's defaults.
 */
import { load } from "./native.js"

/**
 * A run this large is streaming: two of them freed at the heap's top pass glibc's default trim
 * threshold (128 KiB), and the next ones would be faulted in again.
 */
export const LARGE_RUN = 64 * 1024

/** Per thread: whether the next large run still has to tell the addon (once is enough). */
let watching = true

/** Called with the size of each run handed to a reader; cheap unless `n` is large, once. */
export const noteRun = (n: number): void => {
  if (n < LARGE_RUN || !watching) return
  watching = false
  try {
    load().mallocLargeRun()
  } catch {
    // No addon (RinglineTest's in-memory wire): nothing to tune.
  }
}

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
 * A run this large is streaming. 64 KiB was too high: a 16 KiB echo over 16 connections (16 KiB
 * handed over per request, ~256 KiB in flight) never reached it, and glibc's default trim
 * threshold (128 KiB) then trimmed and page-faulted the heap's top (0.38-0.49 minor faults and
 * 28-32 µs CPU per request in 2 of 3 reps, against 0.002 and 14.3 µs with 16 KiB: stream-mode
 * echo on CPU 0, `bench/bin/loadgen --conns 16 --size 16384` on CPU 1, 3 interleaved reps,
 * 2026-12-01). Smaller runs (a 64 B echo, an idle server) still keep glibc's defaults.
 */
export const LARGE_RUN = 16 * 1024

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

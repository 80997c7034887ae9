/**
 * Many direct reads with a fixed number in flight, driven from the completion handler itself:
 * each CQE hands its bytes to the caller's callback, returns its pool chunk and submits the next
 * read at once, without resuming a fiber per read. This is how fio keeps a device busy, and what
 * a per-read Effect cannot do as cheaply (one interruptible Effect costs several µs of CPU per
 * read, which at queue depth 32 on O_DIRECT turns into device idle time).
 *
 * Interruption and failure follow the per-read rules: every read in flight is cancelled and the
 * Effect completes only after each one's terminal CQE, so no chunk is reused while the kernel may
 * still write it.
 */
import { Ring } from "@ringline/core"
import { Cause, Effect } from "effect"
import { type AlignmentError, type DirectFileError, type DirectPool, fileError, stageRw } from "./direct.js"

export interface PipelineOptions {
  /** Bytes per read (a multiple of the file's offset alignment, at most one pool chunk). */
  readonly length: number
  /** Reads in flight at most (also bounded by the pool's free chunks). */
  readonly concurrency: number
}

type Outcome = { readonly _tag: "Done" } | { readonly _tag: "Fail"; readonly error: AlignmentError | DirectFileError } | {
  readonly _tag: "Die"
  readonly defect: unknown
}

/** Tag of the ASYNC_CANCEL ops this pipeline submits (read ops are tagged with their chunk). */
const TAG_CANCEL = -2

class Pipeline implements Ring.OpOwner {
  private inFlight = 0
  /** Cancels submitted whose CQE has not arrived: the run is idle only when these are in too. */
  private cancels = 0
  private reads = 0
  private stopped: Outcome | undefined
  private exhausted = false
  private cancelled = false
  /** Per pool chunk: the slot of the read using it (-1 if none) and that read's file offset. */
  private readonly slotOf: Int32Array
  private readonly offsetOf: Float64Array
  private onIdle: (() => void) | undefined

  constructor(
    private readonly d: Ring.Ring,
    private readonly pool: DirectPool,
    private readonly index: number,
    private readonly path: string,
    private readonly offsets: Iterator<number>,
    private readonly options: PipelineOptions,
    private readonly misaligned: (offset: number) => AlignmentError | undefined,
    private readonly onRead: (bytes: Uint8Array, offset: number) => void
  ) {
    this.slotOf = new Int32Array(pool.chunks).fill(-1)
    this.offsetOf = new Float64Array(pool.chunks)
  }

  /** Submits reads until `concurrency` are in flight, the offsets end, or no chunk is free. */
  fill(): void {
    while (this.stopped === undefined && !this.cancelled && !this.exhausted && this.inFlight < this.options.concurrency) {
      const c = this.pool.tryTake()
      if (c < 0) return // the next CQE gives one back (and with none in flight, `run` waits for one)
      if (!this.submit(c)) return
    }
  }

  /** Submits the next offset's read into chunk `c`; false (chunk given back) when there is none. */
  submit(c: number): boolean {
    // The offsets iterator is user code run from the CQE handler: whatever it throws or answers
    // must end this run with a defect, never escape into the completion dispatch.
    let next: IteratorResult<number>
    try {
      next = this.offsets.next()
      if (typeof next !== "object" || next === null) throw new TypeError(`forEachRead: the offsets iterator answered ${String(next)}`)
      if (next.done !== true && typeof next.value !== "number") {
        throw new TypeError(`forEachRead: offset ${String(next.value)} is not a number`)
      }
    } catch (defect) {
      next = { done: true, value: undefined }
      this.stop({ _tag: "Die", defect })
    }
    if (next.done === true) {
      this.exhausted = true
      this.pool.give(c)
      return false
    }
    const bad = this.misaligned(next.value)
    if (bad !== undefined) {
      this.pool.give(c)
      this.stop({ _tag: "Fail", error: bad })
      return false
    }
    const slot = this.d.alloc(this, c)
    stageRw(this.d, this.pool, Ring.prepReadFixed, slot, this.index, c, next.value, this.options.length)
    this.slotOf[c] = slot
    this.offsetOf[c] = next.value
    this.inFlight++
    return true
  }

  onCqe(_slot: number, c: number, res: number): void {
    if (c === TAG_CANCEL) {
      this.cancels--
      return this.checkIdle()
    }
    this.inFlight--
    this.slotOf[c] = -1
    if (this.stopped === undefined && !this.cancelled) {
      if (res >= 0) {
        this.reads++
        try {
          this.onRead(this.pool.view(c, res), this.offsetOf[c]!)
        } catch (defect) {
          this.stop({ _tag: "Die", defect })
        }
      } else {
        this.stop({ _tag: "Fail", error: fileError("read", this.path, res) })
      }
    }
    // The callback has returned: the chunk may take the next read.
    this.pool.give(c)
    this.fill()
    this.checkIdle()
  }

  private checkIdle(): void {
    if (this.idle && this.onIdle !== undefined) {
      const f = this.onIdle
      this.onIdle = undefined
      f()
    }
  }

  /** Stops submitting and cancels what is in flight; the first reason wins. */
  stop(outcome: Outcome): void {
    if (this.stopped !== undefined) return
    this.stopped = outcome
    this.cancelAll()
  }

  cancelAll(): void {
    if (this.cancelled) return
    this.cancelled = true
    for (let c = 0; c < this.slotOf.length; c++) {
      const slot = this.slotOf[c]!
      if (slot >= 0) {
        this.cancels++
        this.d.cancel(slot, this, TAG_CANCEL)
      }
    }
  }

  get idle(): boolean {
    return this.inFlight === 0 && this.cancels === 0
  }

  get outcome(): Outcome | undefined {
    if (this.stopped !== undefined) return this.stopped
    return this.exhausted ? { _tag: "Done" } : undefined
  }

  get count(): number {
    return this.reads
  }

  /** `f` runs once nothing is in flight (at once if nothing is). */
  whenIdle(f: () => void): void {
    if (this.idle) f()
    else this.onIdle = f
  }
}

/**
 * Reads `options.length` bytes at each offset from `offsets`, `options.concurrency` at a time,
 * calling `onRead(bytes, offset)` at each completion (completion order). `bytes` is a view of
 * the registered chunk, valid only during the call. Succeeds with the number of reads.
 */
export const forEachRead = (
  d: Ring.Ring,
  pool: DirectPool,
  index: number,
  path: string,
  offsets: Iterable<number>,
  options: PipelineOptions,
  misaligned: (offset: number) => AlignmentError | undefined,
  onRead: (bytes: Uint8Array, offset: number) => void
): Effect.Effect<number, AlignmentError | DirectFileError> =>
  Effect.uninterruptibleMask((restore) => {
    const p = new Pipeline(d, pool, index, path, offsets[Symbol.iterator](), options, misaligned, onRead)
    // Submits from the CQE handler until the offsets end or a read fails, then waits for the
    // last CQE. With nothing in flight and no free chunk (other files hold the pool), it waits
    // for one chunk (taken uninterruptibly, so it cannot leak) and starts again from it.
    const idle = Effect.async<void>((resume) => p.whenIdle(() => resume(Effect.void)))
    const takeChunk = Effect.uninterruptibleMask((r) =>
      Effect.flatMap(r(pool.take), (c) =>
        Effect.sync(() => {
          if (p.submit(c)) p.fill()
        }))
    )
    const run: Effect.Effect<void> = Effect.suspend(() => {
      p.fill()
      if (!p.idle) return Effect.zipRight(idle, run)
      if (p.outcome !== undefined) return Effect.void
      return Effect.zipRight(takeChunk, run)
    })
    const settle = Effect.suspend((): Effect.Effect<number, AlignmentError | DirectFileError> => {
      const o = p.outcome
      if (o === undefined || o._tag === "Done") return Effect.succeed(p.count)
      return o._tag === "Fail" ? Effect.fail(o.error) : Effect.die(o.defect)
    })
    return Effect.catchAllCause(Effect.zipRight(restore(run), settle), (cause) => {
      if (!Cause.isInterrupted(cause) || p.idle) return Effect.failCause(cause)
      // Interrupted with reads in flight: cancel them and complete after their CQEs.
      p.cancelAll()
      return Effect.zipRight(idle, Effect.failCause(cause))
    })
  })

/**
 * One SQE → one Effect: the op model every module that submits single ops builds on (storage's
 * files, core's public `Ring` module). The rules it keeps:
 * - the memory an op points at (its "hold") is pinned by its slot until the terminal CQE;
 * - interrupting the Effect cancels the op (ASYNC_CANCEL by user_data) and completes only after
 *   both the op's terminal CQE and the cancel's own CQE, so the ring holds nothing of the op
 *   once the interruption is over, and no buffer is reused while the kernel may still write it;
 * - a resource the op produced although its caller was interrupted (an fd, a fixed slot) is
 *   disposed of before the interruption completes (`submitOwned`).
 */
import { Effect } from "effect"
import { constants } from "node:os"
import type { Stager } from "./prep.js"

/** Receives the CQEs of the ops it submitted. `tag` is whatever the owner chose at alloc time. */
export interface OpOwner {
  onCqe(slot: number, tag: number, res: number, flags: number): void
}

/**
 * Memory an op points at, pinned until its terminal CQE: buffers, NUL-terminated paths, iovec
 * arrays (and lists of them).
 */
export type Hold = ArrayBufferView | ArrayBuffer | ReadonlyArray<Hold> | undefined

/** What the helper needs of a ring: staging, op slots, cancel by user_data, and the pins. */
export interface OpRing extends Stager {
  alloc(owner: OpOwner, tag: number): number
  cancel(target: number, owner?: OpOwner, tag?: number): void
  readonly holds: Array<unknown>
}

/**
 * One op: `prepare(slot)` stages its SQE (see prep.ts) and returns what the op points at, which
 * the slot pins until the terminal CQE. `finish` turns the CQE result (a negative errno on
 * failure) into the outcome, unless the caller was interrupted. `always` sees the result at the
 * CQE even after an interruption (to give back a pool chunk, to close an fd nobody will read).
 * `guard`, if given, runs first (uninterruptibly, so what it takes is released by `always`):
 * returning an Effect skips the SQE and runs that instead.
 */
export interface OpSpec<A, E> {
  readonly prepare: (slot: number) => Hold | void
  readonly finish: (res: number) => Effect.Effect<A, E>
  readonly always?: ((res: number) => void) | undefined
  readonly guard?: (() => Effect.Effect<A, E> | undefined) | undefined
}

const EAGAIN = constants.errno.EAGAIN

class Single<A, E> implements OpOwner {
  finished = false
  interrupted = false
  outcome: Effect.Effect<A, E> | undefined = undefined
  resume: ((effect: Effect.Effect<A, E>) => void) | undefined = undefined
  afterInterrupt: (() => void) | undefined = undefined
  constructor(
    readonly finish: (res: number) => Effect.Effect<A, E>,
    readonly always: ((res: number) => void) | undefined
  ) {}

  onCqe(_slot: number, _tag: number, res: number): void {
    this.finished = true
    // `finish` before `always`: it may still read memory that `always` gives back.
    if (!this.interrupted) this.outcome = this.finish(res)
    this.always?.(res)
    const r = this.resume
    if (r !== undefined) {
      this.resume = undefined
      return r(this.outcome!)
    }
    const after = this.afterInterrupt
    this.afterInterrupt = undefined
    after?.()
  }
}

/**
 * Runs one op as an Effect (see {@link OpSpec}). The hot path of every file read and write, so it
 * is built from the fewest Effect primitives that give these semantics (one mask, one catch, one
 * async): Effect.async with a canceler costs about 0.5 µs more per op.
 */
export const submitWith = <A, E>(ring: OpRing, spec: OpSpec<A, E>): Effect.Effect<A, E> =>
  Effect.uninterruptibleMask((restore) => {
    const { always, guard } = spec
    if (guard !== undefined) {
      const instead = guard()
      if (instead !== undefined) return restore(instead)
    }
    const op = new Single(spec.finish, always)
    let slot: number
    try {
      slot = ring.alloc(op, 0)
      // On a staging failure the driver gives the slot back: nothing reached the kernel.
      const hold = spec.prepare(slot)
      if (hold !== undefined) ring.holds[slot] = hold
    } catch (e) {
      always?.(-EAGAIN)
      return Effect.die(e)
    }
    return Effect.catchAllCause(
      restore(Effect.async<A, E>((resume) => {
        if (op.finished) resume(op.outcome!)
        else op.resume = resume
      })),
      (cause) => {
        op.resume = undefined
        op.interrupted = true
        if (op.finished) return Effect.failCause(cause)
        // Interrupted while the kernel still owns the op: cancel it, and complete once both the
        // op's CQE and the cancel's are in (the ring then holds nothing of this op).
        return Effect.zipRight(
          Effect.async<void>((done) => {
            if (op.finished) return done(Effect.void)
            let pending = 2
            const one = () => {
              if (--pending === 0) done(Effect.void)
            }
            op.afterInterrupt = one
            ring.cancel(slot, { onCqe: one })
          }),
          Effect.failCause(cause)
        )
      }
    )
  })

const succeedRes = (res: number): Effect.Effect<number> => Effect.succeed(res)

/** `submitWith` succeeding with the raw CQE result (a negative errno on failure). */
export const submit = (
  ring: OpRing,
  prepare: (slot: number) => Hold | void,
  always?: (res: number) => void
): Effect.Effect<number> => submitWith(ring, { prepare, finish: succeedRes, always })

/**
 * `submit` for ops whose success is a resource (a fixed-file index, an fd): if the caller is
 * interrupted after the kernel produced it, `dispose` releases it before the interruption
 * completes; on success `use` runs (uninterruptibly with the submit) before the result returns.
 */
export const submitOwned = <E, R>(
  ring: OpRing,
  prepare: (slot: number) => Hold | void,
  dispose: (res: number) => Effect.Effect<void>,
  use: (res: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<number, E, R> =>
  Effect.uninterruptibleMask((restore) => {
    let produced = -1
    return restore(submit(ring, prepare, (res) => {
      if (res >= 0) produced = res
    })).pipe(
      Effect.onExit((exit) => (exit._tag === "Failure" && produced >= 0 ? dispose(produced) : Effect.void)),
      Effect.tap((res) => (res >= 0 ? use(res) : Effect.void))
    )
  })

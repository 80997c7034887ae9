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
import { type Cause, Effect } from "effect"
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

/**
 * Calls `f` with each view and ArrayBuffer in `hold` whose memory a transfer (postMessage,
 * structuredClone with a transfer list) could move to a new owner: what a ring pins natively
 * until the op's terminal CQE. A SharedArrayBuffer cannot be detached and is left out, as is
 * anything in a hold that is not memory.
 */
export const forEachDetachable = (hold: Hold, f: (memory: ArrayBufferView | ArrayBuffer) => void): void => {
  if (Array.isArray(hold)) {
    for (const h of hold as ReadonlyArray<Hold>) forEachDetachable(h, f)
    return
  }
  if (!ArrayBuffer.isView(hold) && !(hold instanceof ArrayBuffer)) return
  const buffer = ArrayBuffer.isView(hold) ? hold.buffer : hold
  if (typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer) return
  f(hold)
}

/** What the helper needs of a ring: staging, op slots, cancel by user_data, and the pins. */
export interface OpRing extends Stager {
  alloc(owner: OpOwner, tag: number): number
  /** `prepare` threw: give `slot` back, or neutralise its staged SQE (see Driver.abandon). */
  abandon(slot: number): void
  cancel(target: number, owner?: OpOwner, tag?: number): void
  readonly holds: Array<unknown>
  /** Keeps the memory of `hold` even if its ArrayBuffers are detached, until `slot` is released. */
  pinHold?(slot: number, hold: Hold): void
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

/**
 * One op's whole bookkeeping as one object: the hot paths (a file read, a direct read) subclass
 * it with their arguments as fields, so that running an op allocates this object, its two
 * closures and what `Effect.async` needs, and nothing else (no spec object, no closure per
 * callback). `prepare`, `finish` and `always` are the {@link OpSpec} rules. Its state is private
 * (#fields), so subclasses may name their fields freely. An instance is used by one run only:
 * build it inside the run (see {@link awaitOp}), never when the Effect is built, since an Effect
 * may run twice, or twice at once.
 */
export abstract class Op<A, E> implements OpOwner {
  #finished = false
  #interrupted = false
  #outcome: Effect.Effect<A, E> | undefined = undefined
  #resume: ((effect: Effect.Effect<A, E>) => void) | undefined = undefined
  #afterInterrupt: (() => void) | undefined = undefined
  /** Where the op went: what an interruption cancels. */
  #ring: OpRing | undefined = undefined
  #slot = -1
  #abandoned = false

  /** Stages the SQE for `slot`; returns the memory it points at (pinned until the terminal CQE). */
  abstract prepare(slot: number): Hold | void
  /** The outcome of CQE result `res`, unless the caller was interrupted. */
  abstract finish(res: number): Effect.Effect<A, E>
  /** Sees `res` at the CQE even after an interruption (and -EAGAIN when staging threw). */
  always(_res: number): void {}

  onCqe(_slot: number, _tag: number, res: number): void {
    // The CQE of an SQE whose `prepare` threw (a NOP now, or already submitted): the run is over.
    if (this.#abandoned) return
    this.#finished = true
    // `finish` before `always`: it may still read memory that `always` gives back.
    if (!this.#interrupted) this.#outcome = this.finish(res)
    this.always(res)
    const r = this.#resume
    if (r !== undefined) {
      this.#resume = undefined
      return r(this.#outcome!)
    }
    const after = this.#afterInterrupt
    this.#afterInterrupt = undefined
    after?.()
  }

  /** Effect.async's registration: resumes at once if the CQE is already in. */
  readonly #register = (resume: (effect: Effect.Effect<A, E>) => void): void => {
    if (this.#finished) resume(this.#outcome!)
    else this.#resume = resume
  }

  /**
   * The caller's failure, seen uninterruptibly: after an interruption while the kernel still
   * owns the op, cancel it and complete once both the op's CQE and the cancel's are in (the ring
   * then holds nothing of this op).
   */
  readonly #onCause = (cause: Cause.Cause<E>): Effect.Effect<A, E> => {
    this.#resume = undefined
    this.#interrupted = true
    if (this.#finished) return Effect.failCause(cause)
    return Effect.zipRight(
      Effect.async<void>((done) => {
        if (this.#finished) return done(Effect.void)
        let pending = 2
        const one = () => {
          if (--pending === 0) done(Effect.void)
        }
        this.#afterInterrupt = one
        this.#ring!.cancel(this.#slot, { onCqe: one })
      }),
      Effect.failCause(cause)
    )
  }

  /** See {@link awaitOp}. */
  static await<A, E>(
    ring: OpRing,
    op: Op<A, E>,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
  ): Effect.Effect<A, E> {
    try {
      const slot = ring.alloc(op, 0)
      op.#ring = ring
      op.#slot = slot
      const hold = op.prepare(slot)
      if (hold !== undefined) {
        ring.holds[slot] = hold
        ring.pinHold?.(slot, hold)
      }
    } catch (e) {
      // Nothing of this op may reach the kernel now: the slot goes back, or its SQE becomes a NOP.
      if (op.#slot >= 0) {
        op.#abandoned = true
        ring.abandon(op.#slot)
      }
      op.always(-EAGAIN)
      return Effect.die(e)
    }
    return Effect.catchAllCause(restore(Effect.async<A, E>(op.#register)), op.#onCause)
  }
}

/**
 * Stages `op` and waits for its CQE: the body of an `Effect.uninterruptibleMask`, `restore`
 * being that mask's (so the wait is exactly as interruptible as the caller, and staging cannot
 * be interrupted half-way). The hot path of every file read and write, built from the fewest
 * Effect primitives that give the op rules (one mask, one catch, one async): Effect.async with a
 * canceler costs about 0.5 µs more per op.
 */
export const awaitOp: <A, E>(
  ring: OpRing,
  op: Op<A, E>,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
) => Effect.Effect<A, E> = Op.await

/** An {@link OpSpec} as an {@link Op}. */
class SpecOp<A, E> extends Op<A, E> {
  constructor(private readonly spec: OpSpec<A, E>) {
    super()
  }
  prepare(slot: number): Hold | void {
    return this.spec.prepare(slot)
  }
  finish(res: number): Effect.Effect<A, E> {
    return this.spec.finish(res)
  }
  override always(res: number): void {
    this.spec.always?.(res)
  }
}

/** Runs one op as an Effect (see {@link OpSpec}). */
export const submitWith = <A, E>(ring: OpRing, spec: OpSpec<A, E>): Effect.Effect<A, E> =>
  Effect.uninterruptibleMask((restore) => {
    const guard = spec.guard
    if (guard !== undefined) {
      const instead = guard()
      if (instead !== undefined) return restore(instead)
    }
    return awaitOp(ring, new SpecOp(spec), restore)
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

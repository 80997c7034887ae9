/**
 * Closing fixed-file slots and regular fds through the ring (public in `Ring.ts`): a closed
 * fixed slot tells accept loops waiting for one; the Effect forms complete after the CQE.
 */
import { Effect } from "effect"
import { driverOf, type RingHandle } from "./handle.js"

/** A direct close of fixed slot `index`; `done` after its CQE (or at once if it cannot be staged). */
export const closeFixedThen = (ring: RingHandle, index: number, done: () => void): void => {
  const d = driverOf(ring)
  try {
    d.closeFixed(index, {
      onCqe: () => {
        d.fixedSlotReleased()
        done()
      }
    })
  } catch {
    done()
  }
}

/** Uninterruptible: it always waits for the CQE. */
export const closeFixed = (ring: RingHandle, index: number): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.async<void>((resume) => closeFixedThen(ring, index, () => resume(Effect.void))))

export const closeFd = (ring: RingHandle, fd: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    try {
      driverOf(ring).closeFd(fd, { onCqe: () => resume(Effect.void) })
    } catch {
      resume(Effect.void)
    }
  })

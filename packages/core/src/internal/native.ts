/**
 * Loads the addon lazily, so that importing @ringline/core (e.g. for the in-memory test driver)
 * never requires the native build.
 */
import type * as Native from "@ringline/native"
import { createRequire } from "node:module"

export type { Native }

let loaded: typeof Native | undefined

export const load = (): typeof Native => {
  if (loaded === undefined) {
    loaded = createRequire(import.meta.url)("@ringline/native") as typeof Native
  }
  return loaded
}

/** Words of the control block shared with the ring; keep in sync with packages/native/src/ring.h. */
export const Ctl = {
  staged: 0,
  recycled: 1,
  submitted: 2,
  sqFull: 3,
  cqes: 4,
  wakeups: 5,
  submitErr: 6,
  overflow: 7,
  emptyWakeups: 8
} as const

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

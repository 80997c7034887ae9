import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { StorageSupport } from "../src/index.js"

describe("storage opcode probe", () => {
  it.effect("reports the file opcodes this kernel has (6.18 has all of them)", () =>
    Effect.gen(function*() {
      const ops = yield* StorageSupport.probe
      expect(Object.keys(ops).length).toBe(14)
      // The basic file opcodes exist since 5.6; on any kernel ringline accepts they are present.
      expect(ops.OPENAT && ops.READ && ops.WRITE && ops.STATX && ops.CLOSE).toBe(true)
    }))
})

/**
 * Which opcodes this kernel supports, asked of a small throwaway ring (IORING_REGISTER_PROBE),
 * with no `Ringline` service (public as `Ring.probeOpcodes`).
 */
import { Effect } from "effect"
import type { RinglineUnavailable } from "../../RinglineError.js"
import { load } from "../native.js"
import { unavailable } from "../unavailable.js"

/** The smallest ring the addon accepts: enough to probe opcodes, nothing more. */
const probeRingOptions = {
  sqEntries: 2,
  cqEntries: 8,
  bufferCount: 1,
  bufferSize: 1,
  files: 0,
  sendPoolBytes: 1,
  argBytes: 1,
  sqpoll: false,
  sqpollIdleMs: 0
} as const

export const probeOpcodes: Effect.Effect<Uint8Array, RinglineUnavailable> = Effect.acquireUseRelease(
  Effect.try({
    try: () => new (load().Ring)(probeRingOptions, () => {}),
    // Same diagnosis as the Ringline Layer's (seccomp, sysctl, memlock...), for this small ring.
    catch: (e) => unavailable(e, { sqEntries: probeRingOptions.sqEntries, maxConnections: probeRingOptions.files })
  }),
  (ring) => Effect.sync(() => ring.info().opcodes),
  (ring) => Effect.sync(() => ring.close())
)

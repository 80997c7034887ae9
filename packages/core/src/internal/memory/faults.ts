/**
 * The fault plan of the in-memory network (RinglineTest): rules that say which operation of the
 * side under test fails or misbehaves, after how many calls, on which connection, how many
 * times, and a seeded generator for whatever a rule leaves to chance (a short send's length, a
 * rule's probability). Given the same seed and the same sequence of operations, the same faults
 * fire: a failing test replays exactly.
 */
import { Duration } from "effect"

/** The operations a rule can target. */
export type FaultOp = "connect" | "accept" | "send" | "recv"

/** What happens to a targeted operation. */
export type Fault =
  /** The connection is reset (the kernel's ECONNRESET), as if the peer had sent RST. */
  | { readonly _tag: "Reset" }
  /** A send takes at most `bytes` (default: a seeded length from 1 to all but one byte). */
  | { readonly _tag: "ShortSend"; readonly bytes?: number }
  /** A connect is refused (ECONNREFUSED). */
  | { readonly _tag: "Refuse" }
  /** The operation completes with `-errno` (e.g. `"EMFILE"` for accept, `"ENETUNREACH"` for connect). */
  | { readonly _tag: "Fail"; readonly code: string }
  /** Receiving stops for `duration`, as when the provided-buffer ring ran empty (ENOBUFS). */
  | { readonly _tag: "Pause"; readonly duration: Duration.DurationInput }
  /** The operation completes only after `duration` on the Clock. */
  | { readonly _tag: "Delay"; readonly duration: Duration.DurationInput }

/** One rule of a fault plan. */
export interface FaultRule {
  readonly op: FaultOp
  readonly fault: Fault
  /** Matching calls let through before the first injection (default 0). */
  readonly after?: number
  /** Injections before the rule is spent (default 1; `Infinity` for every matching call). */
  readonly times?: number
  /** Only the n-th connection of the network (1-based, in the order they were made). */
  readonly connection?: number
  /** Chance (0..1, from the plan's seed) that a matching call is injected (default 1). */
  readonly probability?: number
}

/** A seeded list of rules. */
export interface FaultPlan {
  readonly seed?: number
  readonly rules: ReadonlyArray<FaultRule>
}

const FAULTS_BY_OP: Record<FaultOp, ReadonlyArray<Fault["_tag"]>> = {
  connect: ["Refuse", "Fail", "Delay"],
  accept: ["Fail", "Delay"],
  send: ["Reset", "ShortSend", "Fail", "Delay"],
  recv: ["Reset", "Pause", "Fail", "Delay"]
}

/** Why a rule cannot be used, naming its index and field; undefined when every rule is fine. */
export const checkPlan = (plan: FaultPlan): { field: string; detail: string } | undefined => {
  if (plan.seed !== undefined && !Number.isInteger(plan.seed)) return { field: "faults.seed", detail: `must be an integer, got ${String(plan.seed)}` }
  for (let i = 0; i < plan.rules.length; i++) {
    const r = plan.rules[i]!
    const at = `faults.rules[${i}]`
    const allowed = FAULTS_BY_OP[r.op]
    if (allowed === undefined) return { field: `${at}.op`, detail: `must be one of ${Object.keys(FAULTS_BY_OP).join(", ")}, got ${String(r.op)}` }
    if (!allowed.includes(r.fault?._tag)) {
      return { field: `${at}.fault`, detail: `${String(r.fault?._tag)} does not apply to ${r.op} (allowed: ${allowed.join(", ")})` }
    }
    if (r.after !== undefined && !(Number.isInteger(r.after) && r.after >= 0)) return { field: `${at}.after`, detail: `must be an integer >= 0, got ${String(r.after)}` }
    if (r.times !== undefined && !(r.times === Infinity || (Number.isInteger(r.times) && r.times >= 1))) {
      return { field: `${at}.times`, detail: `must be an integer >= 1 or Infinity, got ${String(r.times)}` }
    }
    if (r.connection !== undefined && !(Number.isInteger(r.connection) && r.connection >= 1)) {
      return { field: `${at}.connection`, detail: `must be an integer >= 1, got ${String(r.connection)}` }
    }
    if (r.probability !== undefined && !(r.probability >= 0 && r.probability <= 1)) {
      return { field: `${at}.probability`, detail: `must be from 0 to 1, got ${String(r.probability)}` }
    }
    const f = r.fault
    if (f._tag === "ShortSend" && f.bytes !== undefined && !(Number.isInteger(f.bytes) && f.bytes >= 1)) {
      return { field: `${at}.fault.bytes`, detail: `must be an integer >= 1, got ${String(f.bytes)}` }
    }
    if ((f._tag === "Pause" || f._tag === "Delay") && Duration.decodeUnknown(f.duration)._tag === "None") {
      return { field: `${at}.fault.duration`, detail: `must be a Duration, got ${String(f.duration)}` }
    }
  }
  return undefined
}

/** mulberry32: a small, fast, well-mixed 32-bit generator; enough for test decisions. */
const generator = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A plan being applied: per-rule counters and the seeded generator. */
export class Faults {
  private readonly rules: ReadonlyArray<FaultRule>
  private readonly seen: Array<number>
  private readonly fired: Array<number>
  readonly random: () => number
  /** Faults injected so far. */
  injected = 0

  constructor(plan: FaultPlan | undefined) {
    this.rules = plan?.rules ?? []
    this.seen = this.rules.map(() => 0)
    this.fired = this.rules.map(() => 0)
    this.random = generator(plan?.seed ?? 0x5eed)
  }

  /**
   * The fault for this call of `op` on connection `connection` (its ordinal), or undefined.
   * Every matching rule counts the call; the first one that fires wins.
   */
  decide(op: FaultOp, connection: number): Fault | undefined {
    let chosen: Fault | undefined
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!
      if (r.op !== op || (r.connection !== undefined && r.connection !== connection)) continue
      const call = this.seen[i]!++
      if (chosen !== undefined || call < (r.after ?? 0) || this.fired[i]! >= (r.times ?? 1)) continue
      if (r.probability !== undefined && this.random() >= r.probability) continue
      this.fired[i]!++
      chosen = r.fault
    }
    if (chosen !== undefined) this.injected++
    return chosen
  }

  /** How many bytes of `len` a ShortSend lets through. */
  shortLength(fault: { readonly bytes?: number }, len: number): number {
    if (fault.bytes !== undefined) return Math.min(fault.bytes, len)
    return len <= 1 ? len : 1 + Math.floor(this.random() * (len - 1))
  }
}

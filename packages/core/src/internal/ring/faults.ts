/**
 * Fault injection on the real ring, for the driver's own tests: by rule (opcode, how many
 * matching SQEs to let through first, a predicate on the staged SQE), a staged SQE is replaced
 * by IORING_OP_NOP with IORING_NOP_INJECT_RESULT (Linux 6.10) and the chosen result, keeping its
 * user_data and its link flags, or a send's length is clamped (a short send). The kernel then
 * produces the CQE exactly as it would for the real failure (a failed NOP breaks a link chain
 * like any failed op); CQEs are never rewritten.
 *
 * Rewrites happen at staging, after the caller has filled the SQE: the driver calls `staging()`
 * before each new SQE (the previous ones are complete by then, the invariant its early submit
 * relies on too) and before each submit it starts itself; a microtask settles the last ones
 * before the addon submits at the end of the loop turn. With no plan installed the driver pays
 * one null check per SQE.
 */
import { Effect } from "effect"
import type { OpOwner } from "./op.js"
import { NOP_INJECT_RESULT, Op, SqeFlag, W } from "./abi.js"

/** What a rule may look at: the SQE as its caller staged it. */
export interface StagedSqe {
  readonly op: number
  /** IOSQE_* flags. */
  readonly flags: number
  readonly ioprio: number
  readonly fd: number
  readonly len: number
  /** The op slot (low word of user_data) and its generation (high word, without the link-timeout bit). */
  readonly slot: number
  readonly gen: number
  /** This SQE is the LINK_TIMEOUT attached to the op in `slot`. */
  readonly linkTimeout: boolean
}

/**
 * `result`: the SQE becomes a NOP completing with this value (a negative errno to fail it).
 * `shortSend`: a SEND / SEND_ZC sends at most this many bytes; a SENDMSG / SENDMSG_ZC of a
 * connected socket becomes a SEND / SEND_ZC of at most this many bytes of its first iovec.
 * Linked sends are not clamped (see `apply`); they count in `notApplicable`.
 */
export type FaultAction = { readonly result: number } | { readonly shortSend: number }

export interface FaultRule {
  /** IORING_OP_* values this rule applies to. */
  readonly ops: ReadonlyArray<number>
  /** Matching SQEs let through before the first injection (default 0). */
  readonly skip?: number
  /** Injections at most (default 1; Infinity for every matching SQE after `skip`). */
  readonly times?: number
  /** Further condition on the SQE (which connection's fd, multishot or not...). */
  readonly where?: (sqe: StagedSqe) => boolean
  readonly inject: FaultAction
}

/** One injection that happened. */
export interface Injected {
  readonly rule: number
  readonly sqe: StagedSqe
  readonly inject: FaultAction
}

/** What the injector needs of the ring: its staging area and argument memory (the driver). */
export interface FaultTarget {
  readonly words: Int32Array
  readonly staged: number
  readonly argWords: Int32Array
  readonly argsBase: number
  faults: FaultInjector | null
}

const u64 = (words: Int32Array, at: number): number => (words[at]! >>> 0) + (words[at + 1]! >>> 0) * 4294967296
const LINK_TIMEOUT_BIT = 0x80000000 | 0

export class FaultInjector {
  /** Every injection so far, in staging order: tests assert the fault really happened. */
  readonly log: Array<Injected> = []
  /** Short-send rules that matched an SQE they cannot clamp (a linked send, a datagram SENDMSG). */
  notApplicable = 0
  private readonly seen: Array<number>
  private readonly fired: Array<number>
  /** Staged SQEs already looked at (those below this index are settled). */
  private checked = 0
  private queued = false
  private readonly settleQueued = () => {
    this.queued = false
    this.settle()
  }

  constructor(private readonly target: FaultTarget, private readonly rules: ReadonlyArray<FaultRule>) {
    this.seen = rules.map(() => 0)
    this.fired = rules.map(() => 0)
  }

  /** A new SQE is about to be staged: the ones before it are complete; settle them. */
  staging(): void {
    this.settle()
    if (!this.queued) {
      this.queued = true
      queueMicrotask(this.settleQueued)
    }
  }

  /** Cleared when the plan is removed or replaced: a settle queued before then does nothing. */
  active = true

  /** Applies the rules to every staged SQE not looked at yet. */
  settle(): void {
    if (!this.active) return
    const staged = this.target.staged
    // A submit took the SQEs looked at (all of them, or all but a tail the kernel refused).
    if (staged < this.checked) this.checked = staged
    for (; this.checked < staged; this.checked++) this.examine(this.checked * 16)
  }

  private examine(w: number): void {
    const s = this.target.words
    const head = s[w]!
    const hi = s[w + W.userData + 1]!
    const sqe: StagedSqe = {
      op: head & 0xff,
      flags: (head >>> 8) & 0xff,
      ioprio: head >>> 16,
      fd: s[w + W.fd]!,
      len: s[w + W.len]!,
      slot: s[w + W.userData]!,
      gen: hi & ~LINK_TIMEOUT_BIT,
      linkTimeout: (hi & LINK_TIMEOUT_BIT) !== 0
    }
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i]!
      if (!rule.ops.includes(sqe.op) || (rule.where !== undefined && !rule.where(sqe))) continue
      if (this.seen[i]!++ < (rule.skip ?? 0) || this.fired[i]! >= (rule.times ?? 1)) continue
      if (!this.apply(w, sqe, rule.inject)) {
        this.notApplicable++
        continue
      }
      this.fired[i]!++
      this.log.push({ rule: i, sqe, inject: rule.inject })
      return
    }
  }

  private apply(w: number, sqe: StagedSqe, action: FaultAction): boolean {
    const s = this.target.words
    if ("result" in action) {
      // The NOP keeps the links (so a chain breaks as it would) and drops what a NOP cannot take:
      // io_init_req fails BUFFER_SELECT (EOPNOTSUPP) and a nonzero ioprio such as the multishot
      // bits (EINVAL) on an opcode whose definition lacks them, as NOP's does; a fixed file means
      // nothing without a file to look up.
      const keep = sqe.flags & ~(SqeFlag.FIXED_FILE | SqeFlag.BUFFER_SELECT)
      const lo = s[w + W.userData]!
      const hi = s[w + W.userData + 1]!
      s.fill(0, w, w + 16)
      s[w] = Op.NOP | (keep << 8)
      s[w + W.len] = action.result
      s[w + W.opFlags] = NOP_INJECT_RESULT
      s[w + W.userData] = lo
      s[w + W.userData + 1] = hi
      return true
    }
    // A linked send (MSG_WAITALL in a chain) is left alone: the kernel would take the clamped
    // length as the whole request and go on with the next link, which no real kernel does after
    // a short send (it fails the chain).
    if ((sqe.flags & (SqeFlag.IO_LINK | SqeFlag.IO_HARDLINK)) !== 0) return false
    const max = Math.max(1, action.shortSend)
    if (sqe.op === Op.SEND || sqe.op === Op.SEND_ZC) {
      s[w + W.len] = Math.min(sqe.len, max)
      return true
    }
    if (sqe.op !== Op.SENDMSG && sqe.op !== Op.SENDMSG_ZC) return false
    // Read (never write) the msghdr and its first iovec: they live in the ring's argument memory.
    const a = this.target.argWords
    const msg = u64(s, w + W.addr) - this.target.argsBase
    if (msg < 0 || msg % 4 !== 0 || msg + 56 > a.length * 4) return false
    const m = msg >> 2
    // A msg_name means an unconnected datagram send: a SEND would lose the destination.
    if (u64(a, m) !== 0 || u64(a, m + 6) === 0) return false
    const iov = u64(a, m + 4) - this.target.argsBase
    if (iov < 0 || iov % 4 !== 0 || iov + 16 > a.length * 4) return false
    const base = u64(a, iov >> 2)
    const len = u64(a, (iov >> 2) + 2)
    s[w] = (sqe.op === Op.SENDMSG ? Op.SEND : Op.SEND_ZC) | (sqe.flags << 8) | (sqe.ioprio << 16)
    s[w + W.addr] = base >>> 0
    s[w + W.addr + 1] = Math.floor(base / 4294967296)
    s[w + W.len] = Math.min(len, max)
    return true
  }
}

/**
 * Installs `rules` on the ring until the returned injector is removed (`uninstall`); SQEs staged
 * and not yet submitted are subject to it too. One plan at a time: installing a second one
 * removes the first (after settling what is staged under it).
 */
export const install = (target: FaultTarget, rules: ReadonlyArray<FaultRule>): FaultInjector => {
  if (target.faults !== null) uninstall(target, target.faults)
  const injector = new FaultInjector(target, rules)
  target.faults = injector
  return injector
}

/** Removes the plan, after settling what is staged under it. */
export const uninstall = (target: FaultTarget, injector: FaultInjector): void => {
  injector.settle()
  injector.active = false
  if (target.faults === injector) target.faults = null
}

/**
 * A result no plain NOP produces (-ENOTRECOVERABLE, 131 on Linux): the probe sees it back only
 * if the kernel injected it.
 */
const PROBE_RESULT = -131

/** What the probe needs of the ring: staging and op slots. */
export interface ProbeTarget extends Pick<FaultTarget, "words"> {
  alloc(owner: OpOwner, tag: number): number
  sqe(op: number, flags: number, fd: number, slot: number): number
}

/**
 * Whether this kernel injects NOP results (IORING_NOP_INJECT_RESULT, Linux 6.10): a NOP asking
 * for a result is submitted on the ring itself; older kernels ignore the flag (0) or reject it.
 */
export const probeNopInject = (ring: ProbeTarget): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const slot = ring.alloc({ onCqe: (_slot, _tag, res) => resume(Effect.succeed(res === PROBE_RESULT)) }, 0)
    const w = ring.sqe(Op.NOP, 0, -1, slot)
    ring.words[w + W.len] = PROBE_RESULT
    ring.words[w + W.opFlags] = NOP_INJECT_RESULT
  })

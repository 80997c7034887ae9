/**
 * The "driver under test" of the conformance suite: how a scenario gets a `Ringline` layer, how
 * it plays the remote side (the peer), and how it lets time pass. Every scenario file is written
 * once against this interface and runs (`describe.each`) over every driver in `drivers.ts`, so
 * the in-memory `RinglineTest` network cannot drift from the kernel's behaviour.
 */
import { it } from "@effect/vitest"
import { Context, Effect } from "effect"
import type { Duration, Scope } from "effect"
import type { Address } from "../../src/Address.js"
import type { Ringline } from "../../src/Ringline.js"
import type { ConnectTarget } from "../../src/Ringline.js"

/** The remote end of one connection, scripted by a scenario (node:net or RinglineTest's peer). */
export interface Peer {
  readonly write: (bytes: Uint8Array | string) => Effect.Effect<void, unknown>
  /** Exactly `n` bytes; fails when the stream ends or resets first. */
  readonly read: (n: number) => Effect.Effect<Uint8Array, unknown>
  /** Everything until end of stream; fails on a reset. */
  readonly readAll: Effect.Effect<Uint8Array, unknown>
  /** Half-close: FIN after what was written. */
  readonly end: Effect.Effect<void>
  /** Abortive close (RST). */
  readonly reset: Effect.Effect<void>
  /** Stop reading: bytes pile up in the peer's buffers and the sender meets backpressure. */
  readonly stall: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
}

/** A listening peer, for outbound connects of the side under test. */
export interface PeerListener {
  readonly target: ConnectTarget
  readonly accept: Effect.Effect<Peer, unknown>
}

/** What a scenario uses besides `Ringline` itself. */
export interface PeerSideService {
  /** Connects a peer to a listener of the side under test. */
  readonly connect: (address: Address) => Effect.Effect<Peer, unknown, Scope.Scope>
  readonly listen: Effect.Effect<PeerListener, unknown, Scope.Scope>
  /** A TCP address nothing listens on. */
  readonly unbound: Effect.Effect<ConnectTarget>
  /** A TCP address where a connect neither succeeds nor fails (a full accept queue). */
  readonly hanging: Effect.Effect<ConnectTarget, unknown, Scope.Scope>
  /** Lets `d` pass on the clock the driver's timeouts run on. */
  readonly advance: (d: Duration.DurationInput) => Effect.Effect<void>
  /** Lets in-flight work run to where it waits (kernel round trips or in-memory hand-offs). */
  readonly settle: Effect.Effect<void>
}

export class PeerSide extends Context.Tag("conformance/PeerSide")<PeerSide, PeerSideService>() {}

/** Configuration the conformance scenarios may set, common to every driver. */
export interface ScenarioConfig {
  readonly shutdownTimeoutMs?: number
  readonly sendQueueHighWater?: number
  readonly sendQueueLowWater?: number
}

export interface DriverUnderTest {
  readonly name: string
  /** Runs a scenario with a fresh `Ringline` and `PeerSide`; fails if it leaked anything. */
  readonly run: <A, E>(
    body: Effect.Effect<A, E, Ringline | PeerSide | Scope.Scope>,
    config?: ScenarioConfig
  ) => Effect.Effect<A, unknown>
  /** `it.live` for the kernel, `it.effect` (TestClock) for the in-memory network. */
  readonly it: typeof it.live
}

/** The peer side's operations as effects. */
export const connectPeer = (address: Address) => Effect.flatMap(PeerSide, (p) => p.connect(address))
export const listenPeer = Effect.flatMap(PeerSide, (p) => p.listen)
export const unboundTarget = Effect.flatMap(PeerSide, (p) => p.unbound)
export const hangingTarget = Effect.flatMap(PeerSide, (p) => p.hanging)
export const advance = (d: Duration.DurationInput) => Effect.flatMap(PeerSide, (p) => p.advance(d))
export const settle = Effect.flatMap(PeerSide, (p) => p.settle)

export const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString()

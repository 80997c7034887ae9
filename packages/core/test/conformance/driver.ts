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
import type { RinglineTest } from "../../src/index.js"
import * as Tcp from "../../src/Tcp.js"
import * as Connection from "../../src/Connection.js"

/**
 * The remote end of one connection, scripted by a scenario: the part of RinglineTest's peer
 * handle that a node:net socket can play too (failures are RinglineTest.PeerError on both).
 */
export type Peer = Pick<RinglineTest.Peer, "write" | "read" | "readAll" | "end" | "reset" | "stall" | "resume">

/** A listening peer, for outbound connects of the side under test. */
export interface PeerListener {
  readonly target: ConnectTarget
  readonly accept: Effect.Effect<Peer>
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

/** A TCP listener of the side under test, a peer connected to it, and the accepted connection. */
export const acceptedPair = Effect.gen(function*() {
  const listener = yield* Tcp.listen({ port: 0 })
  const peer = yield* connectPeer(listener.address)
  const conn = yield* listener.accept
  return { listener, peer, conn }
})

/** A newline-terminated line, without the newline. */
export const line: Connection.Parser<string> = (bytes) => {
  const nl = bytes.indexOf(10)
  return nl < 0 ? Connection.needMore() : Connection.done(nl + 1, text(bytes.subarray(0, nl)))
}

/**
 * A deterministic in-memory network that provides `Ringline`, for unit tests of applications
 * that use ringline, where no kernel ring is needed (or allowed: Docker's default seccomp profile
 * makes `io_uring_setup` fail with EPERM). Listeners and connections keep the ring's semantics
 * (the connection code is the same; only the kernel underneath is replaced, and the conformance
 * suite runs on both): byte pipes with bounded buffers and backpressure, refused connects for
 * unbound addresses, half-close, resets and their typed errors.
 *
 * - Timeouts (connect `timeout`, `shutdownTimeoutMs`, fault delays) run on Effect's `Clock`, so
 *   under `@effect/vitest`'s `it.effect` a `TestClock.adjust` drives them.
 * - A seeded {@link FaultPlan} injects resets, short sends, refused connects, accept failures,
 *   receive pauses and delays by rule; the errors are the ring's (`SocketError`, `ConnectError`
 *   with the same errno names).
 * - A {@link Peer} scripts the remote side of a connection: {@link connect} to a listener of the
 *   program under test, or {@link listen} for the program to connect to.
 * - What needs a real ring (`Udp`, `RinglineClock`, `Process`, `Ring`, storage's files) fails with
 *   `RinglineUnavailable` (reason `NotAvailable`) naming the capability.
 *
 * @example
 * ```ts
 * import { it } from "@effect/vitest"
 * import { Effect, Stream } from "effect"
 * import { RinglineTest, Tcp } from "@ringline/core"
 *
 * it.scoped("echoes", () =>
 *   Effect.gen(function*() {
 *     const listener = yield* Tcp.listen({ port: 7000 })
 *     yield* Effect.forkScoped(listener.serve((c) => c.stream.pipe(Stream.run(c.sink))))
 *     const peer = yield* RinglineTest.connect(listener.address)
 *     yield* peer.write("hello")
 *     yield* peer.expect("hello")
 *   }).pipe(Effect.provide(RinglineTest.layer())))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { Duration, Scope } from "effect"
import type { Address } from "./Address.js"
import * as Addr from "./Address.js"
import * as internalFaults from "./internal/memory/faults.js"
import * as internalPeer from "./internal/memory/peer.js"
import type { PeerHandle } from "./internal/memory/peer.js"
import { make as makeService, type NetworkControl } from "./internal/memory/service.js"
import { Ringline } from "./Ringline.js"
import * as RinglineConfig from "./RinglineConfig.js"
import { type ConnectError, invalidConnect, RinglineConfigError, type SocketError } from "./RinglineError.js"

/**
 * The operations a fault rule can target: the program's connects, its listeners' accepts, and
 * its connections' sends and receives.
 *
 * @since 0.1.0
 * @category faults
 */
export type FaultOp = internalFaults.FaultOp

/**
 * What a rule does to the operation it targets; build one with {@link reset}, {@link shortSend},
 * {@link refuse}, {@link fail}, {@link pause} or {@link delay}.
 *
 * @since 0.1.0
 * @category faults
 */
export type Fault = internalFaults.Fault

/**
 * One rule: `op` (which operation), `fault` (what happens), `after` (matching calls let through
 * first, default 0), `times` (injections, default 1, `Infinity` for all), `connection` (only the
 * n-th connection of the network, 1-based in the order they were made; for `connect`, the
 * connection it would make), `probability` (0..1, drawn from the plan's seed).
 *
 * @since 0.1.0
 * @category faults
 */
export type FaultRule = internalFaults.FaultRule

/**
 * A seeded list of rules. The same seed and the same program give the same faults.
 *
 * @since 0.1.0
 * @category faults
 */
export type FaultPlan = internalFaults.FaultPlan

/**
 * `send` or `recv`: the connection is reset, as if the peer had sent RST (`SocketError`
 * `ECONNRESET` on the receive side, `ECONNRESET` then `EPIPE` for sends).
 *
 * @since 0.1.0
 * @category faults
 */
export const reset = (): Fault => ({ _tag: "Reset" })

/**
 * `send`: the send takes at most `bytes` (default: a length drawn from the seed); the rest goes
 * out with the next send, as after a short send of the kernel.
 *
 * @since 0.1.0
 * @category faults
 */
export const shortSend = (bytes?: number): Fault => bytes === undefined ? { _tag: "ShortSend" } : { _tag: "ShortSend", bytes }

/**
 * `connect`: refused (`ConnectError` reason `Refused`, `ECONNREFUSED`).
 *
 * @since 0.1.0
 * @category faults
 */
export const refuse = (): Fault => ({ _tag: "Refuse" })

/**
 * Any op: it completes with the errno named by `code` (`"EMFILE"`, `"ENETUNREACH"`, `"EIO"`...).
 * A failed accept drops that connection (its client sees a reset) and the listener goes on, as on
 * the ring; a failed receive or send fails the connection with `SocketError` of that code.
 *
 * @since 0.1.0
 * @category faults
 */
export const fail = (code: string): Fault => ({ _tag: "Fail", code })

/**
 * `recv`: receiving stops for `duration` (on the Clock), as when the ring's provided buffers ran
 * out (`ENOBUFS`; counted in `stats.enobufs`); no byte is lost.
 *
 * @since 0.1.0
 * @category faults
 */
export const pause = (duration: Duration.DurationInput): Fault => ({ _tag: "Pause", duration })

/**
 * Any op: it completes only after `duration` on the Clock.
 *
 * @since 0.1.0
 * @category faults
 */
export const delay = (duration: Duration.DurationInput): Fault => ({ _tag: "Delay", duration })

/**
 * A scripted peer operation failed: see `reason` (`EndOfStream`, `Reset`, `Unexpected` for an
 * `expect` that saw other bytes, `Closed` for a write after the peer's own end). `received` holds
 * what had arrived.
 *
 * @since 0.1.0
 * @category errors
 */
export const PeerError = internalPeer.PeerError

/**
 * @since 0.1.0
 * @category errors
 */
export type PeerError = internalPeer.PeerError

/**
 * The remote end of one in-memory connection. Like a node:net socket it reads whatever arrives
 * into its own buffer, unless {@link Peer.stall}ed: then bytes stay in the connection's bounded
 * buffer and the program's sends meet backpressure.
 *
 * @since 0.1.0
 * @category models
 */
export interface Peer {
  /** The peer's own address. */
  readonly local: Address
  /** The address of the other end (the program's listener, or its connection). */
  readonly remote: Address
  /** Writes all of `bytes` (a string is UTF-8), waiting for room when the buffer is full. */
  readonly write: (bytes: Uint8Array | string) => Effect.Effect<void, PeerError>
  /** Exactly `n` bytes; fails with `PeerError` (`EndOfStream`, `Reset`) when they cannot come. */
  readonly read: (n: number) => Effect.Effect<Uint8Array, PeerError>
  /** Everything until the program's side ends the stream. */
  readonly readAll: Effect.Effect<Uint8Array, PeerError>
  /** Reads as many bytes as `expected` has and fails with `PeerError` `Unexpected` if they differ. */
  readonly expect: (expected: Uint8Array | string) => Effect.Effect<void, PeerError>
  /** Half-close: FIN after what was written; the peer can still read. */
  readonly end: Effect.Effect<void>
  /** Abortive close (RST): the program's reads fail with `ECONNRESET`. */
  readonly reset: Effect.Effect<void>
  /** Closes the peer's socket (FIN, or RST if bytes it never read were pending, as Linux does). */
  readonly close: Effect.Effect<void>
  /** Stops reading (to exercise the program's backpressure). */
  readonly stall: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Completes once an `accept` (or `serve`) of the program took this connection. */
  readonly accepted: Effect.Effect<void>
}

/**
 * A listening peer, for the program to connect to.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerListener {
  readonly address: Address
  /** The next connection the program made to this address. */
  readonly accept: Effect.Effect<Peer>
}

/**
 * The peer side of the in-memory network.
 *
 * @since 0.1.0
 * @category models
 */
export interface NetworkService {
  /** Connects a peer to `target` (a listener of the program); closed with the scope. */
  readonly connect: (target: Address | string | { readonly host: string; readonly port: number }) => Effect.Effect<Peer, ConnectError, Scope.Scope>
  /** Listens as a peer (default: TCP on 127.0.0.1, a free port); closed with the scope. */
  readonly listen: (options?: PeerListenOptions) => Effect.Effect<PeerListener, SocketError, Scope.Scope>
  /** Faults the plan injected so far. */
  readonly faultsInjected: Effect.Effect<number>
}

/**
 * Where a peer listens: a TCP `host`/`port` (port 0 or absent: a free one) or a Unix `path`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerListenOptions {
  readonly host?: string
  readonly port?: number
  readonly path?: string
  /** Connections queued before connects wait (as the kernel's backlog; default 128). */
  readonly backlog?: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Network extends Context.Tag("@ringline/core/RinglineTest/Network")<Network, NetworkService>() {}

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The same configuration `Ringline.layer` takes (backpressure marks, `shutdownTimeoutMs`...). */
  readonly config?: RinglineConfig.RinglineConfigInput
  readonly faults?: FaultPlan
  /** Bytes each direction of a connection buffers (the two socket buffers); default 256 KiB. */
  readonly bufferSize?: number
}

const peerOf = (p: PeerHandle): Peer => ({
  local: p.local,
  remote: p.remote,
  write: (b) => p.write(b),
  read: (n) => p.read(n),
  readAll: p.readAll,
  expect: (b) => p.expect(b),
  end: p.end,
  reset: p.reset,
  close: p.close,
  stall: p.stall,
  resume: p.resume,
  accepted: p.whenAccepted
})

const targetOf = (target: Address | string | { readonly host: string; readonly port: number }): Address | ConnectError => {
  if (typeof target === "string") {
    const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(target) ?? /^([^:[\]]*):(\d{1,5})$/.exec(target)
    return m === null ? invalidConnect(target, "target", `must be "host:port", got ${JSON.stringify(target)}`) : Addr.tcp(m[1]!, Number(m[2]))
  }
  if ("_tag" in target && target._tag === "UnixAddress") return target
  return Addr.tcp(target.host, target.port)
}

const control = (c: NetworkControl): NetworkService => ({
  connect: (target) =>
    Effect.suspend(() => {
      const t = targetOf(target)
      return t._tag === "ConnectError" ? Effect.fail(t) : Effect.map(c.connectPeer(t), peerOf)
    }),
  listen: (o = {}) =>
    Effect.map(
      c.listenPeer(o.path !== undefined ? Addr.unix(o.path) : Addr.tcp(o.host ?? "127.0.0.1", o.port ?? 0), o.backlog ?? 128),
      (l) => ({ address: l.address, accept: Effect.map(l.accept, peerOf) })
    ),
  faultsInjected: Effect.sync(() => c.network.faults.injected)
})

/**
 * The in-memory network as a Layer providing `Ringline` and the peer side ({@link Network}).
 * A bad config or fault plan fails with `RinglineConfigError` naming the field (e.g.
 * `faults.rules[0].times`). Closing it closes every listener and connection, as the ring's does.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Ringline | Network, RinglineConfigError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const config = yield* RinglineConfig.validate(options.config)
    const problem = options.faults === undefined ? undefined : internalFaults.checkPlan(options.faults)
    if (problem !== undefined) return yield* new RinglineConfigError(problem)
    const bufferSize = options.bufferSize ?? 256 * 1024
    if (!(Number.isInteger(bufferSize) && bufferSize >= 1)) {
      return yield* new RinglineConfigError({ field: "bufferSize", detail: `must be an integer >= 1, got ${String(bufferSize)}` })
    }
    const made = yield* makeService(config, { bufferSize, ...(options.faults === undefined ? {} : { faults: options.faults }) })
    return Context.make(Ringline, made.service).pipe(Context.add(Network, control(made.control)))
  }))

/**
 * Connects a peer to a listener of the program (see {@link NetworkService.connect}).
 *
 * @since 0.1.0
 * @category peers
 */
export const connect = (
  target: Address | string | { readonly host: string; readonly port: number }
): Effect.Effect<Peer, ConnectError, Network | Scope.Scope> => Effect.flatMap(Network, (n) => n.connect(target))

/**
 * Listens as a peer for the program to connect to (see {@link NetworkService.listen}).
 *
 * @since 0.1.0
 * @category peers
 */
export const listen = (options?: PeerListenOptions): Effect.Effect<PeerListener, SocketError, Network | Scope.Scope> =>
  Effect.flatMap(Network, (n) => n.listen(options))

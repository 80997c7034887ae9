/**
 * The RinglineTest implementation of the Ringline service: listeners and connections on the
 * in-memory network (network.ts), each connection the generic channel (../net/channel.ts) over an
 * in-memory Wire, each listener the generic accept loop (../net/serve.ts) over an in-memory
 * accept source. Connect timeouts and close timeouts run on Effect's Clock. At release it stops
 * accepting, closes every connection (bounded by `shutdownTimeoutMs`) and stops its timers.
 */
import { Duration, Effect, Exit, Option, type Scope } from "effect"
import type { Address } from "../../Address.js"
import * as Addr from "../../Address.js"
import * as Connection from "../../Connection.js"
import type { Listener } from "../../Listener.js"
import { Resolver, toTcpAddress } from "../../Resolver.js"
import type { ConnectOptions, ConnectTarget, ListenOptions, RinglineService, RinglineStats } from "../../Ringline.js"
import type { RinglineConfig } from "../../RinglineConfig.js"
import {
  ConnectError,
  ConnectionClosed,
  invalidConnect,
  released,
  SocketError,
  socketError
} from "../../RinglineError.js"
import { Errno, errnoName } from "../errno.js"
import { Channel } from "../net/channel.js"
import { acceptLoop, type AcceptSource } from "../net/serve.js"
import { failure } from "../connect.js"
import { checkConnect, checkListen, releasedConnect } from "../service.js"
import { literal } from "../sockaddr.js"
import { show } from "../validate.js"
import { type Waiter, WaiterQueue } from "../waiters.js"
import { MemoryWire } from "./memoryWire.js"
import { type Endpoint, type MemListener, type NetCounters, Network, type NetworkOptions } from "./network.js"
import { PeerHandle } from "./peer.js"

/**
 * The address of `host`: a numeric address, `localhost`, or what the caller's Resolver service
 * answers (its first address); never the system resolver, whose answers a test cannot control.
 * Undefined when none of these names it.
 */
const hostAddress = (host: string, port: number): Effect.Effect<Address | undefined> => {
  const known = literal(host, port) ?? (host === "localhost" ? Addr.tcp("127.0.0.1", port, 4) : undefined)
  if (known !== undefined) return Effect.succeed(known)
  return Effect.flatMap(Effect.serviceOption(Resolver), (r) =>
    Option.isNone(r)
      ? Effect.succeed(undefined)
      : r.value.resolve(host).pipe(
        Effect.map((all) => toTcpAddress(all[0], port)),
        Effect.orElseSucceed(() => undefined)
      ))
}

const NOT_NUMERIC = "is not an IP address, localhost, or a name the Resolver service in context resolves " +
  "(the test Layer never asks the system resolver; provide a Resolver to name hosts)"

/** Our listener's accept queue as the generic accept loop sees it. */
class MemAcceptSource implements AcceptSource {
  readonly acceptors = new WaiterQueue(() => this.l.queue.length > 0 || this.l.closed)
  accepted = 0

  constructor(
    private readonly l: MemListener,
    private readonly open: (ep: Endpoint) => Channel,
    private readonly counters: NetCounters
  ) {
    l.onChange = () => this.acceptors.notify()
  }

  take(w: Waiter): Exit.Exit<Channel, ConnectionClosed> | undefined {
    if (this.l.closed) {
      this.acceptors.withdraw(w)
      return Exit.fail(new ConnectionClosed({ operation: "accept" }))
    }
    if (this.l.queue.length === 0 || !this.acceptors.mayTake(w)) return undefined
    const ep = this.l.take()!
    this.acceptors.withdraw(w)
    this.accepted++
    this.counters.accepted++
    ep.peer.onAccepted?.()
    return Exit.succeed(this.open(ep))
  }

  close(done: () => void): void {
    this.l.close()
    this.acceptors.notify()
    done()
  }
}

/** What the peer side of the Layer offers (RinglineTest.Network). */
export interface NetworkControl {
  readonly network: Network
  readonly connectPeer: (address: Address) => Effect.Effect<PeerHandle, ConnectError, Scope.Scope>
  readonly listenPeer: (address: Address | undefined, backlog: number) => Effect.Effect<
    { readonly address: Address; readonly accept: Effect.Effect<PeerHandle> },
    SocketError,
    Scope.Scope
  >
}

export const make = (
  config: RinglineConfig,
  options: Omit<NetworkOptions, "receiveSize">
): Effect.Effect<{ service: RinglineService; control: NetworkControl }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const net = new Network({ ...options, receiveSize: config.recvBuffer.bufferSize }, runtime)
    const channels = new Set<Channel>()
    const sources = new Set<MemAcceptSource>()
    let isReleased = false
    const channelOptions = {
      highWater: config.sendQueueHighWater,
      lowWater: config.sendQueueLowWater,
      zeroCopyThreshold: 0,
      maxChainLength: 0
    }
    const open = (ep: Endpoint): Channel => {
      const ch = new Channel(new MemoryWire(ep.local._tag === "UnixAddress" ? "unix" : "tcp", ep, net, config.tcpNoDelay), channelOptions)
      channels.add(ch)
      return ch
    }
    const wrap = (ch: Channel) => Connection.make(ch, config.shutdownTimeoutMs, (c) => channels.delete(c))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        isReleased = true
        for (const s of sources) s.close(() => {})
        yield* Effect.forEach([...channels], (ch) => wrap(ch).close, { concurrency: "unbounded", discard: true })
        net.shutdown()
      })
    )

    const listen = (o: ListenOptions): Effect.Effect<Listener, SocketError, Scope.Scope> =>
      Effect.gen(function*() {
        if (isReleased) return yield* released("listen")
        const invalid = checkListen(o)
        if (invalid !== undefined) return yield* invalid
        const wanted = o._tag === "Unix" ? Addr.unix(o.path) : yield* hostAddress(o.host ?? "127.0.0.1", o.port ?? 0)
        if (wanted === undefined) {
          return yield* new SocketError({ operation: "listen", errno: Errno.ENOENT, code: "ENOTFOUND", argument: "host", detail: `${show(o._tag === "Tcp" ? o.host : "")} ${NOT_NUMERIC}` })
        }
        const l = net.bind(wanted, o.backlog ?? config.backlog, true)
        if (typeof l === "number") return yield* socketError("bind", l, Addr.format(wanted))
        const source = new MemAcceptSource(l, open, net.counters)
        sources.add(source)
        yield* Effect.addFinalizer(() => Effect.sync(() => sources.delete(source)))
        return yield* acceptLoop(source, l.address, wrap, config.shutdownTimeoutMs)
      })

    /** Connects an endpoint of the network; `underTest` applies the fault plan. */
    const dial = (address: Address, underTest: boolean) =>
      Effect.async<Endpoint, ConnectError>((resume) => {
        if (underTest) net.inFlight++
        let settled = false
        const cancel = net.connect(address, underTest, (r) => {
          settled = true
          if (underTest) net.inFlight--
          resume(typeof r === "number" ? Effect.fail(connectFailure(address, r)) : Effect.succeed(r))
        })
        return Effect.sync(() => {
          if (settled) return
          cancel()
          if (underTest) net.inFlight--
        })
      })

    const connect = (target: ConnectTarget, o?: ConnectOptions) =>
      Effect.gen(function*() {
        const invalid = checkConnect(target)
        if (invalid !== undefined) return yield* invalid
        if (isReleased) return yield* releasedConnect(target)
        const address = "path" in target ? Addr.unix(target.path) : yield* hostAddress(target.host, target.port)
        if (address === undefined) return yield* unknownHost(target as { host: string; port: number })
        const timeout = o?.timeout === undefined ? undefined : Duration.decodeUnknown(o.timeout)
        if (timeout !== undefined && timeout._tag === "None") {
          return yield* invalidConnect(Addr.format(address), "timeout", `must be a duration of at least 0, got ${show(o!.timeout)}`)
        }
        const attempt = timeout === undefined || !Duration.isFinite(timeout.value)
          ? dial(address, true)
          : Effect.timeoutFail(dial(address, true), {
            duration: timeout.value,
            onTimeout: () => connectFailure(address, -Errno.ETIMEDOUT)
          })
        // Taken and registered for closing without a gap an interruption could fall into.
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(attempt), (ep) => {
            net.counters.connected++
            const c = wrap(open(ep))
            return Effect.as(Effect.addFinalizer(() => c.close), c)
          })
        )
      })

    const control: NetworkControl = {
      network: net,
      connectPeer: (address) =>
        Effect.acquireRelease(
          Effect.map(dial(address, false), (ep) => new PeerHandle(ep, net)),
          (p) => p.close
        ),
      listenPeer: (address, backlog) =>
        Effect.gen(function*() {
          const l = net.bind(address ?? Addr.tcp("127.0.0.1", 0), backlog, false)
          if (typeof l === "number") return yield* socketError("bind", l, address === undefined ? "127.0.0.1:0" : Addr.format(address))
          const peers: Array<PeerHandle> = []
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              l.close()
              for (const p of peers) p.ep.close()
            })
          )
          const acceptors = new WaiterQueue(() => l.queue.length > 0)
          l.onChange = () => acceptors.notify()
          const accept = Effect.async<PeerHandle>((resume) => {
            const w = acceptors.waiter()
            const ready = () => {
              acceptors.withdraw(w)
              const p = new PeerHandle(l.take()!, net)
              peers.push(p)
              resume(Effect.succeed(p))
            }
            acceptors.wait(w, ready)
            return Effect.sync(() => acceptors.withdraw(w))
          })
          return { address: l.address, accept }
        })
    }

    const stats: Effect.Effect<RinglineStats> = Effect.sync(() => {
      const c = net.counters
      return {
        mode: "test",
        inFlight: net.inFlight,
        submitted: 0,
        sqFull: 0,
        wakeups: 0,
        emptyWakeups: 0,
        cqOverflows: 0,
        cqes: 0,
        staleCqes: 0,
        enobufs: c.enobufs,
        sendPoolExhausted: 0,
        sendSlotsFree: 0,
        zeroCopySends: 0,
        zeroCopyCopied: 0,
        vectoredSends: 0,
        earlyTurns: 0,
        chains: 0,
        buffersLent: 0,
        backpressurePauses: c.backpressurePauses,
        accepted: c.accepted,
        connected: c.connected,
        closed: c.closed,
        acceptsAbandoned: c.acceptsAbandoned,
        acceptFull: 0,
        acceptFullMs: 0,
        bytesIn: c.bytesIn,
        bytesOut: c.bytesOut,
        datagramsIn: 0,
        datagramsOut: 0,
        connections: channels.size,
        listeners: sources.size,
        buffers: undefined
      }
    })

    const service: RinglineService = { config, mode: "test", listen, connect, stats }
    return { service, control }
  })

const unknownHost = (target: { readonly host: string; readonly port: number }) =>
  new ConnectError({
    reason: "NotFound",
    address: `${target.host}:${target.port}`,
    errno: 0,
    code: "ENOTFOUND",
    argument: "host",
    detail: `${show(target.host)} ${NOT_NUMERIC}`
  })

const connectFailure = (address: Address, res: number): ConnectError =>
  new ConnectError({ reason: failure(-res, false), address: Addr.format(address), errno: -res, code: errnoName(-res) })

/**
 * The peer handle of RinglineTest: the remote end of an in-memory connection, scripted by a test
 * (write, read with expectations, half-close, reset, stall, wait for the accept). Like a node:net
 * socket in flowing mode it drains what arrives into its own buffer, unless stalled: then bytes
 * stay in the connection's bounded pipe and the side under test meets backpressure.
 */
import { Data, Effect } from "effect"
import type { Address } from "../../Address.js"
import { badCount, bytesOf as validBytes } from "../validate.js"
import { ByteQueue, type Endpoint, type Network } from "./network.js"

/**
 * A scripted peer's operation could not do what it was asked: the stream ended or was reset
 * before the bytes arrived, the bytes were not the expected ones, or the peer's own side was
 * already closed. `received` holds what had arrived.
 */
export class PeerError extends Data.TaggedError("PeerError")<{
  readonly reason: "EndOfStream" | "Reset" | "Unexpected" | "Closed"
  readonly operation: string
  readonly detail: string
  readonly received: Uint8Array
}> {
  override get message(): string {
    return `peer ${this.operation}: ${this.reason}: ${this.detail}`
  }
}

const encoder = new TextEncoder()
/** A string as UTF-8, else the ring's own bytes check (a TypeError naming `where` for non-bytes). */
const bytesOf = (b: Uint8Array | string, where: string): Uint8Array =>
  typeof b === "string" ? encoder.encode(b) : validBytes(b, where)

export class PeerHandle {
  private readonly received = new ByteQueue()
  private ended = false
  private wasReset = false
  private stalled = false
  private readonly waiters = new Set<() => void>()
  private withdraw: (() => void) | undefined
  /** Set by the accept source of the side under test when an accept took this connection. */
  accepted = false

  constructor(readonly ep: Endpoint, private readonly net: Network) {
    ep.onAccepted = () => {
      this.accepted = true
      this.wake()
    }
    this.pump()
  }

  get local(): Address {
    return this.ep.local
  }

  get remote(): Address {
    return this.ep.remote
  }

  private pump(): void {
    this.withdraw = undefined
    const pipe = this.ep.inbound
    if (!this.stalled && pipe.length > 0) {
      this.received.append(pipe.take(pipe.length))
    }
    if (this.ep.aborted || (pipe.length === 0 && pipe.reset)) this.wasReset = true
    else if (pipe.length === 0 && pipe.fin) this.ended = true
    if (!this.ended && !this.wasReset && !this.ep.closed) this.withdraw = pipe.whenReadable(() => this.pump())
    this.wake()
  }

  /** Something changed: waiting operations look again. */
  wake(): void {
    for (const w of [...this.waiters]) w()
  }

  private until(ready: () => boolean): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const check = () => {
        if (!ready()) return
        this.waiters.delete(check)
        resume(Effect.void)
      }
      this.waiters.add(check)
      check()
      return Effect.sync(() => this.waiters.delete(check))
    })
  }

  private failRead(operation: string, want: string): Effect.Effect<never, PeerError> {
    const received = this.received.take(this.received.length)
    return Effect.fail(
      new PeerError({
        reason: this.wasReset ? "Reset" : "EndOfStream",
        operation,
        detail: `the connection ${this.wasReset ? "was reset" : "ended"} after ${received.length} of ${want} bytes`,
        received
      })
    )
  }

  write(bytes: Uint8Array | string): Effect.Effect<void, PeerError> {
    return Effect.suspend(() => {
      let rest = bytesOf(bytes, "peer.write's bytes")
      const step: Effect.Effect<void, PeerError> = Effect.suspend(() => {
        const n = this.ep.write(rest)
        if (n < 0) {
          return Effect.fail(
            new PeerError({
              reason: this.ep.closed || this.ep.outbound.fin ? "Closed" : "Reset",
              operation: "write",
              detail: this.ep.closed || this.ep.outbound.fin ? "the peer already ended its side" : "the connection was reset",
              received: new Uint8Array(0)
            })
          )
        }
        rest = rest.subarray(n)
        if (rest.length === 0) return Effect.void
        // The pipe is full: wait for room, as a blocking write would.
        return Effect.zipRight(
          Effect.async<void>((resume) => {
            const stop = this.ep.outbound.whenWritable(() => resume(Effect.void))
            return Effect.sync(stop)
          }),
          step
        )
      })
      return step
    })
  }

  read(n: number): Effect.Effect<Uint8Array, PeerError> {
    // A count that can never be met (NaN, negative, fractional) would wait forever: a defect.
    const bad = badCount(n, 0)
    if (bad !== undefined) return Effect.die(new RangeError(`peer.read's n ${bad}`))
    return Effect.flatMap(
      this.until(() => this.received.length >= n || this.ended || this.wasReset || this.ep.closed),
      () => this.received.length >= n ? Effect.sync(() => this.received.take(n)) : this.failRead("read", String(n))
    )
  }

  get readAll(): Effect.Effect<Uint8Array, PeerError> {
    return Effect.flatMap(
      this.until(() => this.ended || this.wasReset || this.ep.closed),
      () => this.wasReset ? this.failRead("readAll", "all") : Effect.sync(() => this.received.take(this.received.length))
    )
  }

  expect(expected: Uint8Array | string): Effect.Effect<void, PeerError> {
    return Effect.suspend(() => {
      const want = bytesOf(expected, "peer.expect's bytes")
      return Effect.flatMap(this.read(want.length), (got) => {
        for (let i = 0; i < want.length; i++) {
          if (got[i] !== want[i]) {
            return Effect.fail(
              new PeerError({
                reason: "Unexpected",
                operation: "expect",
                detail: `byte ${i} differs: expected ${JSON.stringify(show(want))}, got ${JSON.stringify(show(got))}`,
                received: got
              })
            )
          }
        }
        return Effect.void
      })
    })
  }

  get end(): Effect.Effect<void> {
    return Effect.sync(() => this.ep.shutdownWrite())
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.ep.abort()
      this.withdraw?.()
      this.wake()
    })
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.ep.close()
      this.withdraw?.()
      this.wake()
    })
  }

  get stall(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.stalled = true
    })
  }

  get resume(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.stalled = false
      this.withdraw?.()
      this.net.schedule(() => this.pump())
    })
  }

  /** Waits until an accept of the side under test took this connection. */
  get whenAccepted(): Effect.Effect<void> {
    return this.until(() => this.accepted)
  }
}

const show = (b: Uint8Array): string => {
  const s = Buffer.from(b.subarray(0, 64)).toString("latin1")
  return b.length > 64 ? s + "…" : s
}

/**
 * Property-based tests (issue 9): random programs of reads and writes on both ends of real
 * connections (and UDP sockets), raced against timeouts on the default clock and on
 * RinglineClock, `Effect.race` and `Fiber.interrupt` at random points, with parsers that answer
 * garbage. Invariants: every byte (datagram) sent arrives exactly once and in order; nothing is
 * left in flight; no fd leaks (each case runs in `RinglineTesting.withFreshRing`).
 *
 * Cases per property: RINGLINE_PROPERTY_RUNS (default 25, to keep CI bounded).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, FastCheck as fc, Fiber, Option, Schedule, Stream } from "effect"
import { Connection, RinglineClock, RinglineTesting, Tcp, Udp } from "../src/index.js"
import { portOf } from "./helpers.js"

const RUNS = Number(process.env.RINGLINE_PROPERTY_RUNS ?? 25)
/**
 * A case on a fresh ring. On this shared machine another test may flip kernel.io_uring_disabled
 * for a moment (config.test.ts does): a case whose ring could not even be set up is retried, it
 * says nothing about the property.
 */
const onFreshRing = <A, E>(body: Effect.Effect<A, E, any>): Promise<A> =>
  Effect.runPromise(
    RinglineTesting.withFreshRing(body, RING).pipe(
      Effect.retry({
        while: (e: any) => e?._tag === "RinglineUnavailable" && e?.reason === "Disabled",
        schedule: Schedule.spaced(Duration.millis(200)),
        times: 100
      }),
      Effect.timeout(Duration.seconds(60))
    ) as Effect.Effect<A, unknown>
  )

/** Cases finished per property, logged every 1000 (long runs report their progress). */
const done = new Map<string, number>()
const finished = (name: string) =>
  Effect.sync(() => {
    const n = (done.get(name) ?? 0) + 1
    done.set(name, n)
    if (n % 1000 === 0) console.log(`${name}: ${n} cases passed`)
  })
/** A small ring per case: cheap to set up, and a 16-buffer ring exercises ENOBUFS too. */
const RING = {
  sqEntries: 64,
  recvBuffer: { ringSize: 16, bufferSize: 4096 },
  maxConnections: 64,
  sendPool: { slots: 64, slotSize: 4096 }
} as const

/** The byte at stream offset `i` of direction `dir` (0: client to server, 1: back). */
const byteAt = (dir: number, i: number) => (i * 31 + dir * 101 + (i >>> 8)) & 0xff
const bytes = (dir: number, from: number, n: number) => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = byteAt(dir, from + i)
  return b
}

type Race =
  | { readonly _tag: "plain" }
  | { readonly _tag: "timeout"; readonly micros: number }
  | { readonly _tag: "race"; readonly micros: number }
  | { readonly _tag: "interrupt"; readonly yields: number }

type Read =
  | { readonly _tag: "recv" }
  | { readonly _tag: "parse"; readonly take: number }
  | { readonly _tag: "stream" }
  | { readonly _tag: "garbage"; readonly answer: unknown }

type Write = "send" | "write" | "sendv" | "chain"

type Step =
  | { readonly _tag: "write"; readonly side: 0 | 1; readonly how: Write; readonly size: number }
  | { readonly _tag: "read"; readonly side: 0 | 1; readonly read: Read; readonly race: Race }

const garbage = fc.oneof(
  fc.constantFrom(undefined, null, 0, 42, "Done", true, [], {}),
  fc.record({ _tag: fc.constant("Done"), consumed: fc.constantFrom(NaN, -1, 1.5, 1e9, "1", undefined), value: fc.anything() }),
  fc.record({ _tag: fc.constant("NeedMore"), atLeast: fc.constantFrom(NaN, -5, "x", null) }),
  fc.record({ _tag: fc.string({ maxLength: 6 }).filter((t) => t !== "Done" && t !== "NeedMore") }),
  fc.anything().filter((u) => typeof u !== "object" || u === null || !("_tag" in (u as object)))
)

const race: fc.Arbitrary<Race> = fc.oneof(
  fc.constant({ _tag: "plain" as const }),
  fc.record({ _tag: fc.constant("timeout" as const), micros: fc.integer({ min: 0, max: 400 }) }),
  fc.record({ _tag: fc.constant("race" as const), micros: fc.integer({ min: 0, max: 400 }) }),
  fc.record({ _tag: fc.constant("interrupt" as const), yields: fc.integer({ min: 0, max: 4 }) })
)

const read: fc.Arbitrary<Read> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ _tag: "recv" as const }) },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("parse" as const), take: fc.integer({ min: 1, max: 5000 }) }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "stream" as const }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("garbage" as const), answer: garbage }) }
)

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    _tag: fc.constant("write" as const),
    side: fc.constantFrom(0 as const, 1 as const),
    how: fc.constantFrom<Write>("send", "write", "sendv", "chain"),
    size: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 40_000 }))
  }),
  fc.record({ _tag: fc.constant("read" as const), side: fc.constantFrom(0 as const, 1 as const), read, race })
)

const program = fc.record({
  steps: fc.array(step, { minLength: 1, maxLength: 14 }),
  ringClock: fc.boolean(),
  abrupt: fc.boolean()
})

/** One read of `c`, raced as asked. `Some(bytes)`: bytes taken; `None`: nothing (timed out, interrupted, EOF). */
const readOnce = (c: Connection.Connection, r: Read, how: Race, pending: boolean): Effect.Effect<Option.Option<Uint8Array>> => {
  const base: Effect.Effect<Option.Option<Uint8Array>, unknown> = r._tag === "recv" || r._tag === "stream"
    ? c.recv
    : r._tag === "parse"
    ? c.read((b) => b.length === 0 ? Connection.done(0, Option.none()) : Connection.done(Math.min(r.take, b.length), Option.some(b.slice(0, Math.min(r.take, b.length)))))
    : Effect.exit(c.read(() => r.answer as any)).pipe(Effect.flatMap((exit) => {
      // A garbage answer fails that read with a defect and consumes nothing.
      if (Exit.isFailure(exit) && Cause.isDie(exit.cause)) return Effect.succeed(Option.none<Uint8Array>())
      return Effect.die(new Error(`garbage answer ${String(r.answer)} was not a defect: ${String(exit)}`))
    }))
  // Typed failures (end of stream, a closed connection) are "nothing read"; defects stay defects.
  const safe: Effect.Effect<Option.Option<Uint8Array>> = base.pipe(
    Effect.catchAllCause((cause) => (Cause.isDie(cause) ? Effect.die(Cause.squash(cause)) : Effect.succeed(Option.none<Uint8Array>())))
  )
  switch (how._tag) {
    case "plain":
      // With bytes on their way the read must complete; with none, it waits 1 ms.
      return pending ? safe : Effect.map(Effect.timeoutOption(safe, Duration.millis(1)), Option.flatten)
    case "timeout":
      return Effect.map(Effect.timeoutOption(safe, Duration.millis(how.micros / 1000)), Option.flatten)
    case "race":
      return Effect.race(safe, Effect.as(Effect.sleep(Duration.millis(how.micros / 1000)), Option.none<Uint8Array>()))
    case "interrupt":
      return Effect.gen(function*() {
        const f = yield* Effect.fork(safe)
        for (let i = 0; i < how.yields; i++) yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(f)
        return Exit.isSuccess(exit) ? exit.value : Option.none<Uint8Array>()
      })
  }
}

describe("properties (issue 9)", () => {
  it.live(`random read/write/race/interrupt programs on both ends: every byte once, in order; no leaks (${RUNS} cases)`, () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(program, (p) =>
          onFreshRing(Effect.gen(function*() {
            const clock = p.ringClock ? yield* RinglineClock.make() : undefined
            const body = Effect.gen(function*() {
              const l = yield* Tcp.listen({ port: 0 })
              const client = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
              const server = yield* l.accept
              const ends = [client, server] as const
              const sent = [0, 0]
              const got = [0, 0]
              const check = (dir: number, b: Uint8Array) => {
                for (let i = 0; i < b.length; i++) {
                  if (b[i] !== byteAt(dir, got[dir]! + i)) throw new Error(`direction ${dir}: wrong byte at offset ${got[dir]! + i}`)
                }
                got[dir]! += b.length
              }
              for (const s of p.steps) {
                if (s._tag === "write") {
                  const c = ends[s.side]
                  const b = bytes(s.side, sent[s.side]!, s.size)
                  sent[s.side]! += s.size
                  const half = Math.floor(s.size / 2)
                  const parts = half > 0 ? [b.subarray(0, half), b.subarray(half)] : [b]
                  if (s.how === "send") yield* c.send(b)
                  else if (s.how === "write") yield* c.write(b)
                  else if (s.how === "sendv") yield* c.sendv(parts)
                  else yield* c.chain(parts)
                } else {
                  // Reading on side X gets the bytes sent by the other side.
                  const dir = 1 - s.side
                  // A chunk that `stream` pulled belongs to the stream: interrupting the stream's
                  // consumer may drop it (as for any Stream). So `stream` runs uninterrupted, and
                  // only when bytes are pending; racing it falls back to `recv`.
                  const streamOk = s.read._tag !== "stream" || (s.race._tag === "plain" && sent[dir]! > got[dir]!)
                  const r = s.read._tag === "stream" && streamOk
                    ? yield* Stream.runHead(ends[s.side].stream).pipe(Effect.orDie)
                    : yield* readOnce(ends[s.side], streamOk ? s.read : { _tag: "recv" }, s.race, sent[dir]! > got[dir]!)
                  if (Option.isSome(r)) check(dir, r.value)
                }
              }
              // End: half-close both ways, or close the client abruptly; then drain.
              if (p.abrupt) {
                yield* client.close
                while (true) {
                  const r = yield* Effect.either(server.recv)
                  if (r._tag === "Left" || Option.isNone(r.right)) break
                  check(0, r.right.value)
                }
                // Cut short: what arrived is an in-order prefix (checked byte by byte above).
                expect(got[0]).toBeLessThanOrEqual(sent[0]!)
              } else {
                yield* Effect.all([client.shutdownWrite, server.shutdownWrite])
                for (const side of [0, 1] as const) {
                  while (true) {
                    const r = yield* ends[side].recv
                    if (Option.isNone(r)) break
                    check(1 - side, r.value)
                  }
                }
                expect(got).toEqual(sent)
              }
            })
            yield* (clock === undefined ? body : Effect.withClock(body, clock))
            yield* finished("connections")
          }))
        ),
        { numRuns: RUNS }
      )
    ), { timeout: Math.max(60_000, RUNS * 2_000) })

  it.live(`random recvFrom programs raced against timeouts and interrupts: every datagram exactly once (${RUNS} cases)`, () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.record({
            ringClock: fc.boolean(),
            ops: fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }).map((n) => ({ _tag: "send" as const, n })), race.map((r) => ({ _tag: "recv" as const, race: r }))), {
              minLength: 1,
              maxLength: 20
            })
          }),
          (p) =>
            onFreshRing(Effect.gen(function*() {
              const clock = p.ringClock ? yield* RinglineClock.make() : undefined
              const body = Effect.gen(function*() {
                const a = yield* Udp.bind({ port: 0 })
                const b = yield* Udp.bind({ port: 0 })
                let next = 0
                const seen: Array<number> = []
                const take = (dg: Udp.Datagram) => void seen.push(Buffer.from(dg.data).readUInt32LE(0))
                const recvOnce = (how: Race): Effect.Effect<Option.Option<Udp.Datagram>> => {
                  const safe = Effect.map(b.recvFrom, Option.some).pipe(Effect.orDie)
                  switch (how._tag) {
                    case "plain":
                      return next > seen.length ? safe : Effect.map(Effect.timeoutOption(safe, Duration.millis(1)), Option.flatten)
                    case "timeout":
                      return Effect.map(Effect.timeoutOption(safe, Duration.millis(how.micros / 1000)), Option.flatten)
                    case "race":
                      return Effect.race(safe, Effect.as(Effect.sleep(Duration.millis(how.micros / 1000)), Option.none()))
                    case "interrupt":
                      return Effect.gen(function*() {
                        const f = yield* Effect.fork(safe)
                        for (let i = 0; i < how.yields; i++) yield* Effect.yieldNow()
                        const exit = yield* Fiber.interrupt(f)
                        return Exit.isSuccess(exit) ? exit.value : Option.none()
                      })
                  }
                }
                for (const op of p.ops) {
                  if (op._tag === "send") {
                    for (let i = 0; i < op.n; i++) {
                      const d = Buffer.alloc(4 + (next % 50))
                      d.writeUInt32LE(next++, 0)
                      yield* a.sendTo(d, b.address)
                    }
                  } else {
                    const r = yield* recvOnce(op.race)
                    if (Option.isSome(r)) take(r.value)
                  }
                }
                while (seen.length < next) take(yield* b.recvFrom.pipe(Effect.orDie, Effect.timeout(Duration.seconds(5))))
                expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: next }, (_, i) => i))
                // In order, too: one sender, one socket, loopback.
                expect(seen).toEqual(Array.from({ length: next }, (_, i) => i))
              })
              yield* (clock === undefined ? body : Effect.withClock(body, clock))
              yield* finished("udp")
            }))
        ),
        { numRuns: RUNS }
      )
    ), { timeout: Math.max(60_000, RUNS * 2_000) })
})

/**
 * Property tests over the argument space (issue 9): ports, hosts, paths, byte arguments, connect
 * options and config objects for Tcp, Unix, Udp, connections and Process. Each case either works
 * or fails with the operation's typed error; it dies only for bytes of the wrong JavaScript type
 * (documented); it never throws into Node, never hangs, and leaves no op and no fd behind.
 * Run longer with RINGLINE_PROPERTY_RUNS=N.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Stream } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Process, RinglineConfig, Tcp, Udp, Unix } from "../src/index.js"
import type { Ringline } from "../src/Ringline.js"
import { classify, oneCase, PROPERTY_CASES, RUNS, sharedRing } from "./property-harness.js"

const ring = sharedRing({ shutdownTimeout: 500 })
// The time limit grows with the case count (about a second per case on a loaded machine).
const opts = (factor = 1) => {
  const numRuns = Math.max(1, Math.round(RUNS * factor))
  return { timeout: 120_000 + numRuns * 1000, fastCheck: { numRuns } }
}

const validPort = (p: unknown): p is number => typeof p === "number" && Number.isInteger(p) && p >= 0 && p <= 65535

/** Ports from the whole input space: valid, out of range, fractional, NaN, infinite, wrong type. */
const anyPort: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -70000, max: 140000 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, -0, 0.5, 2 ** 32, 2 ** 53, null, "80", {}, true) }
)

/** Strings with NUL bytes somewhere (the truncation attack). */
const withNul = (base: fc.Arbitrary<string>) =>
  fc.tuple(base, fc.nat(), fc.string()).map(([s, at, tail]) => {
    const i = at % (s.length + 1)
    return s.slice(0, i) + "\0" + tail + s.slice(i)
  })

/** Hosts: literals of both families, localhost, broken literals, NUL-carrying names, empty. */
const anyHost: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("127.0.0.1", "::1", "localhost", "0.0.0.0", "::") },
  { weight: 2, arbitrary: fc.ipV4() },
  { weight: 1, arbitrary: fc.ipV6() },
  { weight: 2, arbitrary: withNul(fc.constantFrom("127.0.0.1", "localhost", "example.com")) },
  { weight: 1, arbitrary: fc.constantFrom("999.1.1.1", "", "1.2.3", "::g", "[::1]", 42, null) }
)

const hasNul = (s: unknown) => typeof s === "string" && s.includes("\0")

describe("properties: listen and connect arguments", () => {
  it.live.prop("Tcp.listen({ host, port, backlog }) works or fails with SocketError", {
    host: anyHost,
    port: anyPort,
    backlog: fc.oneof(fc.constant(undefined), fc.integer({ min: -5, max: 5000 }), fc.constant(NaN))
  }, ({ host, port, backlog }) =>
    ring.provide(Effect.gen(function*() {
      // Valid ports other than 0 would bind ports other tests on this machine may use.
      const p = validPort(port) ? 0 : port
      const r = yield* oneCase("Tcp.listen", Tcp.listen({ host: host as string, port: p as number, backlog: backlog as number }))
      if (r.outcome === "failure") {
        expect(r.error._tag).toBe("SocketError")
        expect(r.error.message).toMatch(/listen|bind|socket/)
        // The first bad argument is named (host before port).
        if (hasNul(host) || (host !== undefined && typeof host !== "string")) expect(r.error.argument).toBe("host")
        else if (!validPort(p)) expect(r.error.argument).toBe("port")
      } else {
        expect(r.outcome).toBe("success")
        expect(validPort(p) && !hasNul(host)).toBe(true)
      }
    })), opts())

  it.live.prop("Tcp.connect(target, { timeout }) works or fails with ConnectError; out-of-range ports never connect", {
    host: anyHost,
    port: anyPort,
    asString: fc.boolean(),
    ours: fc.boolean(),
    timeout: fc.oneof(fc.constant(undefined), fc.integer({ min: -10, max: 300 }), fc.constantFrom(NaN, Infinity, "soon", "50 millis"))
  }, ({ host, port, asString, ours, timeout }) =>
    ring.provide(Effect.gen(function*() {
      const r = yield* oneCase("Tcp.connect", Effect.gen(function*() {
        const listener = yield* Tcp.listen({ port: 0 })
        const own = listener.address._tag === "TcpAddress" ? listener.address.port : 0
        // Only our own listener may be reached: a valid port is replaced by ours or a wrapped one.
        const p = validPort(port) ? (ours ? own : own + 65536) : asString && typeof port !== "number" ? own + 65536 : port
        const target = asString ? `${String(host).includes(":") ? `[${host}]` : host}:${p}` : { host: host as string, port: p as number }
        const c = yield* Tcp.connect(target, timeout === undefined ? undefined : { timeout: timeout as number })
        expect(p).toBe(own)
        yield* c.close
      }))
      if (r.outcome === "failure") {
        expect(r.error._tag).toBe("ConnectError")
        expect(typeof r.error.message).toBe("string")
        if (hasNul(host)) expect(r.error.reason === "InvalidArgument" || r.error.reason === "NotFound" || r.error.reason === "Other").toBe(true)
      } else {
        expect(r.outcome).toBe("success")
      }
    })), opts())

  it.live.prop("Unix.listen / Unix.connect with any path: typed errors, nothing outside the directory, nothing for NUL", {
    name: fc.oneof(
      { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 140 }) },
      { weight: 2, arbitrary: withNul(fc.string({ minLength: 1, maxLength: 20 })) },
      { weight: 1, arbitrary: fc.string({ minLength: 90, maxLength: 400 }) }
    )
  }, ({ name }) =>
    ring.provide(Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "rl-p-"))
      try {
        const path = join(dir, name)
        const r = yield* oneCase("Unix.listen+connect", Effect.gen(function*() {
          yield* Unix.listen({ path })
          const c = yield* Unix.connect(path)
          yield* c.close
        }))
        const bytes = Buffer.byteLength(path)
        if (r.outcome === "failure") {
          expect(["SocketError", "ConnectError"]).toContain(r.error._tag)
          if (path.includes("\0") || bytes > 107) expect(r.error.argument).toBe("path")
        } else {
          expect(r.outcome).toBe("success")
          expect(bytes <= 107 && !path.includes("\0")).toBe(true)
        }
        if (path.includes("\0")) expect(readdirSync(dir)).toEqual([])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })), opts())
})

/** Byte arguments: every ArrayBufferView kind, and values that are no bytes at all. */
const anyBytes: fc.Arbitrary<{ value: unknown; bytes: Buffer | undefined }> = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }).map((u) => ({ value: u, bytes: Buffer.from(u) })),
  fc.tuple(fc.uint8Array({ minLength: 8, maxLength: 4000 }), fc.nat(), fc.nat()).map(([u, a, b]) => {
    const off = a % u.length, len = b % (u.length - off + 1)
    return { value: Buffer.from(u.buffer, u.byteOffset + off, len), bytes: Buffer.from(u.subarray(off, off + len)) }
  }),
  fc.int32Array({ maxLength: 600 }).map((a) => ({ value: a, bytes: Buffer.from(a.buffer, a.byteOffset, a.byteLength) })),
  fc.float64Array({ maxLength: 100 }).map((a) => ({ value: a, bytes: Buffer.from(a.buffer, a.byteOffset, a.byteLength) })),
  fc.uint8Array({ minLength: 4, maxLength: 400 }).map((u) => {
    const dv = new DataView(u.buffer, 1, u.length - 2)
    return { value: dv, bytes: Buffer.from(u.subarray(1, u.length - 1)) }
  }),
  fc.constantFrom<unknown>("hello", 42, null, undefined, {}, [1, 2, 3], new ArrayBuffer(4), Symbol("x"), () => 1)
    .map((value) => ({ value, bytes: undefined }))
)

describe("properties: byte arguments", () => {
  it.live.prop("send / write / sendv / chain / unsafeWrite: views arrive exactly; anything else dies at the call, nothing queued", {
    calls: fc.array(fc.tuple(fc.constantFrom("send", "write", "sendv", "chain", "unsafeWrite", "sink"), anyBytes, anyBytes), {
      minLength: 1,
      maxLength: 6
    })
  }, ({ calls }) =>
    ring.provide(Effect.gen(function*() {
      const r = yield* oneCase("Connection bytes", Effect.gen(function*() {
        const listener = yield* Tcp.listen({ port: 0 })
        const port = listener.address._tag === "TcpAddress" ? listener.address.port : 0
        const got: Array<Buffer> = []
        let ended = false
        yield* Effect.forkScoped(listener.serve((conn) =>
          Stream.runForEach(conn.stream, (b) => Effect.sync(() => got.push(Buffer.from(b)))).pipe(
            Effect.ensuring(Effect.sync(() => (ended = true)))
          )
        ))
        const c = yield* Tcp.connect({ host: "127.0.0.1", port })
        const expected: Array<Buffer> = []
        for (const [op, a, b] of calls) {
          const parts = op === "sendv" || op === "chain" ? [a, b] : [a]
          const good = parts.every((p) => p.bytes !== undefined)
          const before = c.queuedBytes + c.bytesSent
          const run = op === "send"
            ? c.send(a.value as Uint8Array)
            : op === "write"
            ? c.write(a.value as Uint8Array)
            : op === "sendv"
            ? c.sendv(parts.map((p) => p.value as Uint8Array))
            : op === "chain"
            ? c.chain(parts.map((p) => p.value as Uint8Array))
            : op === "sink"
            ? Stream.run(Stream.make(a.value as Uint8Array), c.sink)
            : Effect.try({ try: () => c.unsafeWrite(a.value as Uint8Array), catch: (e) => e }).pipe(
              Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("closed"))),
              Effect.catchAll((e) => Effect.die(e))
            )
          const result = classify(yield* Effect.exit(run))
          if (good) {
            expect(result.outcome).toBe("success")
            for (const p of parts) expected.push(p.bytes!)
          } else {
            expect(result.outcome).toBe("defect")
            expect(result.error).toBeInstanceOf(TypeError)
            expect(c.queuedBytes + c.bytesSent).toBe(before)
          }
        }
        yield* c.shutdownWrite
        for (let i = 0; i < 500 && !ended; i++) yield* Effect.sleep(2)
        expect(Buffer.concat(got).equals(Buffer.concat(expected))).toBe(true)
      }))
      expect(r.outcome).toBe("success")
    })), opts(0.5))

  it.live.prop("Udp.bind / sendTo over the argument space: typed errors; views arrive exactly; non-bytes die", {
    host: anyHost,
    port: anyPort,
    toHost: anyHost,
    toPort: anyPort,
    data: anyBytes
  }, ({ data, host, port, toHost, toPort }) =>
    ring.provide(Effect.gen(function*() {
      const bound = yield* oneCase("Udp.bind", Udp.bind({ host: host as string, port: (validPort(port) ? 0 : port) as number }))
      if (bound.outcome === "failure") expect(["SocketError", "RinglineUnavailable"]).toContain(bound.error._tag)
      else expect(bound.outcome).toBe("success")
      const r = yield* oneCase("Udp.sendTo", Effect.gen(function*() {
        const receiver = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
        const sender = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
        // Valid ports are replaced by the receiver's: nothing else on this machine is sent to.
        const to = { host: toHost as string, port: (validPort(toPort) ? receiver.address.port : toPort) as number }
        yield* sender.sendTo(data.value as Uint8Array, to)
        if (to.host === "127.0.0.1" || to.host === "localhost") {
          const dg = yield* receiver.recvFrom.pipe(Effect.timeout(2000))
          expect(Buffer.from(dg.data).equals(data.bytes!)).toBe(true)
        }
      }))
      if (data.bytes === undefined && r.outcome !== "failure") {
        expect(r.outcome).toBe("defect")
        expect(r.error).toBeInstanceOf(TypeError)
      } else if (r.outcome === "failure") {
        expect(["SocketError", "SocketClosed", "TimeoutException"]).toContain(r.error._tag)
        if (hasNul(toHost)) expect(r.error.argument).toBe("host")
        else if (!validPort(toPort) && typeof toHost === "string") expect(r.error.argument).toBe("port")
      } else {
        expect(r.outcome).toBe("success")
      }
    })), opts())
})

describe("properties: processes", () => {
  it.live.prop("Process.output(command, args, { cwd, env }): exits or fails with ProcessError; NUL never reaches execve", {
    command: fc.oneof(fc.constantFrom("/bin/echo", "/bin/true", "echo", "/nonexistent"), withNul(fc.constant("/bin/echo")), fc.string()),
    args: fc.array(fc.oneof(fc.string({ maxLength: 20 }), withNul(fc.string({ maxLength: 5 }))), { maxLength: 4 }),
    cwd: fc.oneof(fc.constant(undefined), fc.constantFrom("/", "/tmp", "/nonexistent"), withNul(fc.constant("/tmp"))),
    env: fc.oneof(fc.constant(undefined), fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), withNul(fc.constant("v"))), { maxKeys: 3 }))
  }, ({ args, command, cwd, env }) =>
    ring.provide(Effect.gen(function*() {
      const anyNul = [command, ...args, cwd ?? "", ...Object.entries(env ?? {}).flat()].some(hasNul)
      const r = yield* oneCase("Process.output", Process.output(command, args, { ...(cwd === undefined ? {} : { cwd }), ...(env === undefined ? {} : { env }) }))
      if (r.outcome === "failure") {
        expect(r.error._tag).toBe("ProcessError")
        if (anyNul) expect(r.error.code).toBe("EINVAL")
      } else {
        expect(r.outcome).toBe("success")
        expect(anyNul).toBe(false)
      }
    })), opts(0.5))

  it.live.prop("an interrupted spawn or output at a random point leaves no child, op or fd", {
    delayUs: fc.integer({ min: 0, max: 3000 }),
    useOutput: fc.boolean()
  }, ({ delayUs, useOutput }) =>
    ring.provide(Effect.gen(function*() {
      const r = yield* oneCase("Process interrupted", Effect.gen(function*() {
        const run: Effect.Effect<unknown, unknown, Ringline> = useOutput ? Process.output("/bin/sh", ["-c", "echo hi; sleep 5"]) : Effect.scoped(Effect.flatMap(Process.spawn("/bin/sleep", ["5"]), (c) => c.exitStatus))
        const fiber = yield* Effect.fork(run)
        yield* Effect.sleep(delayUs / 1000)
        yield* fiber.interruptAsFork(fiber.id()).pipe(Effect.zipRight(fiber.await))
      }))
      expect(r.outcome).toBe("success")
    })), opts(0.5))
})

describe("properties: RinglineConfig", () => {
  const key = fc.constantFrom(
    "sqEntries", "submitBatch", "recvBuffer", "maxConnections", "backlog", "sendPool", "sendZeroCopyThreshold",
    "maxChainLength", "tcpNoDelay", "sendQueueHighWater", "sendQueueLowWater", "shutdownTimeoutMs", "shutdownTimeout", "sqpoll",
    "sqpollIdleMs", "timestamps", "maxConnection", "bogus", "__proto__x", "ringSize"
  )
  const value: fc.Arbitrary<unknown> = fc.oneof(
    fc.integer({ min: -10, max: 70000 }),
    fc.double(),
    fc.boolean(),
    fc.string({ maxLength: 5 }),
    fc.constantFrom(null, undefined, [], {}, NaN),
    fc.record({ ringSize: fc.integer({ min: -1, max: 4096 }), bufferSize: fc.integer({ min: 0, max: 70000 }) }, { requiredKeys: [] }),
    fc.record({ slots: fc.integer({ min: -1, max: 64 }), slotSize: fc.integer({ min: -1, max: 65536 }), extra: fc.nat() }, { requiredKeys: [] })
  )
  it.prop("make never throws; an error names a field that is in the input (or the whole config)", {
    input: fc.oneof({ weight: 9, arbitrary: fc.dictionary(key, value, { maxKeys: 5 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 5, "x", []) })
  }, ({ input }) => {
    PROPERTY_CASES.set("RinglineConfig.make", (PROPERTY_CASES.get("RinglineConfig.make") ?? 0) + 1)
    const r = RinglineConfig.make(input as RinglineConfig.RinglineConfigInput)
    if (Either.isLeft(r)) {
      const field = r.left.field
      expect(r.left.message).toContain(field)
      if (field !== "(config)") {
        const top = field.split(".")[0]!
        // The low-water rule compares with the high-water mark: either may be the one given.
        const named = top === "sendQueueLowWater" ? ["sendQueueLowWater", "sendQueueHighWater"] : [top]
        expect(Object.keys(input as object).some((k) => named.includes(k))).toBe(true)
      }
    } else {
      for (const k of Object.keys(input as object)) {
        expect(["maxConnection", "bogus", "__proto__x", "ringSize"]).not.toContain(k)
      }
    }
  }, opts(20))
})

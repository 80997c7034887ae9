import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isIPv4, isIPv6 } from "node:net"
import * as net from "node:net"
import { Resolver, Tcp } from "../src/index.js"
import { collect, withRing } from "./helpers.js"

/** A lookup stub that counts its calls and answers from a table (or with an error code). */
const stub = (table: Record<string, ReadonlyArray<{ address: string; family: number }> | string>) => {
  const calls: Array<string> = []
  const lookup: Resolver.LookupFunction = (host) => {
    calls.push(host)
    const answer = table[host]
    if (answer === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" }))
    if (answer === "hang") return new Promise(() => {})
    if (typeof answer === "string") return Promise.reject(Object.assign(new Error(`getaddrinfo ${answer} ${host}`), { code: answer }))
    return Promise.resolve(answer)
  }
  return { calls, lookup }
}

/** A node:net server on `host` (node resolves it the same way: its first address). */
const nodeServerOn = (host: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ server: net.Server; address: net.AddressInfo }>((resolve) => {
        const server = net.createServer((s) => {
          s.once("data", (d) => s.end(Buffer.concat([Buffer.from("hello "), d])))
        })
        server.listen(0, host, () => resolve({ server, address: server.address() as net.AddressInfo }))
      })
    ),
    ({ server }) => Effect.promise(() => new Promise((r) => server.close(r)))
  )

describe("Resolver", () => {
  it.live("localhost resolves to a loopback address (127.0.0.1 and/or ::1)", () =>
    Effect.gen(function*() {
      const all = yield* Resolver.resolve("localhost")
      expect(all.length).toBeGreaterThanOrEqual(1)
      expect(all.some((a) => a.address === "127.0.0.1" || a.address === "::1")).toBe(true)
      for (const a of all) expect(a.family === 4 ? isIPv4(a.address) : isIPv6(a.address)).toBe(true)
      // The system resolver without the service gives the same answer.
      expect(yield* Resolver.system.resolve("localhost")).toEqual(all)
      expect(Resolver.toTcpAddress(all[0], 80)).toEqual({ _tag: "TcpAddress", host: all[0].address, port: 80, family: all[0].family })
    }).pipe(Effect.provide(Resolver.layer())))

  it.live("nonexistent.invalid fails with NotFound (ENOTFOUND), typed", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(Resolver.resolve("nonexistent.invalid"))
      expect(err._tag).toBe("ResolveError")
      expect(err.reason).toBe("NotFound")
      expect(["ENOTFOUND", "EAI_NONAME"]).toContain(err.code)
      expect(err.host).toBe("nonexistent.invalid")
      expect(err.message).toContain("nonexistent.invalid")
    }).pipe(Effect.provide(Resolver.layer())))

  it.live("a numeric address resolves to itself without a lookup", () =>
    Effect.gen(function*() {
      const s = stub({ "name.test": [{ address: "10.1.2.3", family: 4 }] })
      const r = yield* Resolver.make({ lookup: s.lookup })
      expect(yield* r.resolve("127.0.0.1")).toEqual([{ address: "127.0.0.1", family: 4 }])
      expect(yield* r.resolve("::1")).toEqual([{ address: "::1", family: 6 }])
      expect(yield* r.resolve("[2001:db8::7]")).toEqual([{ address: "2001:db8::7", family: 6 }])
      expect(s.calls).toEqual([])
      // The stub does count lookups: a name goes through it.
      expect(yield* r.resolve("name.test")).toEqual([{ address: "10.1.2.3", family: 4 }])
      expect(s.calls).toEqual(["name.test"])
    }))

  it.live("resolver error codes are classified: NotFound, Unavailable (incl. timeout), Other", () =>
    Effect.gen(function*() {
      const s = stub({
        "again.test": "EAI_AGAIN",
        "servfail.test": "ESERVFAIL",
        "nodata.test": "ENODATA",
        "bad.test": "EBADNAME",
        "empty.test": [],
        "hang.test": "hang",
        "dual.test": [{ address: "::1", family: 6 }, { address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }]
      })
      const r = yield* Resolver.make({ lookup: s.lookup, timeout: "150 millis" })
      const reason = (host: string) => Effect.map(Effect.flip(r.resolve(host)), (e) => [e.reason, e.code])
      expect(yield* reason("again.test")).toEqual(["Unavailable", "EAI_AGAIN"])
      expect(yield* reason("servfail.test")).toEqual(["Unavailable", "ESERVFAIL"])
      expect(yield* reason("nodata.test")).toEqual(["NotFound", "ENODATA"])
      expect(yield* reason("missing.test")).toEqual(["NotFound", "ENOTFOUND"])
      expect(yield* reason("empty.test")).toEqual(["NotFound", "ENODATA"])
      expect(yield* reason("bad.test")).toEqual(["Other", "EBADNAME"])
      expect(yield* reason("")).toEqual(["Other", "EBADNAME"])
      const t0 = performance.now()
      expect(yield* reason("hang.test")).toEqual(["Unavailable", "ETIMEOUT"])
      expect(performance.now() - t0).toBeLessThan(2_000)
      // Every address, in the resolver's order, duplicates removed.
      expect(yield* r.resolve("dual.test")).toEqual([{ address: "::1", family: 6 }, { address: "127.0.0.1", family: 4 }])
    }))

  it.live("options are validated, naming the field", () =>
    Effect.gen(function*() {
      for (const timeout of [0, "soon"]) {
        const e = yield* Effect.flip(Resolver.make({ timeout: timeout as any }))
        expect(e._tag).toBe("RinglineConfigError")
        expect(e.field).toBe("resolver.timeout")
      }
    }))

  it.live("Tcp.connect(\"localhost:<port>\") reaches a node:net server through ringline", () =>
    withRing(Effect.gen(function*() {
      const [first] = yield* Resolver.system.resolve("localhost")
      const { address } = yield* nodeServerOn("localhost")
      expect(address.address).toBe(first.address)
      const c = yield* Tcp.connect(`localhost:${address.port}`, { timeout: "5 seconds" })
      expect(yield* c.peerAddress).toMatchObject({ _tag: "TcpAddress", host: first.address, port: address.port })
      yield* c.send(Buffer.from("ringline"))
      expect(yield* collect(c)).toBe("hello ringline")
    })))

  it.live("Tcp.connect tries every resolved address in order until one connects", () =>
    withRing(Effect.gen(function*() {
      const { address } = yield* nodeServerOn("127.0.0.1")
      // 127.0.0.2 is loopback too, but nothing listens there on this port: refused, then the next.
      const s = stub({
        "multi.test": [{ address: "127.0.0.2", family: 4 }, { address: "127.0.0.1", family: 4 }],
        "none.test": [{ address: "127.0.0.2", family: 4 }, { address: "127.0.0.3", family: 4 }]
      })
      const custom = yield* Resolver.make({ lookup: s.lookup })
      const c = yield* Effect.provideService(Tcp.connect(`multi.test:${address.port}`), Resolver.Resolver, custom)
      expect(yield* c.peerAddress).toEqual({ _tag: "TcpAddress", family: 4, host: "127.0.0.1", port: address.port })
      const err = yield* Effect.flip(Effect.provideService(Tcp.connect(`none.test:${address.port}`), Resolver.Resolver, custom))
      expect(err.reason).toBe("Refused")
      expect(err.address).toBe(`127.0.0.3:${address.port}`)
    })))

  it.live("Tcp.connect resolves through a provided Resolver service; failures are typed ConnectErrors", () =>
    withRing(Effect.gen(function*() {
      const { address } = yield* nodeServerOn("127.0.0.1")
      const s = stub({ "backend.test": [{ address: "127.0.0.1", family: 4 }], "flaky.test": "EAI_AGAIN" })
      const custom = yield* Resolver.make({ lookup: s.lookup })
      const c = yield* Effect.provideService(Tcp.connect(`backend.test:${address.port}`), Resolver.Resolver, custom)
      yield* c.send(Buffer.from("via stub"))
      expect(yield* collect(c)).toBe("hello via stub")
      expect(s.calls).toEqual(["backend.test"])

      const flaky = yield* Effect.flip(Effect.provideService(Tcp.connect(`flaky.test:${address.port}`), Resolver.Resolver, custom))
      expect(flaky._tag).toBe("ConnectError")
      expect(flaky.reason).toBe("Other")
      expect(flaky.code).toBe("EAI_AGAIN")

      // Without the service: the system resolver.
      const missing = yield* Effect.flip(Tcp.connect("nonexistent.invalid:80"))
      expect(missing.reason).toBe("NotFound")
      expect(missing.address).toBe("nonexistent.invalid:80")
      // A numeric target never consults the resolver.
      const n = yield* Effect.provideService(Tcp.connect({ host: "127.0.0.1", port: address.port }), Resolver.Resolver, custom)
      yield* n.send(Buffer.from("n"))
      expect(yield* collect(n)).toBe("hello n")
      expect(s.calls).toEqual(["backend.test", "flaky.test"])
    })))
})

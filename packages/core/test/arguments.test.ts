/**
 * Every argument is checked before anything is staged on the ring (issue 9, items 2, 4, 5, 6 and
 * the messages of 10): a bad one fails with a typed error naming it, nothing is submitted, no op
 * and no fd is left behind (withRing checks both), and the process keeps running.
 */
import { Command } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Layer, Option, Stream } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import * as dgram from "node:dgram"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as net from "node:net"
import {
  Address,
  Process,
  Resolver,
  Ringline,
  RinglineCommandExecutor,
  RinglineConfig,
  RinglineSocket,
  RinglineSocketServer,
  Tcp,
  Udp,
  Unix
} from "../src/index.js"
import type { Connection } from "../src/index.js"
import { closedPort, nodeServer, readN, withRing } from "./helpers.js"

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "ringline-args-"))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Runs `effect` and checks that it staged nothing: no op slot was taken and no completion came
 * back. Returns its exit.
 */
export const nothingSubmitted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    // Let whatever earlier steps staged (a listener's accept, a recv) reach the kernel first.
    yield* Effect.sleep(5)
    const before = yield* Ringline.stats
    const exit = yield* Effect.exit(effect)
    // Anything staged would be submitted by the end of this turn of the loop.
    yield* Effect.sleep(5)
    const after = yield* Ringline.stats
    // Every SQE ends in at least one CQE; `submitted` is no measure (the loop's eventfd re-arm
    // submits too).
    expect(after.cqes - before.cqes).toBe(0)
    expect(after.inFlight).toBe(before.inFlight)
    return exit
  })

/** The typed failure of an exit (fails the test on success or a defect). */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got success ${String(exit.value)}`)
  const f = Cause.failureOption(exit.cause)
  if (Option.isNone(f)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return f.value
}

/** The defect of an exit. */
const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) throw new Error("expected a defect, got success")
  const d = Cause.dieOption(exit.cause)
  if (Option.isNone(d)) throw new Error(`expected a defect, got ${Cause.pretty(exit.cause)}`)
  return d.value
}

const BAD_PORTS: ReadonlyArray<unknown> = [70000, 65536, -1, 1.5, NaN, Infinity, -Infinity, "80", null, 2 ** 32 + 80]

/** A ringline listener whose handler collects every byte of its connections. */
const sinkServer = Effect.gen(function*() {
  const listener = yield* Tcp.listen({ port: 0 })
  const got: Array<Buffer> = []
  yield* Effect.forkScoped(listener.serve((conn) =>
    Stream.runForEach(conn.stream, (chunk) => Effect.sync(() => got.push(Buffer.from(chunk))))
  ))
  const port = listener.address._tag === "TcpAddress" ? listener.address.port : 0
  return { port, bytes: () => Buffer.concat(got) }
})

const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !cond(); i++) yield* Effect.sleep(10)
    expect(cond()).toBe(true)
  })

describe("item 2: Unix.connect to a path longer than 107 bytes", () => {
  it.live("fails with ConnectError before anything is submitted (crashed the process before)", () =>
    withRing(Effect.gen(function*() {
      for (const length of [108, 109, 200, 4096]) {
        const path = "/tmp/" + "x".repeat(length - 5)
        const e = failureOf(yield* nothingSubmitted(Unix.connect(path)))
        expect(e).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "path", code: "EINVAL" })
        expect(e.message).toContain(`${Buffer.byteLength(path)} bytes long`)
      }
      // 107 bytes fits: it is tried (and not found).
      const fits = "/tmp/" + "y".repeat(102)
      expect(failureOf(yield* Effect.exit(Unix.connect(fits)))).toMatchObject({ _tag: "ConnectError", reason: "NotFound" })
      // Multi-byte characters count in bytes.
      const wide = failureOf(yield* nothingSubmitted(Unix.connect("/tmp/" + "é".repeat(60))))
      expect(wide).toMatchObject({ reason: "InvalidArgument", argument: "path" })
    })))

  it.live("Unix.listen with a long path: a typed SocketError naming the path", () =>
    withRing(Effect.gen(function*() {
      const e = failureOf(yield* nothingSubmitted(Unix.listen({ path: "/tmp/" + "z".repeat(200) })))
      expect(e).toMatchObject({ _tag: "SocketError", argument: "path", code: "EINVAL" })
    })))
})

describe("item 4: NUL bytes never reach the kernel", () => {
  it.live("Unix.listen / Unix.connect: no truncated socket file is created or reached", () =>
    withRing(Effect.gen(function*() {
      const { dir, cleanup } = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const e = failureOf(yield* nothingSubmitted(Unix.listen({ path: join(dir, "x\0y") })))
      expect(e).toMatchObject({ _tag: "SocketError", argument: "path" })
      expect(e.message).toContain("NUL")
      expect(readdirSync(dir)).toEqual([])
      // A real socket at the truncated name must not be reached.
      const l = yield* Unix.listen({ path: join(dir, "x") })
      void l
      const c = failureOf(yield* nothingSubmitted(Unix.connect(join(dir, "x\0y"))))
      expect(c).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "path" })
      // An abstract socket name starts with NUL: that stays allowed.
      const name = `\0ringline-abstract-${process.pid}-${Date.now()}`
      const abstract = yield* Unix.listen({ path: name })
      expect(abstract.address).toEqual({ _tag: "UnixAddress", path: name })
      const conn = yield* Unix.connect(name)
      yield* conn.close
    })))

  it.live("Tcp.listen / Tcp.connect host names with NUL", () =>
    withRing(Effect.gen(function*() {
      const { port } = yield* sinkServer
      expect(failureOf(yield* nothingSubmitted(Tcp.listen({ host: "127.0.0.1\0.evil", port: 0 }))))
        .toMatchObject({ _tag: "SocketError", argument: "host" })
      expect(failureOf(yield* nothingSubmitted(Tcp.connect({ host: "localhost\0.evil.example", port }))))
        .toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "host" })
      expect(failureOf(yield* nothingSubmitted(Tcp.connect(`127.0.0.1\0x:${port}`))))
        .toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "host" })
    })))

  it.live("Resolver: a name with NUL is not looked up", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Resolver.resolve("localhost\0.evil.example").pipe(Effect.provide(Resolver.layer())))
      expect(e).toMatchObject({ _tag: "ResolveError", code: "EBADNAME" })
    }))

  it.live("Udp.bind and sendTo host names with NUL", () =>
    withRing(Effect.gen(function*() {
      expect(failureOf(yield* nothingSubmitted(Udp.bind({ host: "127.0.0.1\0" }))))
        .toMatchObject({ _tag: "SocketError", argument: "host" })
      const s = yield* Udp.bind({ port: 0 })
      expect(failureOf(yield* nothingSubmitted(s.sendTo(Buffer.from("x"), { host: "localhost\0evil", port: 9 }))))
        .toMatchObject({ _tag: "SocketError", operation: "sendTo", argument: "host" })
    })))

  it.live("Process.spawn: command, args, argv0, cwd and env with NUL fail with EINVAL naming them", () =>
    withRing(Effect.gen(function*() {
      const { dir, cleanup } = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const victim = join(dir, "victim")
      const cases: Array<[Effect.Effect<unknown, unknown, any>, string]> = [
        [Process.spawn("/bin/touch\0zzz", [victim]), "command"],
        [Process.spawn("/bin/touch", [victim + "\0zzz"]), "args[0]"],
        [Process.spawn("/bin/touch", [victim], { argv0: "a\0b" }), "argv0"],
        [Process.spawn("/bin/touch", [victim], { cwd: dir + "\0x" }), "cwd"],
        [Process.spawn("/bin/touch", [victim], { env: { A: "1\0" } }), "env.A"],
        [Process.spawn("/bin/touch", [victim], { env: { "A=B": "1" } }), 'env name "A=B"'],
        [Process.spawn("", []), "command"]
      ]
      for (const [spawn, argument] of cases) {
        const e = failureOf(yield* Effect.exit(Effect.scoped(spawn)))
        expect(e).toMatchObject({ _tag: "ProcessError", operation: "spawn", code: "EINVAL", argument })
      }
      expect(existsSync(victim)).toBe(false)
      // The same program without the NUL runs.
      const ok = yield* Process.output("/bin/touch", [victim])
      expect(ok.status).toEqual({ _tag: "Exited", code: 0 })
      expect(existsSync(victim)).toBe(true)
    })))

  it.live("RinglineCommandExecutor: a command with NUL fails typed, nothing runs", () =>
    withRing(Effect.gen(function*() {
      const { dir, cleanup } = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const victim = join(dir, "victim")
      const e = yield* Effect.flip(Command.exitCode(Command.make("/bin/touch", victim + "\0zzz")))
      expect(e).toMatchObject({ _tag: "SystemError", module: "Command", method: "spawn" })
      expect(e.message).toContain("NUL")
      const shell = yield* Effect.flip(Command.exitCode(Command.make("touch", victim + "\0").pipe(Command.runInShell(true))))
      expect(shell._tag).toBe("SystemError")
      expect(existsSync(victim)).toBe(false)
    }).pipe(Effect.provide(Layer.provideMerge(RinglineCommandExecutor.layer, Layer.empty)))))
})

describe("item 5: ports are integers from 0 to 65535", () => {
  it.live("Tcp.listen: every bad port is a SocketError naming port (they wrapped or bound port 1 before)", () =>
    withRing(Effect.gen(function*() {
      for (const port of BAD_PORTS) {
        const e = failureOf(yield* nothingSubmitted(Tcp.listen({ port: port as number })))
        expect(e).toMatchObject({ _tag: "SocketError", operation: "listen", argument: "port", code: "EINVAL" })
        expect(e.message).toContain("must be an integer from 0 to 65535")
      }
      const backlog = failureOf(yield* nothingSubmitted(Tcp.listen({ port: 0, backlog: -1 })))
      expect(backlog).toMatchObject({ argument: "backlog" })
    })))

  it.live("Tcp.connect: objects and host:port strings out of range never reach port p (they did as 65536 + p)", () =>
    withRing(Effect.gen(function*() {
      const { port } = yield* sinkServer
      for (const bad of BAD_PORTS) {
        const e = failureOf(yield* nothingSubmitted(Tcp.connect({ host: "127.0.0.1", port: bad as number })))
        expect(e).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "port" })
      }
      expect(failureOf(yield* nothingSubmitted(Tcp.connect({ host: "127.0.0.1", port: 65536 + port }))))
        .toMatchObject({ reason: "InvalidArgument", argument: "port" })
      for (const target of [`127.0.0.1:${65536 + port}`, "127.0.0.1:-1", "127.0.0.1:1.5", "127.0.0.1:", "[::1]:999999", "127.0.0.1:0x50"]) {
        const e = failureOf(yield* nothingSubmitted(Tcp.connect(target)))
        expect(e).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "port" })
      }
      // The right port still works.
      const c = yield* Tcp.connect(`127.0.0.1:${port}`)
      yield* c.close
    })))

  it.live("Udp.bind and sendTo: bad ports are SocketErrors naming port", () =>
    withRing(Effect.gen(function*() {
      for (const port of BAD_PORTS) {
        expect(failureOf(yield* nothingSubmitted(Udp.bind({ port: port as number }))))
          .toMatchObject({ _tag: "SocketError", operation: "bind", argument: "port" })
      }
      expect(failureOf(yield* nothingSubmitted(Udp.bind({ queueCapacity: 0 })))).toMatchObject({ argument: "queueCapacity" })
      const s = yield* Udp.bind({ port: 0 })
      for (const port of BAD_PORTS) {
        expect(failureOf(yield* nothingSubmitted(s.sendTo(Buffer.from("x"), { host: "127.0.0.1", port: port as number }))))
          .toMatchObject({ _tag: "SocketError", operation: "sendTo", argument: "port" })
        expect(failureOf(yield* nothingSubmitted(s.sendTo(Buffer.from("x"), Address.udp("127.0.0.1", port as number)))))
          .toMatchObject({ argument: "port" })
      }
    })))
})

describe("item 6: bytes arguments", () => {
  const int32 = new Int32Array(5000).map((_, i) => i * 2654435761)
  const int32Bytes = Buffer.from(int32.buffer, int32.byteOffset, int32.byteLength)

  it.live("send/write/sendv/chain/sink of other ArrayBufferViews send exactly their bytes", () =>
    withRing(Effect.gen(function*() {
      const server = yield* sinkServer
      const c = yield* Tcp.connect(`127.0.0.1:${server.port}`)
      const backing = new Uint8Array(64).map((_, i) => i)
      const dv = new DataView(backing.buffer, 8, 16)
      const f64 = new Float64Array([1.5, -2.25])
      const expected = Buffer.concat([
        int32Bytes,
        Buffer.from(backing.subarray(8, 24)),
        Buffer.from(f64.buffer),
        Buffer.from("buf"),
        Buffer.from(backing.subarray(8, 24)),
        int32Bytes,
        Buffer.from(f64.buffer)
      ])
      yield* c.send(int32 as unknown as Uint8Array) // sent 5,000 of 20,000 bytes before
      yield* c.write(dv as unknown as Uint8Array)
      yield* c.sendv([f64 as unknown as Uint8Array, Buffer.from("buf")])
      yield* c.chain([dv as unknown as Uint8Array, int32 as unknown as Uint8Array])
      yield* Stream.run(Stream.make(f64 as unknown as Uint8Array), c.sink)
      yield* c.send(new Uint8Array(0))
      yield* until(() => server.bytes().length >= expected.length)
      expect(server.bytes().equals(expected)).toBe(true)
    })))

  it.live("anything else dies with a TypeError at the call, nothing queued or sent (a string sent zeros, 42 hung 5 s)", () =>
    withRing(Effect.gen(function*() {
      const server = yield* sinkServer
      const c = yield* Tcp.connect(`127.0.0.1:${server.port}`)
      const bad: ReadonlyArray<unknown> = ["hello", 42, null, undefined, { length: 3 }, [1, 2, 3], new ArrayBuffer(8)]
      const started = Date.now()
      for (const value of bad) {
        const v = value as Uint8Array
        for (const [name, op] of [
          ["send", c.send(v)],
          ["write", c.write(v)],
          ["sendv", c.sendv([Buffer.from("good part first"), v])],
          ["chain", c.chain([Buffer.from("good part first"), v])],
          ["sink", Stream.run(Stream.make(v), c.sink)]
        ] as const) {
          const d = defectOf(yield* nothingSubmitted(op))
          expect(d).toBeInstanceOf(TypeError)
          expect(String((d as Error).message)).toContain(`${name}: `)
          expect(c.queuedBytes).toBe(0)
        }
        expect(() => c.unsafeWrite(v)).toThrow(TypeError)
      }
      expect(defectOf(yield* Effect.exit(c.sendv("abc" as any)))).toBeInstanceOf(TypeError)
      expect(Date.now() - started).toBeLessThan(3000)
      expect(c.bytesSent).toBe(0)
      // The connection is still fine.
      yield* c.send(Buffer.from("ok"))
      yield* until(() => server.bytes().toString() === "ok")
    })))

  it.live("platform Socket writer: an Int32Array is its bytes", () =>
    withRing(Effect.gen(function*() {
      const { port, server } = yield* Effect.promise(() => nodeServer(() => {}))
      const accepted = new Promise<net.Socket>((r) => server.once("connection", r))
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port })
      const fiber = yield* Effect.forkScoped(socket.run(() => {}))
      const peer = yield* Effect.promise(() => accepted)
      const write = yield* socket.writer
      yield* write(int32 as unknown as Uint8Array)
      const got = yield* Effect.promise(() => readN(peer, int32Bytes.length))
      expect(got.equals(int32Bytes)).toBe(true)
      peer.destroy()
      void fiber
    })))

  it.live("Udp sendTo: views send their bytes; non-bytes die before anything is sent", () =>
    withRing(Effect.gen(function*() {
      const s = yield* Udp.bind({ port: 0 })
      const peer = dgram.createSocket("udp4")
      yield* Effect.addFinalizer(() => Effect.sync(() => peer.close()))
      const got: Array<Buffer> = []
      peer.on("message", (m) => got.push(m))
      yield* Effect.async<void>((r) => {
        peer.bind(0, "127.0.0.1", () => r(Effect.void))
      })
      const to = { host: "127.0.0.1", port: peer.address().port }
      const small = new Int32Array([1, 2, 3])
      yield* s.sendTo(small as unknown as Uint8Array, to)
      for (const value of ["hello", 42, null]) {
        expect(defectOf(yield* nothingSubmitted(s.sendTo(value as unknown as Uint8Array, to)))).toBeInstanceOf(TypeError)
      }
      yield* until(() => got.length === 1)
      expect(got[0]!.equals(Buffer.from(small.buffer))).toBe(true)
      expect(s.datagramsSent).toBe(1)
    })))
})

describe("item 6: process stdin bytes", () => {
  it.live("write / the stdin sink: views are their bytes; non-bytes die and leave stdin usable", () =>
    withRing(Effect.gen(function*() {
      const child = yield* Process.spawn("/bin/cat")
      const words = new Int32Array([0x64636261, 0x68676665])
      for (const bad of ["hello", 42, null]) {
        expect(defectOf(yield* Effect.exit(child.write(bad as unknown as Uint8Array)))).toBeInstanceOf(TypeError)
      }
      yield* child.write(words as unknown as Uint8Array)
      yield* child.write(new DataView(new Uint8Array([105, 106, 107]).buffer) as unknown as Uint8Array)
      yield* child.closeStdin
      const out = yield* Stream.runFold(child.stdout, "", (acc, b) => acc + Buffer.from(b).toString())
      expect(out).toBe("abcdefghijk")
    })))
})

describe("item 10: messages that say what is wrong", () => {
  it.live("listen({ host: \"999.1.1.1\" }) says it is not an IP address; connect(\"localhost\") says the port is missing", () =>
    withRing(Effect.gen(function*() {
      const l = failureOf(yield* Effect.exit(Tcp.listen({ host: "999.1.1.1", port: 0 })))
      expect(l).toMatchObject({ _tag: "SocketError", argument: "host" })
      expect(l.message).toContain('"999.1.1.1" is not an IP address')
      const c = failureOf(yield* nothingSubmitted(Tcp.connect("localhost")))
      expect(c).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument", argument: "target" })
      expect(c.message).toContain('"host:port"')
      expect(c.message).toContain("no port")
      const name = failureOf(yield* Effect.exit(Tcp.connect({ host: "no-such-host.invalid", port: 80 })))
      expect(name).toMatchObject({ reason: "NotFound", argument: "host" })
      expect(name.message).toContain("is not an IP address")
    })))

  it.live("Udp sendTo to a host name resolves it (through the Resolver) and arrives; a bad name says so", () =>
    withRing(Effect.gen(function*() {
      const server = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
      const client = yield* Udp.bind({ host: "127.0.0.1", port: 0 })
      yield* client.sendTo(Buffer.from("by name"), { host: "localhost", port: server.address.port })
      const dg = yield* server.recvFrom
      expect(Buffer.from(dg.data).toString()).toBe("by name")
      expect(dg.address).toEqual({ _tag: "UdpAddress", family: 4, host: "127.0.0.1", port: client.address.port })
      const e = failureOf(yield* Effect.exit(client.sendTo(Buffer.from("x"), { host: "not-an-ip.invalid", port: 9 })))
      expect(e).toMatchObject({ _tag: "SocketError", operation: "sendTo", argument: "host" })
      expect(e.message).toContain('"not-an-ip.invalid" is not an IP address')
      // The Resolver service is used when provided (here: one that knows "peer").
      const viaResolver = client.sendTo(Buffer.from("via resolver"), { host: "peer", port: server.address.port }).pipe(
        Effect.provide(Resolver.layer({ lookup: async (h) => h === "peer" ? [{ address: "127.0.0.1", family: 4 }] : [] }))
      )
      yield* viaResolver
      expect(Buffer.from((yield* server.recvFrom).data).toString()).toBe("via resolver")
    })))

  it.live("Udp reads after close fail with SocketClosed (not TCP's ConnectionClosed); addresses are UdpAddress", () =>
    withRing(Effect.gen(function*() {
      const escaped = yield* Effect.scoped(Udp.bind({ port: 0 }))
      expect(escaped.address._tag).toBe("UdpAddress")
      expect(yield* Effect.flip(escaped.recvFrom)).toMatchObject({ _tag: "SocketClosed", operation: "recvFrom" })
      const e = yield* Effect.flip(escaped.sendTo(Buffer.from("x"), { host: "127.0.0.1", port: 9 }))
      expect(e).toMatchObject({ _tag: "SocketClosed", operation: "sendTo" })
      expect(e.message).toContain("closed UDP socket")
    })))
})

describe("options that are no object", () => {
  it.live("Udp.bind, RinglineSocketServer.make, RinglineSocket.makeNet: typed errors naming them (they died with a TypeError of their own)", () =>
    withRing(Effect.gen(function*() {
      for (const bad of [null, 42, "udp"]) {
        const e = failureOf(yield* nothingSubmitted(Effect.scoped(Udp.bind(bad as any))))
        expect(e, String(bad)).toMatchObject({ _tag: "SocketError", argument: "options" })
      }
      for (const bad of [undefined, null, 42]) {
        const e = failureOf(yield* nothingSubmitted(Effect.scoped(RinglineSocketServer.make(bad as any))))
        expect(e, String(bad)).toMatchObject({ _tag: "SocketServerError", reason: "Open" })
        expect(String((e as { cause: unknown }).cause), String(bad)).toMatch(/options must be an object/)
        // The socket opens when run: its open fails with Tcp.connect's ConnectError naming the target.
        const socket = yield* RinglineSocket.makeNet(bad as any)
        const open = failureOf(yield* Effect.exit(socket.runRaw(() => {})))
        expect(open, String(bad)).toMatchObject({ reason: "Open" })
        expect((open as { cause: unknown }).cause, String(bad)).toMatchObject({ _tag: "ConnectError", reason: "InvalidArgument" })
      }
    })))
})

describe("RinglineSocket.fromConnection", () => {
  it("a conn that is no Connection is a TypeError naming it, at the call (it failed only inside run before)", () => {
    for (const bad of [undefined, null, 42, {}, { close: Effect.void }]) {
      expect(() => RinglineSocket.fromConnection(bad as any), String(bad)).toThrow(/fromConnection: conn must be a ringline Connection/)
    }
  })
})

describe("connect options", () => {
  it.live("a timeout that is no duration is a typed error, never a throw from a completion", () =>
    withRing(Effect.gen(function*() {
      const port = yield* closedPort
      for (const timeout of ["soon", { minutes: "x" }]) {
        const e = failureOf(yield* nothingSubmitted(Tcp.connect({ host: "127.0.0.1", port }, { timeout: timeout as unknown as number })))
        expect(e).toMatchObject({ reason: "InvalidArgument", argument: "timeout" })
      }
      // NaN and negative numbers are a zero duration (Effect's Duration rule): an immediate timeout.
      expect(failureOf(yield* Effect.exit(Tcp.connect({ host: "127.0.0.1", port }, { timeout: NaN }))).reason).toMatch(/Timeout|Refused/)
      // Infinity means no timeout.
      const refused = failureOf(yield* Effect.exit(Tcp.connect({ host: "127.0.0.1", port }, { timeout: Infinity })))
      expect(refused.reason).toBe("Refused")
    })))
})

// Keep the Connection import used in type position only.
export type _C = Connection.Connection

describe("RinglineConfig: unknown keys and wrong types", () => {
  it("a misspelt or unknown key is an error naming it (it was ignored before); wrong shapes name their field", () => {
    const unknown = RinglineConfig.make({ maxConnection: 10 } as any)
    expect(Either.isLeft(unknown) && unknown.left.field).toBe("maxConnection")
    const nested = RinglineConfig.make({ recvBuffer: { ringsize: 8 } } as any)
    expect(Either.isLeft(nested) && nested.left.field).toBe("recvBuffer.ringsize")
    const shape = RinglineConfig.make({ sendPool: "big" } as any)
    expect(Either.isLeft(shape) && shape.left.message).toContain("sendPool: must be an object")
    const whole = RinglineConfig.make(null as any)
    expect(Either.isLeft(whole) && whole.left.field).toBe("(config)")
    const wrong = RinglineConfig.make({ tcpNoDelay: "yes" } as any)
    expect(Either.isLeft(wrong) && wrong.left.message).toContain("tcpNoDelay")
  })
})

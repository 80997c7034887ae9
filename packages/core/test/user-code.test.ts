/**
 * Issue 9, item 1: no call into user code can throw into Node. Every place where ringline runs a
 * function of the caller's (read parsers, serve handlers, socket handlers, stream consumers) is
 * fed a throwing or garbage-returning function; the operation fails with a defect naming the bad
 * answer, and the connection and the process stay usable.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Option, type Scope, Stream } from "effect"
import type * as net from "node:net"
import { Connection, type Ringline, RinglineSocket, RinglineSocketServer, Tcp } from "../src/index.js"
import { nodeClient, portOf, readN, withRing } from "./helpers.js"

/** Fails the test if anything reaches Node's uncaughtException while `body` runs. */
const noUncaught = <A, E>(body: Effect.Effect<A, E, Ringline.Ringline | Scope.Scope>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const seen: Array<unknown> = []
      const onError = (e: unknown) => void seen.push(e)
      process.on("uncaughtException", onError)
      return { seen, onError }
    }),
    () => body,
    ({ onError, seen }) =>
      Effect.sync(() => {
        process.off("uncaughtException", onError)
        expect(seen).toEqual([])
      })
  )

const throwingGetter = Object.defineProperty({}, "_tag", {
  get() {
    throw new Error("getter boom")
  }
})
const proxy = new Proxy({}, {
  get() {
    throw new Error("proxy boom")
  }
})

/** Parser answers that are not done/needMore, each with a word its defect must contain. */
const badAnswers: Array<[string, () => unknown, RegExp]> = [
  ["undefined", () => undefined, /undefined/],
  ["null", () => null, /null/],
  ["a number", () => 42, /42/],
  ["a string", () => "Done", /"Done"/],
  ["an object without _tag", () => ({ consumed: 1 }), /object/],
  ["an unknown _tag", () => ({ _tag: "Maybe" }), /"Maybe"/],
  ["done with consumed NaN", () => ({ _tag: "Done", consumed: NaN, value: 1 }), /NaN/],
  ["done with consumed 1.5", () => ({ _tag: "Done", consumed: 1.5, value: 1 }), /1\.5/],
  ["done with consumed -1", () => ({ _tag: "Done", consumed: -1, value: 1 }), /-1/],
  ["done consuming more than given", () => ({ _tag: "Done", consumed: 7, value: 1 }), /consumed 7 of/],
  ["done with consumed as a string", () => ({ _tag: "Done", consumed: "1", value: 1 }), /"1"/],
  ["needMore with atLeast NaN", () => ({ _tag: "NeedMore", atLeast: NaN }), /NaN/],
  ["needMore with atLeast as a string", () => ({ _tag: "NeedMore", atLeast: "9" }), /"9"/],
  ["a throwing _tag getter", () => throwingGetter, /getter boom/],
  ["a throwing Proxy", () => proxy, /proxy boom/],
  ["a thrown error", () => {
    throw new Error("parser boom")
  }, /parser boom/],
  ["a thrown non-error", () => {
    throw 17
  }, /17/]
]

const defectText = (cause: Cause.Cause<unknown>): string =>
  Cause.defects(cause).pipe((d) => [...d].map((e) => (e instanceof Error ? e.message : String(e))).join("; "))

describe("user code never throws into Node (issue 9, item 1)", () => {
  it.live("a read whose parser is no function dies at the call naming it, with nothing buffered (it waited for bytes before)", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      for (const parse of [undefined, null, 42, "parse", {}]) {
        // The peer sends nothing: a read that waits would time out here.
        const exit = yield* Effect.exit(Effect.timeoutFail(c.read(parse as any), { duration: 2000, onTimeout: () => "waited" }))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(parse)).toBe(true)
        if (Exit.isFailure(exit)) expect(defectText(exit.cause)).toMatch(/read: parse must be a function/)
      }
      // The connection is untouched: bytes sent now are read as usual.
      s.write("ok")
      expect(Option.map(yield* c.recv, (b) => Buffer.from(b).toString())).toEqual(Option.some("ok"))
      s.destroy()
    }))))

  it.live("read parsers answering garbage fail that read with a defect naming the answer; the bytes stay", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      s.write("ab")
      // Wait until the two bytes are buffered, without consuming them.
      yield* c.read((b) => (b.length >= 2 ? Connection.done(0, undefined) : Connection.needMore(2)))
      for (const [name, answer, expected] of badAnswers) {
        const exit = yield* Effect.exit(c.read(answer as Connection.Parser<unknown>))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), name).toBe(true)
        if (Exit.isFailure(exit)) expect(defectText(exit.cause), name).toMatch(expected)
        // The connection stays usable and nothing was consumed.
        expect(c.bufferedBytes, name).toBe(2)
      }
      // The same answers on the zero-copy path (the parser runs over a just-received buffer).
      const drained = yield* c.recv
      expect(Option.map(drained, (b) => Buffer.from(b).toString())).toEqual(Option.some("ab"))
      for (const [name, answer, expected] of badAnswers) {
        const pending = yield* Effect.fork(Effect.exit(c.read(answer as Connection.Parser<unknown>)))
        s.write("x")
        const exit = yield* pending.await.pipe(Effect.flatten)
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), name).toBe(true)
        if (Exit.isFailure(exit)) expect(defectText(exit.cause), name).toMatch(expected)
        const x = yield* c.recv
        expect(Option.map(x, (b) => Buffer.from(b).toString()), name).toEqual(Option.some("x"))
      }
      // Echo still works both ways.
      yield* c.send(Buffer.from("still here"))
      expect((yield* Effect.promise(() => readN(s, 10))).toString()).toBe("still here")
      s.destroy()
    }))))

  it.live("a parser answering garbage at end of stream fails that read with a defect", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      s.end()
      const exit = yield* Effect.exit(c.read(() => undefined as any))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      // A well-behaved read after it still sees the end of stream.
      expect(yield* c.recv).toEqual(Option.none())
    }))))

  it.live("serve handlers that throw or return garbage cost their connection only; the server goes on", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      let calls = 0
      yield* Effect.forkScoped(l.serve((conn): Effect.Effect<void, unknown> => {
        calls++
        if (calls === 1) throw new Error("handler boom")
        if (calls === 2) return 42 as any
        if (calls === 3) return undefined as any
        return conn.send(Buffer.from("served"))
      }))
      const closedWithoutData = (s: net.Socket) =>
        new Promise<string>((resolve) => {
          let out = ""
          s.on("data", (d) => (out += d))
          s.on("close", () => resolve(out))
          s.on("error", () => {})
        })
      for (let i = 0; i < 3; i++) {
        const s = yield* Effect.promise(() => nodeClient(portOf(l)))
        expect(yield* Effect.promise(() => closedWithoutData(s))).toBe("")
      }
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      expect((yield* Effect.promise(() => readN(s, 6))).toString()).toBe("served")
      s.destroy()
    }))))

  it.live("RinglineSocketServer and RinglineSocket handlers that throw or return garbage: typed failures, server goes on", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const port = server.address._tag === "TcpAddress" ? server.address.port : 0
      let calls = 0
      let dataHandlerExit: Exit.Exit<void, unknown> | undefined
      yield* Effect.forkScoped(server.run((socket): Effect.Effect<void, unknown> => {
        calls++
        if (calls === 1) throw new Error("socket server handler boom")
        if (calls === 2) return "garbage" as any
        if (calls === 3) {
          // A data handler that throws on the first chunk: run dies with it (a defect, not a crash).
          return Effect.exit(socket.run(() => {
            throw new Error("data handler boom")
          })).pipe(Effect.map((exit) => void (dataHandlerExit = exit)))
        }
        return Effect.scoped(Effect.flatMap(socket.writer, (write) => socket.run((data) => write(data))))
      }))
      const closed = (s: net.Socket) => Effect.async<void>((resume) => void s.on("close", () => resume(Effect.void)).on("error", () => {}))
      for (let i = 0; i < 3; i++) {
        const s = yield* Effect.promise(() => nodeClient(port))
        if (i === 2) s.write("hello")
        yield* closed(s)
      }
      expect(dataHandlerExit !== undefined && Exit.isFailure(dataHandlerExit) && Cause.isDie(dataHandlerExit.cause)).toBe(true)
      const s = yield* Effect.promise(() => nodeClient(port))
      s.write("echo")
      expect((yield* Effect.promise(() => readN(s, 4))).toString()).toBe("echo")
      s.destroy()
    }))))

  it.live("a throwing stream consumer fails its own fiber; the connection keeps its later bytes", () =>
    withRing(noUncaught(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const s = yield* Effect.promise(() => nodeClient(portOf(l)))
      const c = yield* l.accept
      s.write("first")
      const exit = yield* Effect.exit(Stream.runForEach(c.stream, (): Effect.Effect<void> => {
        throw new Error("consumer boom")
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      s.write("second")
      const next = yield* c.recv.pipe(Effect.timeout(Duration.seconds(5)))
      expect(Option.map(next, (b) => Buffer.from(b).toString())).toEqual(Option.some("second"))
      void RinglineSocket
      s.destroy()
    }))))
})

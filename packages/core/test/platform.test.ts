/**
 * The @effect/platform adapters: RinglineSocketServer (a platform SocketServer on the ring) and
 * RinglineSocket (platform Sockets over ringline connections), with real sockets, and a
 * conformance check against @effect/platform-node's NodeSocketServer running the same handlers.
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Effect, Exit, Fiber, Queue, Scope, Stream, Supervisor } from "effect"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RinglineSocket, RinglineSocketServer, RinglineTest, Tcp } from "../src/index.js"
import { closedPort, exchange, nodeClient, nodeServer, random, withRing } from "./helpers.js"

const MiB = 1024 * 1024

/** The handler of the platform docs: echo every chunk through the writer. */
const echoHandler = (socket: Socket.Socket) =>
  Effect.scoped(Effect.gen(function*() {
    const write = yield* socket.writer
    yield* socket.run(write)
  }))

const tcpPort = (server: SocketServer.SocketServer["Type"]): number =>
  server.address._tag === "TcpAddress" ? server.address.port : -1

/** Serves `handler` on `server` until the test's scope closes. */
const serve = <E, R>(
  server: SocketServer.SocketServer["Type"],
  handler: (socket: Socket.Socket) => Effect.Effect<unknown, E, R>
) => Effect.forkScoped(server.run(handler))

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "ringline-platform-"))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A node:net echo server (half-close aware: ends after the client's FIN). */
const nodeEcho = Effect.acquireRelease(
  Effect.promise(() => nodeServer((s) => s.pipe(s))),
  ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))
)

describe("RinglineSocketServer (platform SocketServer on the ring)", () => {
  it.live("echoes 1 MiB exactly to each of 6 node:net clients (writer + run)", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      expect(server.address).toEqual({ _tag: "TcpAddress", hostname: "127.0.0.1", port: tcpPort(server) })
      expect(tcpPort(server)).toBeGreaterThan(0)
      yield* serve(server, echoHandler)
      const payloads = Array.from({ length: 6 }, () => random(MiB))
      const results = yield* Effect.promise(() => Promise.all(payloads.map((p) => exchange(tcpPort(server), p))))
      results.forEach((r, i) => {
        expect(r.length).toBe(MiB)
        expect(r.equals(payloads[i]!)).toBe(true)
      })
    })))

  it.live("as a Layer: SocketServer.SocketServer served from Ringline.layer", () =>
    Effect.gen(function*() {
      const server = yield* SocketServer.SocketServer
      yield* serve(server, echoHandler)
      const back = yield* Effect.promise(() => exchange(tcpPort(server), Buffer.from("through the layer")))
      expect(back.toString()).toBe("through the layer")
    }).pipe(
      Effect.scoped,
      Effect.provide(RinglineSocketServer.layer({ host: "127.0.0.1", port: 0 })),
      (body) => withRing(body)
    ))

  it.live("the handler sees the ringline connection; chunks handed to run are owned copies", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const kept: Array<Uint8Array> = []
      const peers = yield* Queue.unbounded<unknown>()
      yield* serve(server, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          // Provided by the server; serviceOption keeps it out of run's requirements.
          const conn = yield* Effect.serviceOption(RinglineSocket.RinglineConnection)
          if (conn._tag === "Some") yield* Queue.offer(peers, yield* conn.value.peerAddress)
          // Keep every chunk until the end: if they were views of kernel buffers, later
          // receives would overwrite them.
          yield* socket.run((chunk) => {
            kept.push(chunk)
          })
        })))
      const payload = random(256 * 1024)
      // Eight writes apart in time, so that the server receives several chunks.
      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(tcpPort(server), "127.0.0.1", async () => {
            for (let i = 0; i < 8; i++) {
              s.write(payload.subarray(i * 32768, (i + 1) * 32768))
              await new Promise((r) => setTimeout(r, 10))
            }
            s.end()
          })
          s.on("data", () => {})
          s.on("close", () => resolve())
          s.on("error", reject)
        })
      )
      const peer = (yield* Queue.take(peers)) as { _tag: string; host: string }
      expect(peer._tag).toBe("TcpAddress")
      expect(peer.host).toBe("127.0.0.1")
      expect(Buffer.concat(kept).equals(payload)).toBe(true)
      expect(kept.length).toBeGreaterThan(1)
    })))

  it.live("a Unix path: UnixAddress, echo, file removed on close", () =>
    withRing(Effect.gen(function*() {
      const { dir, cleanup } = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const path = join(dir, "platform.sock")
      yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RinglineSocketServer.make({ path })
        expect(server.address).toEqual({ _tag: "UnixAddress", path })
        yield* serve(server, echoHandler)
        const back = yield* Effect.promise(() =>
          new Promise<Buffer>((resolve, reject) => {
            const chunks: Array<Buffer> = []
            const s = net.connect(path, () => s.end("over unix"))
            s.on("data", (d) => chunks.push(d))
            s.on("end", () => resolve(Buffer.concat(chunks)))
            s.on("error", reject)
          })
        )
        expect(back.toString()).toBe("over unix")
      }))
      expect(existsSync(path)).toBe(false)
    })))

  it.live("a port in use fails with SocketServerError (reason Open)", () =>
    withRing(Effect.gen(function*() {
      const first = yield* RinglineSocketServer.make({ port: 0 })
      const err = yield* Effect.flip(RinglineSocketServer.make({ port: tcpPort(first) }))
      expect(err._tag).toBe("SocketServerError")
      expect(err.reason).toBe("Open")
      expect((err.cause as { code?: string }).code).toBe("EADDRINUSE")
    })))

  it.live("interrupting run stops accepting and closes the open connections", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const started = yield* Queue.unbounded<void>()
      const fiber = yield* Effect.fork(server.run((socket) =>
        Effect.zipRight(Queue.offer(started, undefined), socket.run(() => {}))
      ))
      const s = net.connect(tcpPort(server), "127.0.0.1")
      const closed = new Promise<void>((r) => s.on("close", () => r()))
      s.on("error", () => {})
      yield* Queue.take(started)
      yield* Fiber.interrupt(fiber)
      // The client sees its connection end.
      yield* Effect.promise(() => closed)
    })))
})

describe("RinglineSocket.makeNet (platform Socket over an outbound ringline connection)", () => {
  it.live("Socket.toChannel against a node:net echo server: 1 MiB out and back, half-close", () =>
    withRing(Effect.gen(function*() {
      const { port } = yield* nodeEcho
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port }, { timeout: "2 seconds" })
      const payload = random(MiB)
      const pieces = Array.from({ length: 16 }, (_, i) => payload.subarray(i * 65536, (i + 1) * 65536))
      // The input stream's end releases the writer (FIN); the echo server then ends too.
      const back = yield* Stream.fromIterable(pieces).pipe(
        Stream.pipeThroughChannel(Socket.toChannel(socket)),
        Stream.runCollect
      )
      const bytes = Buffer.concat(Chunk.toArray(back))
      expect(bytes.length).toBe(MiB)
      expect(bytes.equals(payload)).toBe(true)
    })))

  it.live("writer + run with onOpen, strings, and a CloseEvent", () =>
    withRing(Effect.gen(function*() {
      const seen = yield* Queue.unbounded<string>()
      const { port } = yield* Effect.acquireRelease(
        Effect.promise(() =>
          nodeServer((s) => {
            s.on("data", (d) => {
              Effect.runSync(Queue.offer(seen, d.toString()))
              s.write(d.toString().toUpperCase())
            })
            s.on("error", () => {})
          })
        ),
        ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))
      )
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port })
      const write = yield* socket.writer
      const got: Array<string> = []
      const exit = yield* socket.run((chunk) =>
        Effect.gen(function*() {
          got.push(Buffer.from(chunk).toString())
          if (got.join("") === "HELLO") yield* write(new Socket.CloseEvent())
        }), { onOpen: Effect.orDie(write("hello")) }).pipe(Effect.exit)
      expect(got.join("")).toBe("HELLO")
      expect(yield* Queue.take(seen)).toBe("hello")
      // As with NodeSocket: closing with code 1000 ends run with a clean SocketCloseError.
      expect(Exit.isFailure(exit)).toBe(true)
      const err = yield* Effect.flip(exit)
      expect(Socket.SocketCloseError.is(err) && err.code).toBe(1000)
    })))

  it.live("layerNet over a Unix path; each run is a new connection", () =>
    withRing(Effect.gen(function*() {
      const { dir, cleanup } = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const path = join(dir, "echo.sock")
      let connections = 0
      const srv = net.createServer((s) => {
        connections++
        s.pipe(s)
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((r) => srv.listen(path, () => r()))),
        () => Effect.promise(() => new Promise<void>((r) => srv.close(() => r())))
      )
      const roundTrip = (text: string) =>
        Effect.flatMap(Socket.Socket, (socket) =>
          Stream.make(text).pipe(
            Stream.pipeThroughChannel(Socket.toChannel(socket)),
            Stream.decodeText(),
            Stream.mkString
          ))
      const results = yield* Effect.all([roundTrip("one"), roundTrip("two")]).pipe(
        Effect.provide(RinglineSocket.layerNet({ path }))
      )
      expect(results).toEqual(["one", "two"])
      expect(connections).toBe(2)
    })))

  it.live("fromConnection: run over a Tcp.connect connection, closed when run ends unless closeWhenDone: false", () =>
    withRing(Effect.gen(function*() {
      const { port } = yield* nodeEcho
      // Kept open: after a run that we stop ourselves the connection still works.
      const kept = yield* Tcp.connect({ host: "127.0.0.1", port })
      const keptSocket = RinglineSocket.fromConnection(kept, { closeWhenDone: false })
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const write = yield* keptSocket.writer
        let got = ""
        yield* keptSocket.run((chunk) => {
          got += Buffer.from(chunk).toString()
        }, { onOpen: Effect.orDie(write("ping")) }).pipe(
          Effect.raceFirst(Effect.gen(function*() {
            while (got !== "ping") yield* Effect.sleep(5)
          }))
        )
        return got
      }))
      expect(first).toBe("ping")
      yield* kept.send(Buffer.from("still open"))
      const again = yield* kept.recv
      expect(again._tag === "Some" && Buffer.from(again.value).toString()).toBe("still open")
      // Default: the connection is closed when run ends (here: the writer's release half-closes,
      // the echo server ends, run completes at end of stream).
      const owned = yield* Tcp.connect({ host: "127.0.0.1", port })
      const ownedSocket = RinglineSocket.fromConnection(owned)
      const echoed = yield* Stream.make("pong").pipe(
        Stream.pipeThroughChannel(Socket.toChannel(ownedSocket)),
        Stream.decodeText(),
        Stream.mkString
      )
      expect(echoed).toBe("pong")
      const closed = yield* Effect.flip(owned.send(Buffer.from("x")))
      expect(closed._tag).toBe("ConnectionClosed")
    })))

  it.live("a refused connect fails run with SocketGenericError (reason Open, cause ConnectError)", () =>
    withRing(Effect.gen(function*() {
      const port = yield* closedPort
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port })
      const err = yield* Effect.flip(socket.run(() => {}))
      expect(err._tag).toBe("SocketError")
      expect(err.reason).toBe("Open")
      expect((err as Socket.SocketGenericError).cause).toMatchObject({ _tag: "ConnectError", reason: "Refused" })
    })))

  it.live("writes wait for run; after the writer's release (FIN) a write fails with reason Write", () =>
    withRing(Effect.gen(function*() {
      const seen = yield* Queue.unbounded<string>()
      const { port } = yield* Effect.acquireRelease(
        Effect.promise(() =>
          nodeServer((s) => {
            const chunks: Array<Buffer> = []
            s.on("data", (d) => chunks.push(d))
            // After the client's FIN: report what came, answer, and end.
            s.on("end", () => {
              Effect.runSync(Queue.offer(seen, Buffer.concat(chunks).toString()))
              s.end("bye")
            })
          })
        ),
        ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))
      )
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port })
      const write = yield* socket.writer
      const halfScope = yield* Scope.make()
      const halfWriter = yield* Scope.extend(socket.writer, halfScope)
      // Waits behind the latch until run has opened the connection.
      const early = yield* Effect.fork(write("first"))
      const got: Array<string> = []
      const running = yield* Effect.fork(socket.run((chunk) => {
        got.push(Buffer.from(chunk).toString())
      }))
      yield* Fiber.join(early)
      yield* halfWriter("second")
      yield* Scope.close(halfScope, Exit.void) // half-close: FIN after "first" + "second"
      const late = yield* Effect.flip(write("too late"))
      expect(late.reason).toBe("Write")
      expect(yield* Queue.take(seen)).toBe("firstsecond")
      // The server's answer arrives and its FIN ends run cleanly.
      expect(Exit.isSuccess(yield* Fiber.await(running))).toBe(true)
      expect(got.join("")).toBe("bye")
    })))
})

describe("run without a fiber per chunk (pushed reads, writes queued by run itself)", () => {
  it.live("a handler mixing write(chunk) with other effects keeps the stream in order", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      yield* serve(server, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          let n = 0
          // Every other chunk goes through an effect run cannot recognise (it is forked).
          yield* socket.run((chunk) => n++ % 2 === 0 ? write(chunk) : Effect.zipRight(Effect.void, write(chunk)))
        })))
      const payload = random(2 * MiB)
      const back = yield* Effect.promise(() => exchange(tcpPort(server), payload))
      let i = 0
      while (i < back.length && back[i] === payload[i]) i++
      expect({ length: back.length, firstDifference: i }).toEqual({ length: payload.length, firstDifference: payload.length })
    })))

  // cc1808f: delivering at each completion handed the handler one copy per receive buffer (a
  // fresh ArrayBuffer each; bulk on one connection ran at a third of the speed). The in-memory
  // wire completes every 16 KiB receive of what the peer wrote in one go, so the batch is exact.
  it.effect("the receives of one completion batch reach the handler as one chunk", () =>
    Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ host: "127.0.0.1", port: 7000 })
      const chunks = yield* Queue.unbounded<number>()
      yield* serve(server, (socket) => socket.run((chunk) => Queue.offer(chunks, chunk.length)))
      const peer = yield* RinglineTest.connect({ host: "127.0.0.1", port: tcpPort(server) })
      yield* peer.write(random(64 * 1024))
      expect(yield* Queue.take(chunks)).toBe(64 * 1024)
      yield* peer.write(random(48 * 1024))
      expect(yield* Queue.take(chunks)).toBe(48 * 1024)
      expect(yield* Queue.size(chunks)).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(RinglineTest.layer({ config: { recvBuffer: { bufferSize: 16384 } } }))
    ))

  it.live("a handler that throws ends run with that defect; the connection is closed", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const exits = yield* Queue.unbounded<Exit.Exit<void, unknown>>()
      yield* serve(server, (socket) =>
        Effect.flatMap(Effect.exit(socket.run(() => {
          throw new Error("sync boom")
        })), (exit) => Queue.offer(exits, exit)))
      const back = yield* Effect.promise(() => exchange(tcpPort(server), Buffer.from("hello")))
      expect(back.length).toBe(0)
      const exit = yield* Queue.take(exits)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(String(Cause.squash((exit as Exit.Failure<void, unknown>).cause))).toContain("sync boom")
    })))

  it.live("a forked effect's failure ends run at once; the effects still running are interrupted", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const exits = yield* Queue.unbounded<Exit.Exit<void, unknown>>()
      const firstRunning = yield* Deferred.make<void>()
      const firstInterrupted = yield* Deferred.make<void>()
      yield* serve(server, (socket) =>
        Effect.flatMap(Effect.exit(socket.run((chunk) =>
          chunk[0] === 1
            // Forked and never ending on its own.
            ? Effect.zipRight(Deferred.succeed(firstRunning, undefined), Effect.never).pipe(
              Effect.onInterrupt(() => Deferred.succeed(firstInterrupted, undefined))
            )
            : Effect.fail("bad chunk")
        )), (exit) => Queue.offer(exits, exit)))
      const s = yield* Effect.promise(() => nodeClient(tcpPort(server)))
      const closed = new Promise<void>((r) => s.on("close", () => r()))
      s.on("error", () => {})
      s.write(Buffer.from([1]))
      yield* Deferred.await(firstRunning)
      s.write(Buffer.from([2]))
      const exit = yield* Queue.take(exits)
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBe("bad chunk")
      yield* Deferred.await(firstInterrupted)
      // run's end closes the connection.
      yield* Effect.promise(() => closed)
    })))

  it.live("an idle connection costs its handler's fiber only: no fiber reading, none per chunk", () =>
    withRing(Effect.gen(function*() {
      const server = yield* RinglineSocketServer.make({ port: 0 })
      const supervisor = yield* Supervisor.track
      yield* Effect.forkScoped(Effect.supervised(server.run(echoHandler), supervisor))
      // The accept loop is running and waiting.
      yield* Effect.sleep("50 millis")
      const before = (yield* supervisor.value).length
      const clients: Array<net.Socket> = []
      for (let i = 0; i < 5; i++) {
        const s = yield* Effect.promise(() => nodeClient(tcpPort(server)))
        s.on("error", () => {})
        clients.push(s)
        // Proven with a 1-byte echo, then idle.
        yield* Effect.promise(() => new Promise<void>((r) => {
          s.once("data", () => r())
          s.write(Buffer.from([i]))
        }))
      }
      const after = (yield* supervisor.value).length
      for (const s of clients) s.destroy()
      expect(after - before).toBe(5)
    })))

  it.live("write(chunk) returned to run after the writer's release fails run with reason Write", () =>
    withRing(Effect.gen(function*() {
      const { port } = yield* Effect.acquireRelease(
        Effect.promise(() =>
          nodeServer((s) => {
            // Answers only after the client's FIN, so the answer reaches a half-closed writer.
            s.on("data", () => {})
            s.on("end", () => s.end("late"))
          })
        ),
        ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))
      )
      const socket = yield* RinglineSocket.makeNet({ host: "127.0.0.1", port })
      const halfScope = yield* Scope.make()
      const write = yield* Scope.extend(socket.writer, halfScope)
      const opened = yield* Queue.unbounded<void>()
      const running = yield* Effect.fork(socket.run(write, { onOpen: Queue.offer(opened, undefined) }))
      yield* Queue.take(opened)
      yield* Scope.close(halfScope, Exit.void)
      const err = yield* Effect.flip(Fiber.join(running))
      expect(err._tag).toBe("SocketError")
      expect(err.reason).toBe("Write")
    })))
})

// ---- conformance ------------------------------------------------------------------------------

type ServerKind = "node" | "ringline"

const makeServer = (kind: ServerKind) =>
  kind === "node"
    ? NodeSocketServer.make({ host: "127.0.0.1", port: 0 })
    : RinglineSocketServer.make({ host: "127.0.0.1", port: 0 })

/** How a handler's `run` ended, in comparable form. */
const describeExit = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const err = Cause.squash(exit.cause)
  if (Socket.isSocketError(err)) {
    return err.reason === "Close" ? `SocketError:Close:${(err as Socket.SocketCloseError).code}` : `SocketError:${err.reason}`
  }
  return `other:${String(err)}`
}

/** node:net client: sends `parts`, then FIN (or RST), and collects everything until the socket closes. */
const talk = (port: number, parts: ReadonlyArray<string>, options: { reset?: boolean } = {}) =>
  new Promise<{ received: string; ended: "end" | "close" | "error" }>((resolve) => {
    const chunks: Array<Buffer> = []
    const s = net.connect(port, "127.0.0.1", () => {
      for (const p of parts) s.write(p)
      if (options.reset) setTimeout(() => s.resetAndDestroy(), 50)
      else s.end()
    })
    let ended: "end" | "close" | "error" | undefined
    s.on("data", (d) => chunks.push(d))
    s.on("end", () => (ended ??= "end"))
    s.on("error", () => (ended ??= "error"))
    s.on("close", () => resolve({ received: Buffer.concat(chunks).toString(), ended: ended ?? "close" }))
  })

interface Scenario {
  readonly name: string
  readonly handler: (report: (line: string) => Effect.Effect<void>) => (socket: Socket.Socket) => Effect.Effect<unknown, unknown>
  readonly client: (port: number) => Promise<{ received: string; ended: string }>
  /** Connections the client makes (each handler reports once per connection). */
  readonly connections?: number
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "line protocol: uppercase each line, count on end of stream",
    handler: (report) => (socket) =>
      Effect.scoped(Effect.gen(function*() {
        const write = yield* socket.writer
        let buffered = ""
        let lines = 0
        const exit = yield* socket.run((chunk) =>
          Effect.gen(function*() {
            buffered += new TextDecoder().decode(chunk)
            let nl: number
            while ((nl = buffered.indexOf("\n")) >= 0) {
              const line = buffered.slice(0, nl)
              buffered = buffered.slice(nl + 1)
              lines++
              yield* write(line.toUpperCase() + "\n")
            }
          })
        ).pipe(Effect.exit)
        yield* report(`run: ${describeExit(exit)}, lines: ${lines}`)
      })),
    client: (port) => talk(port, ["alpha\nbe", "ta\ngamma\n", "delta\n"])
  },
  {
    name: "greeting written from onOpen, then a CloseEvent from the handler",
    handler: (report) => (socket) =>
      Effect.scoped(Effect.gen(function*() {
        const write = yield* socket.writer
        const exit = yield* socket.run(
          (chunk) => Effect.zipRight(write(chunk), write(new Socket.CloseEvent())),
          { onOpen: Effect.orDie(write("welcome\n")) }
        ).pipe(Effect.exit)
        yield* report(`run: ${describeExit(exit)}`)
      })),
    client: (port) =>
      new Promise((resolve) => {
        const chunks: Array<Buffer> = []
        const s = net.connect(port, "127.0.0.1")
        s.once("data", () => s.write("ping\n"))
        s.on("data", (d) => chunks.push(d))
        s.on("error", () => {})
        s.on("close", () => resolve({ received: Buffer.concat(chunks).toString(), ended: "close" }))
      })
  },
  {
    name: "CloseEvent with an error code",
    handler: (report) => (socket) =>
      Effect.scoped(Effect.gen(function*() {
        const write = yield* socket.writer
        const exit = yield* socket.run(() => write(new Socket.CloseEvent(4000, "bad request"))).pipe(Effect.exit)
        yield* report(`run: ${describeExit(exit)}`)
      })),
    client: (port) => talk(port, ["nonsense"])
  },
  {
    name: "the client resets the connection",
    handler: (report) => (socket) =>
      Effect.gen(function*() {
        const exit = yield* socket.run(() => {}).pipe(Effect.exit)
        yield* report(`run: ${describeExit(exit)}`)
      }),
    client: (port) => talk(port, ["abc"], { reset: true })
  },
  {
    name: "a failing handler is reported and the server keeps serving",
    handler: (report) => (socket) =>
      Effect.scoped(Effect.gen(function*() {
        const write = yield* socket.writer
        yield* socket.run((chunk): Effect.Effect<void, Socket.SocketError | "boom"> =>
          new TextDecoder().decode(chunk).startsWith("boom") ? Effect.fail("boom" as const) : write(chunk)
        ).pipe(Effect.tapError((e) => report(`run failed: ${String(e)}`)))
        yield* report("run ended")
      })),
    client: async (port) => {
      const first = await talk(port, ["boom"])
      const second = await talk(port, ["fine"])
      return { received: `${first.received}|${second.received}`, ended: `${first.ended}|${second.ended}` }
    },
    connections: 2
  },
  {
    name: "the server writes after the client's half-close is seen (run ended): writes wait",
    handler: (report) => (socket) =>
      Effect.scoped(Effect.gen(function*() {
        const write = yield* socket.writer
        yield* socket.run(write)
        // run has ended: like NodeSocket, the writer waits for the next run (here: never).
        const late = yield* write("late").pipe(Effect.timeoutOption("100 millis"))
        yield* report(`late write: ${late._tag}`)
      })),
    client: (port) => talk(port, ["x"])
  }
]

describe("conformance with @effect/platform-node's NodeSocketServer", () => {
  for (const scenario of scenarios) {
    it.live(scenario.name, () =>
      withRing(Effect.gen(function*() {
        const outcomes: Record<string, unknown> = {}
        for (const kind of ["node", "ringline"] as const) {
          outcomes[kind] = yield* Effect.scoped(Effect.gen(function*() {
            const reports = yield* Queue.unbounded<string>()
            const server = yield* makeServer(kind)
            yield* serve(server, scenario.handler((line) => Queue.offer(reports, line)))
            const client = yield* Effect.promise(() => scenario.client(tcpPort(server)))
            const lines: Array<string> = []
            for (let i = 0; i < (scenario.connections ?? 1); i++) lines.push(yield* Queue.take(reports))
            return { client, lines }
          }))
        }
        if (process.env.SHOW_TRANSCRIPTS) console.log(scenario.name, JSON.stringify(outcomes))
        expect(outcomes.ringline).toEqual(outcomes.node)
      })))
  }

  it.live("expected transcripts (so that agreeing on nonsense would fail)", () =>
    withRing(Effect.gen(function*() {
      const server = yield* makeServer("ringline")
      const reports = yield* Queue.unbounded<string>()
      yield* serve(server, scenarios[0]!.handler((line) => Queue.offer(reports, line)))
      const client = yield* Effect.promise(() => scenarios[0]!.client(tcpPort(server)))
      expect(client).toEqual({ received: "ALPHA\nBETA\nGAMMA\nDELTA\n", ended: "end" })
      expect(yield* Queue.take(reports)).toBe("run: success, lines: 4")
    })))
})

import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as net from "node:net"
import { RinglineMetrics, RinglineWorkers } from "../src/index.js"
import { closedPort, exchange, fdCount, random, readN } from "./helpers.js"

const echoModule = new URL("./fixtures/workers-echo.mjs", import.meta.url)
const crashModule = new URL("./fixtures/workers-crash.mjs", import.meta.url)
const whoamiModule = new URL("./fixtures/workers-whoami.mjs", import.meta.url)
const layerModule = new URL("./fixtures/workers-layer.mjs", import.meta.url)
const channelModule = new URL("./fixtures/workers-channel.mjs", import.meta.url)
const undeliveredModule = new URL("./fixtures/workers-undelivered.mjs", import.meta.url)
const heapModule = new URL("./fixtures/workers-heap.mjs", import.meta.url)
const bin = new URL("../dist/bin/echo.js", import.meta.url).pathname

const portOf = (a: { _tag: string; port?: number }) => (a._tag === "TcpAddress" ? a.port! : -1)
const cpusAllowed = (tid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, "utf8"))![1]

/** `n` clients at once, each echoing `bytes` random bytes; resolves to how many got them all back. */
const flood = async (port: number, n: number, bytes: number) => {
  const results = await Promise.all(Array.from({ length: n }, async () => {
    const payload = random(bytes)
    const back = await exchange(port, payload)
    return back.equals(payload)
  }))
  return results.filter(Boolean).length
}

describe("RinglineWorkers", () => {
  it.effect("rejects bad options with an error naming the field", () =>
    Effect.gen(function*() {
      const field = (o: any) => Effect.map(Effect.flip(Effect.scoped(RinglineWorkers.launch(o))), (e: any) => `${e._tag}:${e.field}`)
      expect(yield* field({ module: "relative.mjs" })).toBe("RinglineConfigError:module")
      expect(yield* field({ module: "/nonexistent/x.mjs" })).toBe("RinglineConfigError:module")
      expect(yield* field({ module: echoModule, workers: 0 })).toBe("RinglineConfigError:workers")
      expect(yield* field({ module: echoModule, workers: 1.5 })).toBe("RinglineConfigError:workers")
      expect(yield* field({ module: echoModule, mode: "fork" })).toBe("RinglineConfigError:mode")
      expect(yield* field({ module: echoModule, port: 70000 })).toBe("RinglineConfigError:port")
      expect(yield* field({ module: echoModule, host: "localhost" })).toBe("RinglineConfigError:host")
      expect(yield* field({ module: echoModule, maxRestarts: -1 })).toBe("RinglineConfigError:maxRestarts")
      expect(yield* field({ module: echoModule, mailboxBytes: 5000 })).toBe("RinglineConfigError:mailboxBytes")
      expect(yield* field({ module: echoModule, balance: "random" })).toBe("RinglineConfigError:balance")
      expect(yield* field({ module: echoModule, config: { sqEntries: 3 } })).toBe("RinglineConfigError:config.sqEntries")
      expect(yield* field({ module: echoModule, youngGenerationMb: 0 })).toBe("RinglineConfigError:youngGenerationMb")
      expect(yield* field({ module: echoModule, youngGenerationMb: 2.5 })).toBe("RinglineConfigError:youngGenerationMb")
      expect(yield* field({ module: echoModule, youngGenerationMb: "12" })).toBe("RinglineConfigError:youngGenerationMb")
      const e: any = yield* Effect.flip(Effect.scoped(RinglineWorkers.launch({ module: echoModule, workers: 0 })))
      expect(e.message).toMatch(/workers: must be an integer between 1 and 1024 \(got 0\)/)
    }))

  for (const [mode, chunks] of [["reusePort", false], ["acceptor", false], ["reusePort", true], ["acceptor", true]] as const) {
    const how = chunks ? " (serveChunks)" : ""
    it.live(`${mode}${how}: connections land on every worker, nothing is lost, every worker is back to no connection`, () =>
      Effect.gen(function*() {
        const fds = fdCount()
        yield* Effect.scoped(Effect.gen(function*() {
          const set = yield* RinglineWorkers.launch({ module: echoModule, workers: 2, mode, pin: false, data: { chunks } })
          const port = portOf(yield* set.address)
          // A flood of connections at once (acceptor mode must hand every one over).
          expect(yield* Effect.promise(() => flood(port, 200, 3000))).toBe(200)
          // A client has its whole echo and the worker's FIN before the worker has closed its end
          // and counted it: on a loaded machine the last closes are still under way (16 of 200
          // were, once, at load 4). Wait up to 10 s for them, then check.
          const idle = mode === "reusePort" ? 1 : 0
          let s = yield* set.stats
          for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
            if (s.workers.every((w) => w.stats.connections === 0 && w.stats.inFlight === idle)) break
            yield* Effect.sleep(20)
            s = yield* set.stats
          }
          expect(s.workers.map((w) => w.id)).toEqual([0, 1])
          for (const w of s.workers) {
            expect(w.stats.accepted).toBeGreaterThan(0)
            // Every connection closed, every op but the listener's accept finished.
            expect(w.stats.connections).toBe(0)
            expect(w.stats.inFlight).toBe(idle)
            expect(w.stats.mode).toBe("defer-taskrun")
          }
          expect(s.total.accepted).toBe(200)
          if (mode === "acceptor") {
            expect(s.acceptor).toEqual({ accepted: 200, handed: [s.workers[0]!.stats.accepted, s.workers[1]!.stats.accepted], lost: 0 })
          }
          // Metrics: the sum untagged, each worker tagged (counters add up over earlier tests' sets).
          const metric = Metric.tagged(RinglineMetrics.connectionsAccepted, "worker", "0")
          const before = (yield* Metric.value(metric)).count
          const totalBefore = (yield* Metric.value(RinglineMetrics.connectionsAccepted)).count
          yield* set.updateMetrics
          expect((yield* Metric.value(metric)).count - before).toBe(s.workers[0]!.stats.accepted)
          expect((yield* Metric.value(RinglineMetrics.connectionsAccepted)).count - totalBefore).toBe(200)
        }))
        // The workers' rings, sockets and threads are gone.
        expect(fdCount()).toBe(fds)
      }), { timeout: 120_000 })
  }

  it.live("acceptor mode hands each connection to the worker with the fewest open ones", () =>
    Effect.scoped(Effect.gen(function*() {
      const set = yield* RinglineWorkers.launch({ module: whoamiModule, workers: 2, pin: false, mode: "acceptor" })
      const port = portOf(yield* set.address)
      const open = () =>
        Effect.promise(async () => {
          const s = await connect(port)
          const id = (await readN(s, 1))[0]!
          return { s, id }
        })
      const first = yield* Effect.forEach([1, 2, 3, 4], open)
      expect(first.map((c) => c.id).sort()).toEqual([0, 0, 1, 1])
      // Close worker 0's two: it then has none open, worker 1 two.
      for (const c of first.filter((c) => c.id === 0)) c.s.destroy()
      while ((yield* set.stats).workers[0]!.stats.connections !== 0) yield* Effect.sleep(20)
      const next = yield* Effect.forEach([1, 2], open)
      expect(next.map((c) => c.id)).toEqual([0, 0])
      for (const c of [...first, ...next]) c.s.destroy()
    })), { timeout: 120_000 })

  it.live("youngGenerationMb bounds each worker's young generation (V8's new_space after survivor-heavy allocation)", () =>
    Effect.gen(function*() {
      // Each worker allocates until V8 has grown new space as far as its limit lets it, then
      // answers a connection with its new_space size: both semi-spaces, each the power of two at
      // or above a third of the limit (12 -> 4 MiB each). Unset, the same program grows past it.
      const newSpace = (youngGenerationMb: number | undefined) =>
        Effect.scoped(Effect.gen(function*() {
          const set = yield* RinglineWorkers.launch({
            module: heapModule, workers: 1, pin: false, ...(youngGenerationMb === undefined ? {} : { youngGenerationMb })
          })
          const port = portOf(yield* set.address)
          return JSON.parse((yield* Effect.promise(() => exchange(port, new Uint8Array(0)))).toString()) as {
            newSpace: number
            resourceLimits: { maxYoungGenerationSizeMb: number }
          }
        }))
      const MiB = 1024 * 1024
      const limited = yield* newSpace(12)
      expect(limited.resourceLimits.maxYoungGenerationSizeMb).toBe(12)
      expect(limited.newSpace).toBe(8 * MiB)
      const four = yield* newSpace(4)
      expect(four.newSpace).toBe(4 * MiB)
      const unset = yield* newSpace(undefined)
      expect(unset.newSpace).toBeGreaterThan(8 * MiB)
    }), { timeout: 120_000 })

  it.live("a Layer-based server on a fixed port reports listening; connections reach both workers", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* closedPort
      const set = yield* RinglineWorkers.launch({ module: layerModule, workers: 2, pin: false, port })
      expect(portOf(yield* set.address)).toBe(port)
      expect(yield* Effect.promise(() => flood(port, 100, 1000))).toBe(100)
      const s = yield* set.stats
      for (const w of s.workers) expect(w.stats.accepted).toBeGreaterThan(0)
    })), { timeout: 120_000 })

  it.live("pins worker i to CPU i (Cpus_allowed_list of its thread); the main thread keeps every CPU", () =>
    Effect.scoped(Effect.gen(function*() {
      const set = yield* RinglineWorkers.launch({ module: echoModule, workers: 2 })
      const workers = yield* set.workers
      expect(workers.map((w) => w.cpus)).toEqual([[0], [1]])
      for (const w of workers) expect(cpusAllowed(w.tid)).toBe(String(w.id))
      expect(cpusAllowed(process.pid)).toBe("0-1")
    })), { timeout: 120_000 })

  for (
    const [how, mode, chunks] of [
      ["throw", "reusePort", false],
      ["fail", "reusePort", false],
      ["exit", "reusePort", false],
      ["exit", "acceptor", false],
      ["fail", "reusePort", true],
      ["exit", "acceptor", true]
    ] as const
  ) {
    it.live(`${mode}${chunks ? " (serveChunks)" : ""}: a worker that dies (${how}) is reported with its cause, restarted up to maxRestarts, then the set goes down`, () =>
      Effect.scoped(Effect.gen(function*() {
        const set = yield* RinglineWorkers.launch({
          module: crashModule, workers: 2, pin: false, maxRestarts: 1, awaitListening: false, mode, data: { victim: 1, how, chunks }
        })
        const failed = yield* Effect.flip(set.join)
        expect(failed._tag).toBe("WorkerFailed")
        expect(failed.worker).toBe(1)
        expect(failed.restarts).toBe(1)
        const expected = how === "throw" ? /boom from worker 1/ : how === "fail" ? /program of worker 1 failed/ : /exited with code 7/
        expect(failed.cause).toMatch(expected)
        const deaths = yield* set.deaths
        expect(deaths.map((d) => [d.worker, d.restarted])).toEqual([[1, true], [1, false]])
        // Worker 0 still serves until the scope closes (in acceptor mode nothing goes to the dead one).
        const port = portOf(yield* set.address)
        expect((yield* Effect.promise(() => exchange(port, Buffer.from("still here")))).toString()).toBe("still here")
      })), { timeout: 120_000 })
  }

  it.live("worker channel: notifications (64-bit) and mailbox bodies arrive in order, with the main thread blocked; typed errors; an interrupted receive takes nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const results = new Int32Array(new SharedArrayBuffer(32))
      const rounds = 300
      const set = yield* RinglineWorkers.launch({
        module: channelModule, workers: 2, pin: false, awaitListening: false, mailboxBytes: 16384,
        data: { results: results.buffer, rounds, mailboxBytes: 16384 }
      })
      // Once both programs were told to start, block this thread's event loop for the whole
      // exchange: the messages cannot be relayed through it.
      while ((yield* set.workers).some((w) => w.tid === -1)) yield* Effect.sleep(20)
      yield* Effect.sleep(20)
      const blocked = Date.now()
      expect(Atomics.wait(results, 2, 0, 60_000)).not.toBe("timed-out")
      expect(Atomics.wait(results, 5, 0, 60_000)).not.toBe("timed-out")
      expect(Date.now() - blocked).toBeGreaterThan(0)
      expect(Array.from(results.subarray(0, 7))).toEqual([rounds, rounds, 1, 2, 1, 1, 1])
    })), { timeout: 120_000 })

  it.live("worker channel: a delivery the kernel refuses (EBADF) fails the next notify/send to that worker, typed, then calls go through again", () =>
    Effect.scoped(Effect.gen(function*() {
      const results = new Int32Array(new SharedArrayBuffer(32))
      const set = yield* RinglineWorkers.launch({
        module: undeliveredModule, workers: 2, pin: false, awaitListening: false, data: { results: results.buffer, scenario: "injected" }
      })
      while (Atomics.load(results, 0) === 0) yield* Effect.sleep(20)
      yield* Effect.sleep(50)
      // [done, notify failure reported next, then a notify went through, send failure reported
      // next, worker 1's first payload (3: 1 was refused, 2 was never sent), messages it got]
      expect(Array.from(results.subarray(0, 6))).toEqual([1, 1, 1, 1, 3, 1])
      expect(results[7]).toBe(2)
      const stats = yield* set.stats
      expect(stats.workers.find((w) => w.id === 0)?.errors.EBADF).toBe(2)
    })), { timeout: 120_000 })

  it.live("worker channel: notify to a worker that died fails with WorkerGone", () =>
    Effect.scoped(Effect.gen(function*() {
      const results = new Int32Array(new SharedArrayBuffer(32))
      const set = yield* RinglineWorkers.launch({
        module: undeliveredModule, workers: 2, pin: false, awaitListening: false, maxRestarts: 0, data: { results: results.buffer, scenario: "dead" }
      })
      const failed = yield* Effect.flip(set.join)
      expect(failed.worker).toBe(1)
      while (Atomics.load(results, 0) === 0) yield* Effect.sleep(20)
      expect(results[6]).toBe(1)
    })), { timeout: 120_000 })
})

// ---- the demo with workers, as a child process ----------------------------------------------

const start = (args: Array<string>, env: Record<string, string> = {}) =>
  new Promise<{ child: ReturnType<typeof spawn>; port: number; exited: Promise<number | null>; stderr: () => string }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    let out = ""
    let err = ""
    child.stderr!.on("data", (d) => (err += d))
    child.stdout!.on("data", (d) => {
      out += d
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
      if (m) resolve({ child, port: Number(m[1]), exited, stderr: () => err })
    })
    child.on("exit", (code) => reject(new Error(`echo exited early with ${code}: ${err}`)))
  })

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s))
    s.once("error", reject)
  })

describe("pnpm run echo --workers", () => {
  for (const extra of [[], ["--acceptor"], ["--mode", "chunks"], ["--mode", "chunks", "--acceptor"]]) {
    it(`--workers 2 ${extra.join(" ")}: SIGTERM mid-transfer drains every worker, no client loses a byte, exit 0`, async () => {
      // A grace period far beyond the transfers' length even on a loaded machine: a transfer
      // still running when it ends is cut off, which is the rule, not a lost byte.
      const { child, port, exited, stderr } = await start(["--workers", "2", ...extra], { RINGLINE_SHUTDOWN_TIMEOUT: "60 seconds" })
      const transfer = async () => {
        const s = await connect(port)
        const payload = random(512 * 1024)
        const chunks: Array<Buffer> = []
        s.on("data", (d) => chunks.push(d))
        const ended = new Promise<void>((r) => s.on("end", r))
        for (let off = 0; off < payload.length; off += 32 * 1024) {
          s.write(payload.subarray(off, off + 32 * 1024))
          await new Promise((r) => setTimeout(r, 10))
        }
        s.end()
        await ended
        return Buffer.concat(chunks).equals(payload)
      }
      // 16 connections: SO_REUSEPORT hashing leaves a worker without any with odds 2^-15.
      const transfers = Array.from({ length: 16 }, transfer)
      await new Promise((r) => setTimeout(r, 150))
      child.kill("SIGTERM")
      expect(await Promise.all(transfers)).toEqual(Array(16).fill(true))
      expect(await exited).toBe(0)
      // The shutdown summary: one line per worker, and both took connections.
      const lines = stderr().split("\n").filter((l) => l.startsWith("ringline worker "))
      expect(lines.length).toBe(2)
      for (const l of lines) expect(Number(/accepted=(\d+)/.exec(l)![1])).toBeGreaterThan(0)
      const closed = lines.map((l) => Number(/closed=(\d+)/.exec(l)![1]))
      expect(closed.every((c) => c >= 0)).toBe(true)
      if (extra.includes("--acceptor")) expect(stderr()).toMatch(/ringline acceptor: accepted=16 handed=\d+\/\d+ lost=0/)
    }, 120_000)
  }

  it("--workers 2: a second signal exits at once (130) while workers wait out the grace period", async () => {
    const { child, port, exited } = await start(["--workers", "2"], { RINGLINE_SHUTDOWN_TIMEOUT: "30 seconds" })
    // Clients that send but never read: their echoes back up, so their handlers stay busy (an idle
    // handler would be ended at once by the graceful shutdown) and the workers wait out the grace period.
    const idle = await Promise.all([connect(port), connect(port), connect(port), connect(port)])
    idle.forEach((s) => {
      s.on("error", () => {})
      s.write(Buffer.alloc(16 * 1024 * 1024, 7))
    })
    await new Promise((r) => setTimeout(r, 300))
    const t0 = Date.now()
    child.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 500))
    child.kill("SIGTERM")
    expect(await exited).toBe(130)
    expect(Date.now() - t0).toBeLessThan(10_000)
    idle.forEach((s) => s.destroy())
  }, 60_000)

  it("--workers 1 is the single-thread server (no worker summary)", async () => {
    const { child, port, exited, stderr } = await start(["--workers", "1"])
    const s = await connect(port)
    const msg = random(10_000)
    s.write(msg)
    expect((await readN(s, msg.length)).equals(msg)).toBe(true)
    s.destroy()
    child.kill("SIGINT")
    expect(await exited).toBe(0)
    expect(stderr()).toMatch(/^ringline: accepted=1 /m)
    expect(stderr()).not.toMatch(/ringline worker/)
  }, 60_000)

  const twoCpus = (readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1] ?? "") === "0-1"
  if (!twoCpus) console.log("SKIP --no-pin test: it compares pinned and unpinned workers on a process allowed CPUs 0-1 exactly")
  it.skipIf(!twoCpus)("prints its workers' thread ids; pinned to CPU 0 and 1, or left to the scheduler with --no-pin", async () => {
    for (const [extra, want] of [[[], ["0", "1"]], [["--no-pin"], ["0-1", "0-1"]]] as const) {
      const { child, exited, stderr } = await start(["--workers", "2", ...extra])
      while (!/thread ids [\d,]+\n/.test(stderr())) await new Promise((r) => setTimeout(r, 20))
      const tids = /thread ids ([\d,]+)\n/.exec(stderr())![1]!.split(",")
      const allowed = tids.map((tid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${child.pid}/task/${tid}/status`, "utf8"))![1])
      expect(allowed).toEqual(want)
      child.kill("SIGTERM")
      expect(await exited).toBe(0)
    }
  }, 60_000)

  it("rejects --workers 0", async () => {
    const child = spawn(process.execPath, [bin, "--workers", "0"], { stdio: ["ignore", "pipe", "pipe"] })
    let err = ""
    child.stderr!.on("data", (d) => (err += d))
    expect(await new Promise((r) => child.on("exit", r))).toBe(2)
    expect(err).toMatch(/--workers must be an integer/)
  })
})


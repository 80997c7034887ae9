/**
 * The launcher of RinglineWorkers (main thread): validates the options, starts and supervises
 * the worker threads (workerMain.ts), owns the acceptor in acceptor mode, collects stats and
 * metrics, and drains everything when its scope closes.
 */
import { Deferred, Duration, Effect, Exit, FiberId, Metric, Scope } from "effect"
import { existsSync } from "node:fs"
import { availableParallelism } from "node:os"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { Address } from "../Address.js"
import * as Addr from "../Address.js"
import * as Ringline from "../Ringline.js"
import * as RinglineConfig from "../RinglineConfig.js"
import { RinglineConfigError, socketError } from "../RinglineError.js"
import * as RinglineMetrics from "../RinglineMetrics.js"
import type {
  LaunchOptions,
  Mode,
  WorkerDeath,
  WorkerInfo,
  WorkerSet,
  WorkersStats
} from "../RinglineWorkers.js"
import { WorkerFailed } from "../RinglineWorkers.js"
import { Acceptor } from "./acceptor.js"
import { Errno } from "./errno.js"
import { mailboxBytes as mailboxSize } from "./mailbox.js"
import { MAX_WORKERS } from "./msgRing.js"
import { load } from "./native.js"
import { decode, encodeToBytes, literal, SOCK_STREAM } from "./sockaddr.js"
import type { WorkerInit } from "./workerMain.js"

// Compiled: dist/internal/workerMain.js beside this file. From the sources (tests run them
// through vitest), the worker still needs plain JS: the build's copy.
const WORKER_MAIN = import.meta.url.endsWith(".ts")
  ? new URL("../../dist/internal/workerMain.js", import.meta.url)
  : new URL("./workerMain.js", import.meta.url)

interface Validated {
  readonly module: string
  readonly workers: number
  readonly pin: boolean
  readonly coreOffset: number
  readonly mode: Mode
  readonly host: string
  readonly port: number
  readonly backlog: number
  readonly balance: "leastLoaded" | "roundRobin"
  readonly maxRestarts: number
  readonly config: RinglineConfig.RinglineConfig
  readonly mailboxBytes: number
  readonly awaitListening: boolean
  readonly data: unknown
  readonly youngGenerationMb: number | undefined
}

const bad = (field: string, detail: string, value: unknown) =>
  new RinglineConfigError({ field, detail: `${detail} (got ${typeof value === "string" ? JSON.stringify(value) : String(value)})` })
const isInt = (v: unknown, min: number, max: number) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max

const validate = (o: LaunchOptions) =>
  Effect.gen(function*() {
    if (typeof o !== "object" || o === null) return yield* bad("options", "must be an object", o)
    const m = o.module
    let module: string
    if (m instanceof URL) module = m.href
    else if (typeof m === "string" && m.startsWith("file:")) module = m
    else if (typeof m === "string" && m.startsWith("/")) module = pathToFileURL(m).href
    else return yield* bad("module", "must be an absolute path or a file: URL of an ES module", m)
    if (!existsSync(fileURLToPath(module))) return yield* bad("module", "no such file", fileURLToPath(module))
    const cpus = availableParallelism()
    const workers = o.workers ?? cpus
    if (!isInt(workers, 1, 1024)) return yield* bad("workers", "must be an integer between 1 and 1024", workers)
    const mode = o.mode ?? "reusePort"
    if (mode !== "reusePort" && mode !== "acceptor") return yield* bad("mode", `must be "reusePort" or "acceptor"`, mode)
    const host = o.host ?? "127.0.0.1"
    const port = o.port ?? 0
    if (!isInt(port, 0, 65535)) return yield* bad("port", "must be an integer between 0 and 65535", port)
    if (typeof host !== "string" || literal(host, 0) === undefined) return yield* bad("host", "must be a numeric IPv4 or IPv6 address", host)
    const backlog = o.backlog ?? 1024
    if (!isInt(backlog, 1, 2 ** 31 - 1)) return yield* bad("backlog", "must be a positive integer", backlog)
    const pin = o.pin ?? true
    if (typeof pin !== "boolean") return yield* bad("pin", "must be a boolean", pin)
    const coreOffset = o.coreOffset ?? 0
    if (!isInt(coreOffset, 0, 1023)) return yield* bad("coreOffset", "must be an integer between 0 and 1023", coreOffset)
    const balance = o.balance ?? "leastLoaded"
    if (balance !== "leastLoaded" && balance !== "roundRobin") return yield* bad("balance", `must be "leastLoaded" or "roundRobin"`, balance)
    const maxRestarts = o.maxRestarts ?? 3
    if (!isInt(maxRestarts, 0, 1_000_000)) return yield* bad("maxRestarts", "must be a non-negative integer", maxRestarts)
    const mailboxBytes = o.mailboxBytes ?? 65536
    if (!isInt(mailboxBytes, 4096, 16 * 1024 * 1024) || (mailboxBytes & (mailboxBytes - 1)) !== 0) {
      return yield* bad("mailboxBytes", "must be a power of two between 4096 and 16777216", mailboxBytes)
    }
    const awaitListening = o.awaitListening ?? true
    const youngGenerationMb = o.youngGenerationMb
    if (youngGenerationMb !== undefined && !isInt(youngGenerationMb, 1, 4096)) {
      return yield* bad("youngGenerationMb", "must be an integer between 1 and 4096 (MiB)", youngGenerationMb)
    }
    if (workers > MAX_WORKERS) return yield* bad("workers", `at most ${MAX_WORKERS}`, workers)
    // Each worker's ring: the given config, or the environment's (as Ringline.layerConfig does).
    const input = o.config ?? (yield* Effect.mapError(
      RinglineConfig.config,
      (e) => new RinglineConfigError({ field: "config", detail: `from the environment (RINGLINE_*): ${e}` })
    ))
    const config = yield* Effect.mapError(
      RinglineConfig.validate(input),
      (e) => new RinglineConfigError({ field: `config.${e.field}`, detail: e.detail })
    )
    return {
      module, workers, pin, coreOffset, mode, host, port, backlog, balance, maxRestarts, config, mailboxBytes,
      awaitListening, data: o.data, youngGenerationMb
    } satisfies Validated
  })

interface Slot {
  readonly id: number
  worker: Worker | undefined
  threadId: number
  tid: number
  cpus: ReadonlyArray<number>
  restarts: number
  listening: boolean
  /** Its ring is up and its module loaded (reset on restart). */
  ready: boolean
  uncaught: string | undefined
  done: { ok: boolean; cause?: string } | undefined
  exited: Deferred.Deferred<void>
}

export const launch = (options: LaunchOptions) =>
  Effect.gen(function*() {
    const v = yield* validate(options)
    const n = v.workers
    // Pin among the CPUs this process may use (a container's cpuset need not start at 0).
    const cpus = v.pin ? load().getAffinity() : []
    const ringFdsSab = new SharedArrayBuffer(4 * n)
    const ringFds = new Int32Array(ringFdsSab).fill(-1)
    const loadSab = new SharedArrayBuffer(4 * n)
    const loads = new Int32Array(loadSab)
    const mailbox = new SharedArrayBuffer(mailboxSize(n, v.mailboxBytes))
    const ready: Array<boolean> = new Array(n).fill(false)
    const deaths: Array<WorkerDeath> = []
    const failure = yield* Deferred.make<never, WorkerFailed>()
    const allListening = yield* Deferred.make<void, WorkerFailed>()
    const address = yield* Deferred.make<Address>()
    let sharedPort = v.port
    let draining = false
    let started = false
    const scope = yield* Effect.scope

    // Acceptor mode: the main thread's own ring accepts.
    let acceptor: Acceptor | undefined
    if (v.mode === "acceptor") {
      const ring = yield* Ringline.make({
        ...v.config,
        maxConnections: Math.min(v.config.maxConnections, 4096),
        recvBuffer: { ringSize: 1, bufferSize: 1 },
        sendPool: { slots: 1, slotSize: 1 },
        sendQueueLowWater: 0
      })
      const native = load()
      const wanted = literal(v.host, v.port)!
      const fd = yield* Effect.try({
        try: () => native.listen(encodeToBytes(wanted), v.backlog, false, SOCK_STREAM, v.config.tcpNoDelay),
        catch: (e: any) => socketError(e?.syscall ?? "listen", e?.errno ?? Errno.EINVAL, Addr.format(wanted))
      })
      acceptor = new Acceptor(ring.driver!, fd, { ringFds, load: loads, ready }, v.balance)
      const bound = decode(native.sockName(fd, false))
      sharedPort = bound._tag === "TcpAddress" ? bound.port : v.port
      Deferred.unsafeDone(address, Exit.succeed(bound))
    }

    const slots: Array<Slot> = Array.from({ length: n }, (_, id) => ({
      id, worker: undefined, threadId: -1, tid: -1, cpus: [], restarts: 0, listening: false, ready: false, uncaught: undefined,
      done: undefined, exited: Deferred.unsafeMake<void>(FiberId.none)
    }))
    const pending = new Map<number, (m: any) => void>()
    let requestId = 0

    const checkAllListening = () => {
      if (slots.every((s) => s.listening)) Deferred.unsafeDone(allListening, Exit.void)
    }

    const start = (slot: Slot) => {
      slot.listening = false
      slot.ready = false
      slot.uncaught = undefined
      slot.done = undefined
      slot.exited = Deferred.unsafeMake<void>(FiberId.none)
      Atomics.store(loads, slot.id, 0)
      // A drain waits for exactly what this incarnation was handed.
      if (acceptor !== undefined) acceptor.handed[slot.id] = 0
      const init: WorkerInit = {
        id: slot.id,
        count: n,
        mode: v.mode,
        module: v.module,
        cpu: v.pin ? cpus[(v.coreOffset + slot.id) % cpus.length]! : -1,
        host: v.host,
        port: sharedPort,
        backlog: v.backlog,
        config: v.config,
        ringFds: ringFdsSab,
        load: loadSab,
        mailbox,
        mailboxBytes: v.mailboxBytes,
        data: v.data
      }
      const worker = new Worker(WORKER_MAIN, {
        workerData: init,
        ...(v.youngGenerationMb === undefined ? {} : { resourceLimits: { maxYoungGenerationSizeMb: v.youngGenerationMb } })
      })
      slot.worker = worker
      slot.threadId = worker.threadId
      worker.on("message", (m: any) => {
        if (m?.type === "ready") {
          slot.tid = m.tid
          slot.cpus = m.cpus
          slot.ready = true
          // The first programs start together; a restarted worker's at once.
          if (started) worker.postMessage({ type: "start" })
          else if (slots.every((s) => s.ready)) {
            started = true
            for (const s of slots) s.worker?.postMessage({ type: "start" })
          }
        } else if (m?.type === "listening") {
          slot.listening = true
          ready[slot.id] = true
          if (sharedPort === 0 && m.port !== 0) {
            sharedPort = m.port
            for (const s of slots) s.worker?.postMessage({ type: "port", port: sharedPort })
          }
          Deferred.unsafeDone(address, Exit.succeed(Addr.tcp(v.host, sharedPort)))
          checkAllListening()
        } else if (m?.type === "stats") {
          pending.get(m.id)?.(m)
        } else if (m?.type === "done") {
          slot.done = { ok: m.ok, cause: m.cause }
        }
      })
      worker.on("error", (e) => {
        slot.uncaught ??= (e as Error)?.stack ?? String(e)
      })
      worker.on("exit", (code) => onExit(slot, worker, code))
    }

    const onExit = (slot: Slot, worker: Worker, code: number) => {
      if (slot.worker !== worker) return
      slot.worker = undefined
      ready[slot.id] = false
      Atomics.store(ringFds, slot.id, -1)
      const exited = slot.exited
      if (draining && slot.done?.ok !== false && slot.uncaught === undefined) {
        Deferred.unsafeDone(exited, Exit.void)
        return
      }
      const cause = slot.uncaught ?? (slot.done?.ok === false || slot.done?.cause !== undefined ? slot.done.cause! : undefined) ??
        `the worker thread exited with code ${code}`
      const restart = !draining && slot.restarts < v.maxRestarts
      deaths.push({ worker: slot.id, cause, exitCode: code, restarted: restart, at: new Date() })
      Effect.runFork(
        Effect.logError(`ringline: worker ${slot.id} died (exit code ${code}); ${restart ? "restarting it" : draining ? "while draining" : "no restarts left, stopping the set"}\n${cause}`)
      )
      Deferred.unsafeDone(exited, Exit.void)
      if (restart) {
        slot.restarts++
        start(slot)
      } else if (!draining) {
        const failed = new WorkerFailed({ worker: slot.id, restarts: slot.restarts, cause })
        Deferred.unsafeDone(failure, Exit.fail(failed))
        Deferred.unsafeDone(allListening, Exit.fail(failed))
      }
    }

    // Drain on scope close: the acceptor first (its transfers complete, so the handoff counts
    // are final), then every worker, each told how many connections must reach it first.
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        draining = true
        if (acceptor !== undefined) {
          const a = acceptor
          yield* Effect.async<void>((resume) => a.stop(() => resume(Effect.void)))
        }
        for (const s of slots) s.worker?.postMessage({ type: "drain", expected: acceptor?.handed[s.id] ?? 0 })
        const all = Effect.forEach(slots, (s) => (s.worker === undefined ? Effect.void : Deferred.await(s.exited)), { discard: true })
        const done = yield* Effect.timeoutOption(Effect.interruptible(all), v.config.shutdownTimeoutMs * 2 + 2000)
        if (done._tag === "None") {
          yield* Effect.forEach(slots, (s) => (s.worker === undefined ? Effect.void : Effect.promise(() => s.worker!.terminate())), { discard: true })
        }
      })
    )

    for (const s of slots) start(s)
    if (v.awaitListening) {
      yield* Deferred.await(allListening)
    }

    const ask = (s: Slot) =>
      s.worker === undefined
        ? Effect.succeed(undefined)
        : Effect.async<any>((resume) => {
          const id = ++requestId
          pending.set(id, (m) => {
            pending.delete(id)
            resume(Effect.succeed(m))
          })
          s.worker!.postMessage({ type: "stats", id })
          return Effect.sync(() => pending.delete(id))
        }).pipe(
          // Generous: a busy worker on a loaded machine answers late, and a missing answer drops it from the summary.
          Effect.timeoutOption(Duration.seconds(5)),
          Effect.map((o) => (o._tag === "Some" ? o.value : undefined))
        )

    const stats: Effect.Effect<WorkersStats> = Effect.gen(function*() {
      const answers = yield* Effect.forEach(slots, ask, { concurrency: "unbounded" })
      const workers = slots.flatMap((s, i) => (answers[i] === undefined ? [] : [{ id: s.id, stats: answers[i].stats, errors: answers[i].errors }]))
      const total: Record<string, number> = {}
      for (const w of workers) {
        for (const [k, val] of Object.entries(w.stats)) if (typeof val === "number") total[k] = (total[k] ?? 0) + val
      }
      return {
        workers,
        total,
        ...(acceptor === undefined ? {} : { acceptor: { accepted: acceptor.accepted, handed: [...acceptor.handed], lost: acceptor.lost } })
      }
    })

    // What each worker's counters were at the last updateMetrics (a restarted worker starts at 0).
    const published = new Map<string, Record<string, number>>()
    const set: WorkerSet = {
      mode: v.mode,
      count: n,
      address: Deferred.await(address),
      workers: Effect.sync(() =>
        slots.map((s): WorkerInfo => ({ id: s.id, threadId: s.threadId, tid: s.tid, cpus: s.cpus, restarts: s.restarts, listening: s.listening }))
      ),
      stats,
      updateMetrics: Effect.flatMap(stats, (s) => publish(s, published)),
      deaths: Effect.sync(() => [...deaths]),
      join: Deferred.await(failure)
    }
    return set
  })

/** Worker counters into this thread's ringline_* metrics: the sum untagged, each worker tagged. */
const publish = (s: WorkersStats, published: Map<string, Record<string, number>>): Effect.Effect<void> => {
  const pairs: Array<[Metric.Metric.Counter<number> | Metric.Metric.Gauge<number>, string, boolean]> = [
    [RinglineMetrics.connectionsAccepted, "accepted", true],
    [RinglineMetrics.connectionsConnected, "connected", true],
    [RinglineMetrics.connectionsClosed, "closed", true],
    [RinglineMetrics.bytesReceived, "bytesIn", true],
    [RinglineMetrics.bytesSent, "bytesOut", true],
    [RinglineMetrics.cqes, "cqes", true],
    [RinglineMetrics.submissions, "submitted", true],
    [RinglineMetrics.sqFullRetries, "sqFull", true],
    [RinglineMetrics.enobufsParks, "enobufs", true],
    [RinglineMetrics.backpressurePauses, "backpressurePauses", true],
    [RinglineMetrics.zeroCopySends, "zeroCopySends", true],
    [RinglineMetrics.zeroCopyCopied, "zeroCopyCopied", true],
    [RinglineMetrics.connectionsActive, "connections", false],
    [RinglineMetrics.inFlightOps, "inFlight", false]
  ]
  const effects: Array<Effect.Effect<void>> = []
  const put = (key: string, values: Record<string, number>, tag: string | undefined) => {
    const before = published.get(key) ?? {}
    published.set(key, { ...values })
    for (const [metric, field, counter] of pairs) {
      const m = tag === undefined ? metric : Metric.tagged(metric as Metric.Metric.Counter<number>, "worker", tag)
      const now = values[field] ?? 0
      effects.push(
        counter
          ? Metric.incrementBy(m as Metric.Metric.Counter<number>, Math.max(0, now - (before[field] ?? 0)))
          : Metric.set(m as Metric.Metric.Gauge<number>, now)
      )
    }
  }
  put("total", s.total, undefined)
  for (const w of s.workers) put(`worker:${w.id}`, w.stats as unknown as Record<string, number>, String(w.id))
  // ringline_errors by errno code: per worker (tagged worker and code) and summed (code only).
  const sums: Record<string, number> = {}
  for (const w of s.workers) {
    const key = `errors:${w.id}`
    const before = published.get(key) ?? {}
    published.set(key, { ...w.errors })
    for (const [code, n] of Object.entries(w.errors)) {
      const d = Math.max(0, n - (before[code] ?? 0))
      sums[code] = (sums[code] ?? 0) + d
      if (d > 0) effects.push(Metric.incrementBy(Metric.tagged(Metric.tagged(RinglineMetrics.errors, "worker", String(w.id)), "code", code), d))
    }
  }
  for (const [code, d] of Object.entries(sums)) {
    if (d > 0) effects.push(Metric.incrementBy(Metric.tagged(RinglineMetrics.errors, "code", code), d))
  }
  return Effect.all(effects, { discard: true })
}

export const runMain = (options: LaunchOptions, onReady?: (set: WorkerSet) => Effect.Effect<void>): void =>
  Ringline.runMain(
    Effect.scoped(
      Effect.gen(function*() {
        const set = yield* launch(options)
        if (onReady !== undefined) yield* onReady(set)
        return yield* set.join
      })
    )
  )


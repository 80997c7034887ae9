/**
 * The worker_threads pool behind `Blocking`: workers are started on demand up to `size`, run one
 * job at a time, are unref'd while idle (an idle pool never keeps the process alive), are
 * terminated after `idleTimeoutMs` without work, and are replaced when they die. A job whose
 * caller is interrupted terminates its worker (a running function cannot be stopped otherwise).
 */
import type { BlockingStats } from "../Blocking.js"
import { isAbsolute } from "node:path"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"

/**
 * The worker's program (CommonJS, run with `eval: true` so that it needs no file of its own and
 * works from sources and from dist alike). Modules are imported once per worker and cached.
 */
const BOOTSTRAP = `
"use strict"
const { parentPort } = require("node:worker_threads")
const modules = new Map()
const describe = (e) => {
  if (e instanceof Error || (typeof e === "object" && e !== null && "message" in e)) {
    return { name: String(e.name ?? "Error"), message: String(e.message), stack: typeof e.stack === "string" ? e.stack : undefined, code: e.code === undefined ? undefined : String(e.code) }
  }
  return { name: typeof e, message: String(e), stack: undefined, code: undefined }
}
parentPort.on("message", async (job) => {
  let fn
  try {
    let mod = modules.get(job.module)
    if (mod === undefined) {
      mod = import(job.module)
      modules.set(job.module, mod)
    }
    let ns
    try {
      ns = await mod
    } catch (e) {
      modules.delete(job.module)
      throw e
    }
    fn = ns[job.name]
    if (typeof fn !== "function") {
      throw new TypeError(job.name in ns ? "export " + JSON.stringify(job.name) + " of " + job.module + " is a " + typeof fn + ", not a function" : "module " + job.module + " has no export " + JSON.stringify(job.name))
    }
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, reason: "Import", error: describe(e) })
    return
  }
  let value
  try {
    value = await fn(...job.args)
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, reason: "Threw", error: describe(e) })
    return
  }
  try {
    parentPort.postMessage({ id: job.id, ok: true, value })
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, reason: "DataClone", error: describe(e) })
  }
})
`

/** Why a job failed. */
export type FailureReason = "Threw" | "Import" | "DataClone" | "Crashed" | "Shutdown"

export interface ErrorInfo {
  readonly name: string
  readonly message: string
  readonly stack?: string | undefined
  readonly code?: string | undefined
}

export interface JobCallbacks {
  readonly ok: (value: unknown) => void
  readonly fail: (reason: FailureReason, error: ErrorInfo, exitCode?: number) => void
}

interface Job {
  readonly id: number
  readonly module: string
  readonly name: string
  readonly args: ReadonlyArray<unknown>
  readonly cb: JobCallbacks
  settled: boolean
}

interface PoolWorker {
  readonly worker: Worker
  job: Job | undefined
  idleTimer: ReturnType<typeof setTimeout> | undefined
  /** Set by the first 'error' event (an uncaught exception), reported with the crash. */
  uncaught: ErrorInfo | undefined
  exited: boolean
  readonly onExit: Array<() => void>
}

/** The public model (documented field by field in Blocking.ts). */
export type PoolStats = BlockingStats

/**
 * Turns what `run` accepts into an import specifier: URLs as they are, absolute paths as file
 * URLs, bare specifiers (`"node:crypto"`, `"some-package"`) as they are. Relative paths are
 * refused: relative to what would be ambiguous across threads.
 */
export const specifier = (module: string | URL): string | undefined => {
  if (typeof module !== "string") return module.href
  if (module.startsWith("./") || module.startsWith("../") || module === "." || module === "..") return undefined
  if (isAbsolute(module)) return pathToFileURL(module).href
  return module
}

const describeLocal = (e: any): ErrorInfo => ({
  name: String(e?.name ?? "Error"),
  message: String(e?.message ?? e),
  stack: typeof e?.stack === "string" ? e.stack : undefined,
  code: e?.code === undefined ? undefined : String(e.code)
})

export class Pool {
  private readonly workers = new Set<PoolWorker>()
  private readonly idle: Array<PoolWorker> = []
  private readonly queue: Array<Job> = []
  private nextId = 1
  private closed = false
  private started = 0
  private crashed = 0
  private recycled = 0
  private completed = 0

  constructor(readonly size: number, readonly idleTimeoutMs: number) {}

  stats(): PoolStats {
    let busy = 0
    for (const w of this.workers) if (w.job !== undefined) busy++
    return {
      size: this.size,
      workers: this.workers.size,
      busy,
      queued: this.queue.length,
      started: this.started,
      crashed: this.crashed,
      recycled: this.recycled,
      completed: this.completed
    }
  }

  /**
   * Queues a job; returns a function that withdraws it: a queued job is dropped, a running one
   * has its worker terminated. `whenGone` runs once the job holds nothing any more (at once for
   * a queued job, after the worker's exit for a running one).
   */
  submit(module: string, name: string, args: ReadonlyArray<unknown>, cb: JobCallbacks): (whenGone: () => void) => void {
    const job: Job = { id: this.nextId++, module, name, args, cb, settled: false }
    if (this.closed) {
      this.settle(job, (c) => c.fail("Shutdown", { name: "Error", message: "the blocking pool is shut down" }))
      return (whenGone) => whenGone()
    }
    const w = this.idle.pop()
    if (w !== undefined) this.dispatch(w, job)
    else if (this.workers.size < this.size) this.dispatch(this.spawn(), job)
    else this.queue.push(job)
    return (whenGone) => this.withdraw(job, whenGone)
  }

  /** Fails every queued and running job with `Shutdown`, terminates every worker, calls `done` when all exited. */
  shutdown(done: () => void): void {
    this.closed = true
    for (const job of this.queue.splice(0)) {
      this.settle(job, (c) => c.fail("Shutdown", { name: "Error", message: "the blocking pool was shut down before the job ran" }))
    }
    const all = [...this.workers]
    if (all.length === 0) return done()
    let left = all.length
    for (const w of all) {
      const job = w.job
      if (job !== undefined) {
        w.job = undefined
        this.settle(job, (c) => c.fail("Shutdown", { name: "Error", message: "the blocking pool was shut down while the job ran" }))
      }
      this.terminate(w, () => {
        if (--left === 0) done()
      })
    }
  }

  private settle(job: Job, f: (cb: JobCallbacks) => void): void {
    if (job.settled) return
    job.settled = true
    f(job.cb)
  }

  private withdraw(job: Job, whenGone: () => void): void {
    const q = this.queue.indexOf(job)
    if (q >= 0) {
      this.queue.splice(q, 1)
      job.settled = true
      return whenGone()
    }
    for (const w of this.workers) {
      if (w.job === job) {
        // The function may be in the middle of anything: the only way to stop it is to end its thread.
        w.job = undefined
        job.settled = true
        this.recycled++
        return this.terminate(w, whenGone)
      }
    }
    job.settled = true
    whenGone()
  }

  private spawn(): PoolWorker {
    const worker = new Worker(BOOTSTRAP, { eval: true })
    const w: PoolWorker = { worker, job: undefined, idleTimer: undefined, uncaught: undefined, exited: false, onExit: [] }
    this.started++
    this.workers.add(w)
    worker.on("message", (m: any) => this.onMessage(w, m))
    worker.on("error", (e) => {
      // An exception nobody caught (e.g. thrown from a timer callback): the worker exits next.
      if (w.uncaught === undefined) w.uncaught = describeLocal(e)
    })
    worker.on("messageerror", (e) => {
      // The result could not be deserialized here: report it on the job, keep the worker.
      const job = w.job
      if (job === undefined) return
      w.job = undefined
      this.settle(job, (c) => c.fail("DataClone", describeLocal(e)))
      this.release(w)
    })
    worker.on("exit", (code) => this.onExit(w, code))
    return w
  }

  private dispatch(w: PoolWorker, job: Job): void {
    if (w.idleTimer !== undefined) {
      clearTimeout(w.idleTimer)
      w.idleTimer = undefined
    }
    w.job = job
    // A running job keeps the process alive (its caller is waiting for it); an idle worker does not.
    w.worker.ref()
    try {
      w.worker.postMessage({ id: job.id, module: job.module, name: job.name, args: job.args })
    } catch (e) {
      w.job = undefined
      this.settle(job, (c) => c.fail("DataClone", describeLocal(e)))
      this.release(w)
    }
  }

  private release(w: PoolWorker): void {
    if (w.exited) return
    const next = this.queue.shift()
    if (next !== undefined) return this.dispatch(w, next)
    w.worker.unref()
    this.idle.push(w)
    if (Number.isFinite(this.idleTimeoutMs)) {
      w.idleTimer = setTimeout(() => {
        w.idleTimer = undefined
        if (w.job === undefined) this.terminate(w, () => {})
      }, this.idleTimeoutMs)
      w.idleTimer.unref()
    }
  }

  private onMessage(w: PoolWorker, m: any): void {
    const job = w.job
    if (job === undefined || m?.id !== job.id) return
    w.job = undefined
    this.completed++
    if (m.ok === true) this.settle(job, (c) => c.ok(m.value))
    else this.settle(job, (c) => c.fail(m.reason as FailureReason, m.error as ErrorInfo))
    this.release(w)
  }

  private terminate(w: PoolWorker, whenExited: () => void): void {
    if (w.exited) return whenExited()
    w.onExit.push(whenExited)
    this.forget(w)
    void w.worker.terminate()
  }

  /** Takes a worker out of rotation (it is about to exit or has exited). */
  private forget(w: PoolWorker): void {
    const i = this.idle.indexOf(w)
    if (i >= 0) this.idle.splice(i, 1)
    if (w.idleTimer !== undefined) {
      clearTimeout(w.idleTimer)
      w.idleTimer = undefined
    }
  }

  private onExit(w: PoolWorker, code: number): void {
    w.exited = true
    this.forget(w)
    this.workers.delete(w)
    const job = w.job
    if (job !== undefined) {
      // Died under a job: process.exit, an uncaught exception, out of memory.
      w.job = undefined
      this.crashed++
      const info: ErrorInfo = w.uncaught ?? { name: "Error", message: `the worker exited with code ${code} while running the job` }
      this.settle(job, (c) => c.fail("Crashed", info, code))
    }
    for (const f of w.onExit.splice(0)) f()
    // Replace the worker if work is waiting for one.
    if (!this.closed && this.queue.length > 0 && this.workers.size < this.size) {
      this.dispatch(this.spawn(), this.queue.shift()!)
    }
  }
}

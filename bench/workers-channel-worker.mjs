// The worker program of bench/workers-channel.mjs: worker 0 plays ping-pong with worker 1 and
// writes round-trip times into the shared Float64Array `data.results`; worker 1 answers.
// CPU time is read from both threads' schedstat (ns on CPU, whatever else runs on the machine).
// Both threads log their garbage collections into `data.gcLogs[id]` (epoch ms), so worker 0
// can tell which slow round trips overlapped one.
import { Effect } from "effect"
import { readFileSync, readlinkSync } from "node:fs"
import { PerformanceObserver, performance } from "node:perf_hooks"
import { BroadcastChannel } from "node:worker_threads"
import { RinglineWorkers } from "../packages/core/dist/index.js"

// "<pid>/task/<tid>" of the calling thread.
const threadPath = () => `/proc/${readlinkSync("/proc/thread-self")}`
const cpuNs = (task) => Number(readFileSync(`${task}/schedstat`, "utf8").split(" ")[0])

const summarize = (xs) => {
  const v = [...xs].sort((a, b) => a - b)
  return [v[v.length >> 1], v[Math.floor(v.length * 0.99)]]
}

// Appends this thread's GCs to its log: [count, start, end, ...], ms since the epoch.
const logGcs = (log) =>
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const n = log[0]
      if (2 * n + 2 >= log.length) return
      const start = performance.timeOrigin + e.startTime
      log[1 + 2 * n] = start
      log[2 + 2 * n] = start + e.duration
      log[0] = n + 1
    }
  }).observe({ entryTypes: ["gc"] })

// How many of the rounds [start, end] (epoch ms) overlap a GC in any of `logs`.
const duringGc = (rounds, logs) =>
  rounds.filter(([a, b]) =>
    logs.some((log) => {
      for (let i = 0; i < log[0]; i++) if (log[1 + 2 * i] <= b && log[2 + 2 * i] >= a) return true
      return false
    })
  ).length

export default Effect.gen(function*() {
  const w = yield* RinglineWorkers.WorkerContext
  const { rounds, warmup, reps } = w.data
  const results = new Float64Array(w.data.results)
  const gcLogs = w.data.gcLogs.map((b) => new Float64Array(b))
  logGcs(gcLogs[w.id])
  const bc = new BroadcastChannel("ringline-bench-channel")
  if (w.id === 1) {
    results[15 * reps + 1] = Number(threadPath().split("/").pop())
    // postMessage is answered by a fiber too (one Effect per hop on both sides, as for the ring
    // cases): messages queue here until it takes them.
    const posted = []
    let waiting = null
    bc.onmessage = (e) => {
      if (waiting === null) return posted.push(e.data)
      const w = waiting
      waiting = null
      w(e.data)
    }
    const nextPost = Effect.async((resume) => {
      if (posted.length > 0) return resume(Effect.succeed(posted.shift()))
      waiting = (d) => resume(Effect.succeed(d))
    })
    yield* Effect.fork(Effect.forever(Effect.flatMap(nextPost, (d) => Effect.sync(() => bc.postMessage(d)))))
    while (true) {
      const m = yield* w.receive
      if (m._tag === "Notify") yield* w.notify(0, m.payload)
      else yield* w.send(0, m.body)
    }
  }
  const body = new Uint8Array(64)
  const time = (once) =>
    Effect.gen(function*() {
      for (let i = 0; i < warmup; i++) yield* once(i)
      const rtts = []
      // (Worker 1 named its thread before it answered the warm-up.)
      const tasks = [threadPath(), `/proc/self/task/${results[15 * reps + 1]}`]
      const cpu0 = tasks.map(cpuNs)
      const starts = new Float64Array(rounds)
      for (let i = 0; i < rounds; i++) {
        const t0 = performance.now()
        yield* once(i)
        starts[i] = t0
        rtts.push((performance.now() - t0) * 1000)
      }
      // µs of CPU per round trip, both threads together.
      const cpu = tasks.reduce((a, t, i) => a + cpuNs(t) - cpu0[i], 0) / rounds / 1000
      const [median, p99] = summarize(rtts)
      // Let both threads' GC observers deliver, then attribute the slow rounds.
      yield* Effect.sleep(50)
      const slow = []
      for (let i = 0; i < rounds; i++) {
        if (rtts[i] > 4 * median) slow.push([performance.timeOrigin + starts[i], performance.timeOrigin + starts[i] + rtts[i] / 1000])
      }
      return [median, p99, cpu, slow.length, duringGc(slow, gcLogs)]
    })
  let resolveReply
  bc.onmessage = () => resolveReply()
  const cases = [
    // MSG_RING data CQE, 64-bit payload.
    (i) => Effect.zipRight(w.notify(1, BigInt(i)), w.receive),
    // A 64-byte body through the shared-memory mailbox plus its MSG_RING wake-up.
    () => Effect.zipRight(w.send(1, body), w.receive),
    // postMessage semantics between the same two threads (BroadcastChannel: no main-thread relay).
    (i) =>
      Effect.async((resume) => {
        resolveReply = () => resume(Effect.void)
        bc.postMessage(i)
      })
  ]
  // Repetitions interleave the cases, so that a change of load hits all three alike, and rotate
  // which goes first (the first case of a repetition measured slower, whichever it was).
  for (let rep = 0; rep < reps; rep++) {
    for (let j = 0; j < cases.length; j++) {
      const k = (j + rep) % cases.length
      results.set(yield* time(cases[k]), 15 * rep + 5 * k)
    }
  }
  results[15 * reps] = 1
  bc.close()
  return yield* Effect.never
})

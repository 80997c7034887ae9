// The worker program of bench/workers-channel.mjs: worker 0 plays ping-pong with worker 1 and
// writes round-trip times into the shared Float64Array `data.results`; worker 1 answers.
// CPU time is read from both threads' schedstat (ns on CPU, whatever else runs on the machine).
import { Effect } from "effect"
import { readFileSync, readlinkSync } from "node:fs"
import { BroadcastChannel } from "node:worker_threads"
import { RinglineWorkers } from "../packages/core/dist/index.js"

// "<pid>/task/<tid>" of the calling thread.
const threadPath = () => `/proc/${readlinkSync("/proc/thread-self")}`
const cpuNs = (task) => Number(readFileSync(`${task}/schedstat`, "utf8").split(" ")[0])

const summarize = (xs) => {
  const v = [...xs].sort((a, b) => a - b)
  return [v[v.length >> 1], v[Math.floor(v.length * 0.99)]]
}

export default Effect.gen(function*() {
  const w = yield* RinglineWorkers.WorkerContext
  const { rounds, warmup } = w.data
  const results = new Float64Array(w.data.results)
  const bc = new BroadcastChannel("ringline-bench-channel")
  if (w.id === 1) {
    results[10] = Number(threadPath().split("/").pop())
    bc.onmessage = (e) => bc.postMessage(e.data)
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
      const tasks = [threadPath(), `/proc/self/task/${results[10]}`]
      const cpu0 = tasks.map(cpuNs)
      for (let i = 0; i < rounds; i++) {
        const t0 = performance.now()
        yield* once(i)
        rtts.push((performance.now() - t0) * 1000)
      }
      // µs of CPU per round trip, both threads together.
      const cpu = tasks.reduce((a, t, i) => a + cpuNs(t) - cpu0[i], 0) / rounds / 1000
      return [...summarize(rtts), cpu]
    })
  // MSG_RING data CQE, 64-bit payload.
  const notify = yield* time((i) => Effect.zipRight(w.notify(1, BigInt(i)), w.receive))
  // A 64-byte body through the shared-memory mailbox plus its MSG_RING wake-up.
  const mailbox = yield* time(() => Effect.zipRight(w.send(1, body), w.receive))
  // postMessage semantics between the same two threads (BroadcastChannel: no main-thread relay).
  let resolveReply
  bc.onmessage = () => resolveReply()
  const post = yield* time((i) =>
    Effect.async((resume) => {
      resolveReply = () => resume(Effect.void)
      bc.postMessage(i)
    })
  )
  results.set([...notify, ...mailbox, ...post])
  results[9] = 1
  bc.close()
  return yield* Effect.never
})

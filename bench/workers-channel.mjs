#!/usr/bin/env node
// workers-channel.mjs — round-trip latency between two RinglineWorkers workers:
//   notify   : IORING_OP_MSG_RING data CQE carrying a 64-bit payload, and back
//   mailbox  : a 64-byte body in the SharedArrayBuffer mailbox + its MSG_RING wake-up, and back
//   postMessage: BroadcastChannel between the same two threads (Node's postMessage path)
// Each is one Effect per hop on both sides (worker 1 answers postMessage from a fiber too).
// Prints median and p99 round trips in µs, and the CPU
// time both threads spent per round trip (schedstat): on a shared machine wall-clock latency
// follows the load, the CPU per round trip much less so. The tail is attributed: "slow" counts
// the round trips over 4× the median, "in GC" those of them that overlap a garbage collection of
// either thread (PerformanceObserver "gc" entries, on one clock for both threads).
//
// Run: node bench/workers-channel.mjs [--rounds 5000] [--reps 3] [--pin]   (after `pnpm exec tsc -b`)
// The repetitions interleave the three cases, each repetition starting with the next one.
import { Effect } from "effect"
import os from "node:os"
import { parseArgs } from "node:util"
import { RinglineWorkers } from "../packages/core/dist/index.js"

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "5000" }, reps: { type: "string", default: "3" }, pin: { type: "boolean", default: false } }
})
const rounds = Number(values.rounds)
const reps = Number(values.reps)
// Per repetition r and case k (notify, mailbox, postMessage) 5 values from index 15·r + 5·k:
// median, p99, CPU/round, slow, slow in GC; then [15·reps] done flag, [15·reps + 1] worker 1's
// thread id.
const results = new Float64Array(new SharedArrayBuffer(8 * (15 * reps + 2)))
// Each worker's GCs: [count, start0, end0, start1, end1, ...] in ms since the epoch.
const gcLogs = [0, 1].map(() => new SharedArrayBuffer(8 * (1 + 2 * 8192)))

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  yield* RinglineWorkers.launch({
    module: new URL("./workers-channel-worker.mjs", import.meta.url),
    workers: 2,
    pin: values.pin,
    awaitListening: false,
    data: { rounds, reps, warmup: Math.min(1000, rounds), results: results.buffer, gcLogs }
  })
  while (results[15 * reps] !== 1) yield* Effect.sleep(50)
})))

const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const col = (x, w) => x.toFixed(1).padStart(w)
// One row per case: the median over the repetitions of each figure, then every repetition's
// median and p99 (min–max show how much the load moved between them).
const row = (name, k) => {
  const per = Array.from({ length: reps }, (_, r) => results.subarray(15 * r + 5 * k, 15 * r + 5 * k + 5))
  const m = (j) => med(per.map((v) => v[j]))
  const span = (j) => `${Math.min(...per.map((v) => v[j])).toFixed(1)}–${Math.max(...per.map((v) => v[j])).toFixed(1)}`
  return `${name.padEnd(12)} ${col(m(0), 9)} ${col(m(1), 9)} ${col(m(2), 12)} ${String(m(3)).padStart(6)} ${String(m(4)).padStart(6)}   ${span(0).padStart(11)} ${span(1).padStart(13)}`
}
console.log(`# ${new Date().toISOString()} load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
console.log(`round trip between two workers, ${rounds} rounds × ${reps} interleaved repetitions${values.pin ? ", pinned to CPU 0 and 1" : ""} (µs; median over the repetitions)`)
console.log(`${"".padEnd(12)} ${"median".padStart(9)} ${"p99".padStart(9)} ${"CPU/round".padStart(12)} ${"slow".padStart(6)} ${"in GC".padStart(6)}   ${"median min–max".padStart(11)} ${"p99 min–max".padStart(13)}`)
console.log(row("notify", 0))
console.log(row("mailbox", 1))
console.log(row("postMessage", 2))

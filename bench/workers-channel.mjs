#!/usr/bin/env node
// workers-channel.mjs — round-trip latency between two RinglineWorkers workers:
//   notify   : IORING_OP_MSG_RING data CQE carrying a 64-bit payload, and back
//   mailbox  : a 64-byte body in the SharedArrayBuffer mailbox + its MSG_RING wake-up, and back
//   postMessage: BroadcastChannel between the same two threads (Node's postMessage path)
// Each is one Effect per hop on both sides. Prints median and p99 round trips in µs, and the CPU
// time both threads spent per round trip (schedstat): on a shared machine wall-clock latency
// follows the load, the CPU per round trip much less so. The tail is attributed: "slow" counts
// the round trips over 4× the median, "in GC" those of them that overlap a garbage collection of
// either thread (PerformanceObserver "gc" entries, on one clock for both threads).
//
// Run: node bench/workers-channel.mjs [--rounds 5000] [--pin]   (after `pnpm exec tsc -b`)
import { Effect } from "effect"
import { parseArgs } from "node:util"
import { RinglineWorkers } from "../packages/core/dist/index.js"

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5000" }, pin: { type: "boolean", default: false } } })
const rounds = Number(values.rounds)
// Per case (notify, mailbox, postMessage) 5 values from index 5·k: median, p99, CPU/round, slow,
// slow in GC; [15] done flag, [16] worker 1's thread id.
const results = new Float64Array(new SharedArrayBuffer(8 * 17))
// Each worker's GCs: [count, start0, end0, start1, end1, ...] in ms since the epoch.
const gcLogs = [0, 1].map(() => new SharedArrayBuffer(8 * (1 + 2 * 8192)))

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  yield* RinglineWorkers.launch({
    module: new URL("./workers-channel-worker.mjs", import.meta.url),
    workers: 2,
    pin: values.pin,
    awaitListening: false,
    data: { rounds, warmup: Math.min(1000, rounds), results: results.buffer, gcLogs }
  })
  while (results[15] !== 1) yield* Effect.sleep(50)
})))

const row = (name, k) => {
  const [median, p99, cpu, slow, slowGc] = results.subarray(5 * k, 5 * k + 5)
  return `${name.padEnd(12)} ${median.toFixed(1).padStart(9)} ${p99.toFixed(1).padStart(9)} ${cpu.toFixed(1).padStart(12)} ${String(slow).padStart(6)} ${String(slowGc).padStart(6)}`
}
console.log(`round trip between two workers, ${rounds} rounds${values.pin ? ", pinned to CPU 0 and 1" : ""} (µs)`)
console.log(`${"".padEnd(12)} ${"median".padStart(9)} ${"p99".padStart(9)} ${"CPU/round".padStart(12)} ${"slow".padStart(6)} ${"in GC".padStart(6)}`)
console.log(row("notify", 0))
console.log(row("mailbox", 1))
console.log(row("postMessage", 2))

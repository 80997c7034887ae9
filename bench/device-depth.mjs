#!/usr/bin/env node
// What the block device saw while a command ran: its queue depth, read latency and submits.
// Runs the command under `perf record -a` with the block layer's request tracepoints and
// io_uring_enter, then pairs each read request issued by a `node` thread with its completion.
// Why: a driver-side trace (storage-cost.mjs --trace) sees a read as "in the kernel" from its
// submit until its CQE reaches JS, which includes the wait for the completion to be posted and
// for the thread to wake; the device itself may be idle for much of that. These numbers are the
// device's own, and (except latency) independent of how busy the host is.
//
//   node bench/device-depth.mjs -- node bench/storage-cost.mjs --api readInto --reads 100000
//
// Prints: mean device depth (sum of issue→complete times ÷ window, Little's law) and the share of
// time at each depth, read requests per second, device latency p50/p99, and io_uring_enter calls
// of `node` threads per read. The window is the last 70 % of the reads less the last 2 % (start-up
// reads of node's own files are long over by then). Needs perf with tracepoints (root, or
// kernel.perf_event_paranoid ≤ -1).
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const sep = process.argv.indexOf("--")
const cmd = sep >= 0 ? process.argv.slice(sep + 1) : []
if (cmd.length === 0) {
  console.error("usage: node bench/device-depth.mjs -- <command> [args...]")
  process.exit(2)
}
const dir = mkdtempSync(join(tmpdir(), "device-depth-"))
const data = join(dir, "perf.data")
const events = "block:block_rq_issue,block:block_rq_complete,syscalls:sys_enter_io_uring_enter"
const rec = spawnSync("perf", ["record", "-q", "-m", "8192", "-a", "-o", data, "-e", events, "--", ...cmd], { stdio: ["ignore", "inherit", "inherit"] })
if (rec.error !== undefined || rec.status !== 0) {
  console.error(`perf record failed (${rec.error?.message ?? `exit ${rec.status}`}): tracepoints need root or perf_event_paranoid <= -1`)
  rmSync(dir, { recursive: true, force: true })
  process.exit(1)
}
const script = spawnSync("perf", ["script", "-i", data], { encoding: "utf8", maxBuffer: 1 << 30 })
rmSync(dir, { recursive: true, force: true })

// "node 123 [001] 30497.733265: block:block_rq_issue: 254,0 RS 4096 () 53755904 + 8 0x2,0,4 [node]"
const line = /^\s*(.+?)\s+\d+\s+\[\d+\]\s+([\d.]+):\s+(block:block_rq_issue|block:block_rq_complete|syscalls:sys_enter_io_uring_enter):\s*(?:(\S+)\s+(\S+)\s+(?:\d+\s+)?\(\)\s+(\d+))?/
const issued = new Map()
const pairs = []
const enters = []
for (const l of script.stdout.split("\n")) {
  const m = line.exec(l)
  if (m === null) continue
  const [, comm, t, ev, dev, rwbs, sector] = m
  const time = Number(t)
  if (ev === "syscalls:sys_enter_io_uring_enter") {
    if (comm === "node") enters.push(time)
  } else if (ev === "block:block_rq_issue") {
    if (comm === "node" && rwbs.startsWith("R")) issued.set(`${dev}/${sector}`, time)
  } else {
    const key = `${dev}/${sector}`
    const start = issued.get(key)
    if (start !== undefined) {
      issued.delete(key)
      pairs.push([start, time])
    }
  }
}
if (pairs.length < 100) {
  console.log(`device: only ${pairs.length} reads by node threads were seen (is the file on a block device, opened O_DIRECT or cold?)`)
  process.exit(0)
}
pairs.sort((x, y) => x[0] - y[0])
const a = pairs[Math.floor(pairs.length * 0.3)][0]
const b = pairs[Math.floor(pairs.length * 0.98)][0]
const span = b - a
const inWindow = pairs.filter(([s]) => s >= a && s <= b)
const latencies = inWindow.map(([s, e]) => e - s).sort((x, y) => x - y)
// Time at each depth: +1 at an issue, -1 at its completion, inside the window.
const steps = []
for (const [s, e] of inWindow) steps.push([s, 1], [Math.min(e, b), -1])
steps.sort((x, y) => x[0] - y[0] || x[1] - y[1])
const atDepth = new Map()
let depth = 0
let last = a
let area = 0
for (const [t, d] of steps) {
  area += depth * (t - last)
  atDepth.set(depth, (atDepth.get(depth) ?? 0) + (t - last))
  depth += d
  last = t
}
const entersIn = enters.filter((t) => t >= a && t <= b).length
const pct = (q) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] * 1e6)
const hist = [...atDepth].sort((x, y) => x[0] - y[0]).filter(([, v]) => v / span >= 0.02).map(([k, v]) => `${k}:${Math.round((100 * v) / span)}%`)
console.log(JSON.stringify({
  device_depth_mean: +(area / span).toFixed(2),
  device_reads_per_s: Math.round(inWindow.length / span),
  device_latency_us: { p50: pct(0.5), p99: pct(0.99) },
  enters_per_read: +(entersIn / inWindow.length).toFixed(3),
  depth_time_share: hist.join(" "),
  unmatched_issues: issued.size
}))

#!/usr/bin/env node
// Per-read cost probe for ringline's file read paths: a fixed number of reads at a fixed queue
// depth after a warm-up, CPU time per read (user and system) from /proc/self/stat, all threads.
// CPU time still moves with the machine's load; instructions per read do not: run it under
// callgrind with --callgrind, and divide the dump's instruction count by the reads it reports.
//
//   node bench/storage-cost.mjs --api readInto --reads 200000
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out node bench/storage-cost.mjs --api readInto --reads 20000 --warmup 30000 --callgrind
//   (then: Ir of /tmp/cg.out.1, the dump of the measured window, ÷ "reads" in the printed line)
//
// --api readInto   DirectFile.readInto, one Effect per read (O_DIRECT, 4 KiB)
// --api each       DirectFile.forEachRead (O_DIRECT, 4 KiB, no fiber per read)
// --api read       File.read, one Effect per read (page cache, 4 KiB)
// --warmup N       reads before the measured ones (default reads / 4)
// --qd N           reads in flight (default 32)
// --file PATH      read this file instead of a fresh 64 MiB one in $TMPDIR (must be on ext4/xfs for O_DIRECT)
// --root DIR       take the packages' dist from another checkout (a baseline build)
// --callgrind      under valgrind --tool=callgrind: zero the counters when the window opens, dump when it closes
// --cpu-prof       write a V8 CPU profile of the measured reads to ./storage-cost-<api>.cpuprofile
// --alloc-prof     sampled allocations of the measured reads (every object, also those the GC
//                  already collected; V8's sampling heap profiler): bytes allocated per read in
//                  the JSON (alloc_bytes_per_read), and on stderr the functions that allocate
//                  most, per read. Load-independent, like instructions, but cheap to run.
// --trace          where a read's time goes, from the driver's side (wall clock: load-dependent;
//                  the device's own view: bench/device-depth.mjs):
//                  CQEs per completion batch, SQEs per submit, mean in-kernel depth, and per read
//                  the time staged (stage → submit), in the kernel (submit → CQE delivered) and on
//                  the host (CQE delivered → next read staged), which add up to qd ÷ IOPS
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const argv = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = argv.indexOf(name)
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt
}
const root = resolve(opt("--root", resolve(dirname(fileURLToPath(import.meta.url)), "..")))
const api = opt("--api", "readInto")
const reads = Number(opt("--reads", "100000"))
const warmup = Number(opt("--warmup", String(Math.floor(reads / 4))))
const qd = Number(opt("--qd", "32"))
const bs = 4096
const HZ = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
/** [utime, stime] of this process (all threads) in jiffies. */
const procJiffies = () => {
  const s = fs.readFileSync("/proc/self/stat", "utf8")
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ")
  return [Number(f[11]), Number(f[12])]
}

let dir
let path = opt("--file")
if (path === undefined) {
  dir = fs.mkdtempSync(join(os.tmpdir(), "ringline-storage-cost-"))
  path = join(dir, "data.bin")
  const chunk = Buffer.alloc(1 << 20)
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i)
  const fd = fs.openSync(path, "w")
  for (let i = 0; i < 64; i++) fs.writeSync(fd, chunk)
  fs.fsyncSync(fd)
  fs.closeSync(fd)
}
const blocks = Math.floor(fs.statSync(path).size / bs)

;(await import("node:v8")).setFlagsFromString("--no-allocation-site-pretenuring")
const dist = (p) => pathToFileURL(join(root, "packages", p)).href
const { Effect } = await import(dist("../node_modules/effect/dist/esm/index.js"))
const { Ringline, Ring } = await import(dist("core/dist/index.js"))
const { File, DirectFile } = await import(dist("storage/dist/index.js"))

let x = 0x9e3779b9
const offset = () => {
  x ^= x << 13
  x >>>= 0
  x ^= x >>> 17
  x ^= x << 5
  x >>>= 0
  return (x % blocks) * bs
}

// The window opens after `warmup` reads and closes `reads` reads later; the loops stop then.
// Under callgrind (--callgrind) it opens when `callgrind_control --zero` was acknowledged and
// closes when `--dump` was, so the dump holds exactly the instructions of the window's reads.
const underCallgrind = argv.includes("--callgrind")
let done = 0
let stopped = false
let phase = 0
let t0, j0, d0, t1, j1, d1
let session
const allocProf = argv.includes("--alloc-prof")
let allocs
const control = (action, then) =>
  spawn("callgrind_control", [action, String(process.pid)], { stdio: "ignore" }).on("exit", then)
const open = () => {
  d0 = done
  t0 = performance.now()
  j0 = procJiffies()
  if (argv.includes("--cpu-prof")) session.post("Profiler.start")
  if (allocProf) session.post("HeapProfiler.startSampling", { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
}
const close = () => {
  d1 = done
  t1 = performance.now()
  j1 = procJiffies()
  stopped = true
  // The in-thread inspector session answers synchronously: the window's allocations only.
  if (allocProf) session.post("HeapProfiler.stopSampling", (err, r) => (allocs = err === null ? r.profile : undefined))
}
const mark = () => {
  done++
  if (phase === 0 && done >= warmup) {
    phase = 1
    if (underCallgrind) control("--zero", open)
    else open()
  } else if (phase === 1 && d0 !== undefined && done - d0 >= reads) {
    phase = 2
    if (underCallgrind) control("--dump", close)
    else close()
  }
}

const program = Effect.gen(function*() {
  if (argv.includes("--trace")) installTrace((yield* Ring.current).driver)
  if (api === "read") {
    const f = yield* File.open(path)
    const loop = () => {
      const buf = new Uint8Array(bs)
      return Effect.suspend(function again() {
        if (stopped) return Effect.void
        return Effect.flatMap(f.read(buf, offset()), () => (mark(), Effect.suspend(again)))
      })
    }
    yield* Effect.forEach(Array.from({ length: qd }), loop, { concurrency: qd, discard: true })
    return
  }
  const f = yield* DirectFile.open(path, { readOnly: true, pool: { chunkSize: bs, chunks: qd } })
  if (api === "each") {
    function* offsets() {
      while (!stopped) yield offset()
    }
    yield* f.forEachRead(offsets(), { length: bs, concurrency: qd }, mark)
    return
  }
  const loop = () => {
    const buf = new Uint8Array(bs)
    return Effect.suspend(function again() {
      if (stopped) return Effect.void
      return Effect.flatMap(f.readInto(offset(), buf), () => (mark(), Effect.suspend(again)))
    })
  }
  yield* Effect.forEach(Array.from({ length: qd }), loop, { concurrency: qd, discard: true })
})

/**
 * Wraps the driver's staging, submit and completion entry points (not a public API: this is a
 * diagnostic) and accumulates, inside the measured window, per-read times and batch sizes.
 * SQEs the addon submits itself (at the end of a loop turn, or with the enter that fetches the
 * next completions) are seen as submitted when the ring's `submitted` counter moves, at the next
 * traced event: that over-counts their staged time and under-counts the depth. For the device's
 * own depth and latency use device-depth.mjs.
 */
let tr
const installTrace = (drv) => {
  const ctl = drv.ctl
  const now = () => performance.now()
  const n = drv.capacity
  const tStage = new Float64Array(n).fill(NaN)
  const tSubmit = new Float64Array(n).fill(NaN)
  const staged = [] // slots staged, not yet seen submitted
  let lastSubmitted = ctl[Ring.Ctl.submitted] >>> 0
  let lastEvent = now()
  let inKernel = 0
  tr = { batches: 0, cqes: 0, jsSubmits: 0, jsSubmitSqes: 0, loopSubmits: 0, loopSubmitSqes: 0, stagedMs: 0, kernelMs: 0, hostMs: 0, reads: 0, depthMs: 0, spanMs: 0, maxBatch: 0 }
  const inWindow = () => phase === 1 && d0 !== undefined
  // Time-weighted in-kernel depth (ops submitted and not yet delivered), between traced events.
  const advance = (t) => {
    if (inWindow()) {
      tr.depthMs += inKernel * (t - lastEvent)
      tr.spanMs += t - lastEvent
    }
    lastEvent = t
  }
  const submitted = (t, byJs) => {
    const s = ctl[Ring.Ctl.submitted] >>> 0
    const k = (s - lastSubmitted) >>> 0
    lastSubmitted = s
    if (k === 0) return
    if (inWindow()) {
      if (byJs) (tr.jsSubmits++, tr.jsSubmitSqes += k)
      else (tr.loopSubmits++, tr.loopSubmitSqes += k)
    }
    const moved = staged.splice(0, k)
    for (const slot of moved) tSubmit[slot] = t
    inKernel += moved.length
  }
  const sqe = drv.sqe.bind(drv)
  drv.sqe = (op, flags, fd, slot, lt) => {
    const t = now()
    advance(t)
    submitted(t, false)
    const w = sqe(op, flags, fd, slot, lt)
    tStage[slot] = t
    staged.push(slot)
    return w
  }
  const flush = drv.ring.flush.bind(drv.ring)
  Object.defineProperty(drv.ring, "flush", { value: () => {
    const t = now()
    advance(t)
    submitted(t, false)
    flush()
    submitted(t, true)
  } })
  // The host part of a read: from its CQE's delivery to the next read staged. Fibers are not
  // visible here, so each read staged is paired with the oldest delivery not yet paired.
  const delivered = []
  const dispatch = drv.dispatch.bind(drv)
  const q = drv.cqes
  drv.dispatch = (count) => {
    const t = now()
    advance(t)
    submitted(t, false)
    if (inWindow()) {
      tr.batches++
      tr.cqes += count
      if (count > tr.maxBatch) tr.maxBatch = count
    }
    for (let i = 0; i < count; i++) {
      const slot = q[i * 4]
      if (slot < 0 || Number.isNaN(tSubmit[slot])) continue
      inKernel--
      delivered.push(t)
      if (inWindow()) {
        tr.reads++
        tr.stagedMs += tSubmit[slot] - tStage[slot]
        tr.kernelMs += t - tSubmit[slot]
      }
      tSubmit[slot] = NaN
    }
    return dispatch(count)
  }
  const alloc = drv.alloc.bind(drv)
  drv.alloc = (owner, tag, terminals) => {
    if (delivered.length > 0) {
      const c = delivered.shift()
      if (inWindow()) tr.hostMs += now() - c
    }
    return alloc(owner, tag, terminals)
  }
}

if (argv.includes("--cpu-prof") || allocProf) {
  const { Session } = await import("node:inspector")
  session = new Session()
  session.connect()
  if (argv.includes("--cpu-prof")) session.post("Profiler.enable")
  if (allocProf) session.post("HeapProfiler.enable")
}
await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Ringline.layer())))
if (argv.includes("--cpu-prof")) {
  await new Promise((ok) =>
    session.post("Profiler.stop", (err, { profile }) => {
      if (err === null) fs.writeFileSync(`storage-cost-${api}.cpuprofile`, JSON.stringify(profile))
      ok()
    })
  )
}
if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
const measured = d1 - d0
/** Sampled bytes per read of the window, in total and by allocating function (top 12 to stderr). */
const allocSummary = () => {
  const by = new Map()
  let total = 0
  const walk = (n) => {
    if (n.selfSize > 0) {
      const f = n.callFrame
      const k = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-3).join("/")}:${f.lineNumber + 1}`
      by.set(k, (by.get(k) ?? 0) + n.selfSize)
      total += n.selfSize
    }
    for (const c of n.children) walk(c)
  }
  walk(allocs.head)
  for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.error(`${(v / measured).toFixed(0).padStart(6)} B/read  ${k}`)
  return Math.round(total / measured)
}
const us = (i) => (((j1[i] - j0[i]) / HZ) * 1e6) / measured
console.log(JSON.stringify({
  api,
  reads: measured,
  qd,
  wall_s: +((t1 - t0) / 1000).toFixed(3),
  iops: Math.round(measured / ((t1 - t0) / 1000)),
  cpu_us_per_read: +(us(0) + us(1)).toFixed(2),
  user_us_per_read: +us(0).toFixed(2),
  sys_us_per_read: +us(1).toFixed(2),
  load: os.loadavg().map((l) => +l.toFixed(2)),
  ...(allocs === undefined ? {} : { alloc_bytes_per_read: allocSummary() }),
  ...(tr === undefined ? {} : {
    trace: {
      cycle_us: +((((t1 - t0) * 1000) / measured) * qd).toFixed(1),
      depth_mean: +(tr.depthMs / tr.spanMs).toFixed(2),
      cqes_per_batch: +(tr.cqes / tr.batches).toFixed(2),
      max_batch: tr.maxBatch,
      js_submits: tr.jsSubmits,
      sqes_per_js_submit: +(tr.jsSubmitSqes / tr.jsSubmits).toFixed(2),
      loop_submits: tr.loopSubmits,
      sqes_per_loop_submit: +(tr.loopSubmitSqes / tr.loopSubmits).toFixed(2),
      staged_us: +((tr.stagedMs * 1000) / tr.reads).toFixed(1),
      kernel_us: +((tr.kernelMs * 1000) / tr.reads).toFixed(1),
      host_us: +((tr.hostMs * 1000) / tr.reads).toFixed(1)
    }
  })
}))

#!/usr/bin/env node
// Storage benchmark: ringline File / DirectFile vs node fs.promises (libuv threadpool, and
// UV_USE_IO_URING=1) vs fio --ioengine=io_uring, in one run. See bench/STORAGE.md.
//
//   node bench/storage.mjs --quick     # smoke run, < 1 minute
//   node bench/storage.mjs             # full run: 1 GiB file, 5 repetitions of 3 s
//
// The same file is also the worker: `node bench/storage.mjs --worker <peer> ...` runs one
// measurement in its own process (started by the orchestrator under `taskset -c 0`) and prints
// one JSON line.
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, "..")
const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

// ---------------------------------------------------------------------------------------------
// shared helpers

const argv = process.argv.slice(2)
const flag = (name) => argv.includes(name)
const opt = (name, dflt) => {
  const i = argv.indexOf(name)
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt
}

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
const machineJiffies = () => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = f[3] + (f[4] || 0)
  // Interrupt time (irq + softirq) is kept apart: block completions of O_DIRECT reads are often
  // handled on the other core, and that is part of the workload, not a disturbance.
  const irq = (f[5] || 0) + (f[6] || 0)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle - irq, irq, total }
}
/** utime + stime of a process, all threads, in jiffies (/proc/<pid>/stat fields 14, 15). */
const procJiffies = (pid) => {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ")
  return Number(f[11]) + Number(f[12])
}
/**
 * Per-thread view of a process, grouped by thread name (digits stripped): CPU seconds since each
 * thread started, the CPUs the threads may run on, and the CPUs they last ran on. Shows where
 * io_uring's kernel workers (iou-wrk-*, iou-sqp-*) and libuv's threadpool ran.
 */
const threadGroups = (pid) => {
  const groups = {}
  let tids = []
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return groups
  }
  for (const tid of tids) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
      const comm = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")).replace(/[0-9]+/g, "#")
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ")
      const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8")
      const allowed = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1]
      const g = (groups[comm] ??= { threads: 0, cpu_s: 0, allowed: [], last_cpu: [] })
      g.threads++
      g.cpu_s += (Number(f[11]) + Number(f[12])) / HZ
      if (!g.allowed.includes(allowed)) g.allowed.push(allowed)
      if (!g.last_cpu.includes(Number(f[36]))) g.last_cpu.push(Number(f[36]))
    } catch {}
  }
  return groups
}
const HZ = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()

// xorshift32: cheap, deterministic random block numbers (same sequence shape for every peer).
const rng = (seed) => {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

// ---------------------------------------------------------------------------------------------
// cases and peers

const CASES = {
  "rand4k-cached": { title: "4 KiB random reads, QD 32, page cache warm", bs: 4 * KiB, qd: 32, random: true, direct: false, unit: "IOPS" },
  "rand4k-direct": { title: "4 KiB random reads, QD 32, O_DIRECT", bs: 4 * KiB, qd: 32, random: true, direct: true, unit: "IOPS" },
  "seq1m-cached": { title: "1 MiB sequential reads, QD 4, page cache warm", bs: 1 * MiB, qd: 4, random: false, direct: false, unit: "MB/s" }
}
const PEERS = ["ringline", "ringline-each", "node-default", "node-uring", "fio"]
/** ringline's ways of reading, each measured as its own peer; ratios and targets per API. */
const RINGLINE_PEERS = ["ringline", "ringline-each"]
/** Peers that apply only to some cases: DirectFile.forEachRead exists for O_DIRECT files. */
const appliesTo = (peer, c) => peer !== "ringline-each" || c.direct
/**
 * The order peers run in within one repetition: fio between the two ringline peers, so each of
 * them runs right next to fio (the virtual disk's speed drifts within seconds: fio's own reps
 * spread 62.8-117.2k IOPS in one run), and reversed on every other rep, so that neither side of
 * a pair always runs first.
 */
const PAIR_ORDER = ["ringline", "fio", "ringline-each", "node-default", "node-uring"]
const repOrder = (peers, rep) => {
  const order = PAIR_ORDER.filter((p) => peers.includes(p))
  return rep % 2 === 0 ? order : order.reverse()
}

// ---------------------------------------------------------------------------------------------
// worker side: one peer, one case, one process

/**
 * Drives `qd` concurrent loops (each calls `readOne(worker, offset)`), and snapshots the counters
 * when the warm-up ends and when the measured window ends. Returns a closure the loops call
 * after every completed read; it returns false once the window is over.
 */
const makeMeter = (c, fileSize, warmupS, durationS) => {
  const blocks = Math.floor(fileSize / c.bs)
  const next = rng(0x9e3779b9)
  let seqBlock = 0
  const state = { ops: 0, bytes: 0, phase: 0, start: undefined, end: undefined }
  const t0 = performance.now()
  const tMeasure = t0 + warmupS * 1000
  const tEnd = tMeasure + durationS * 1000
  const snap = () => ({ t: performance.now(), ops: state.ops, bytes: state.bytes, cpu: process.cpuUsage(), proc: procJiffies(process.pid), machine: machineJiffies() })
  return {
    state,
    offset: () => {
      if (c.random) return (next() % blocks) * c.bs
      const b = seqBlock
      seqBlock = (seqBlock + 1) % blocks
      return b * c.bs
    },
    /** Record one completed read of `n` bytes; false when the loops should stop. */
    done: (n) => {
      state.ops++
      state.bytes += n
      if (state.phase === 2) return false
      const now = performance.now()
      if (state.phase === 0 && now >= tMeasure) {
        state.phase = 1
        state.start = snap()
      } else if (state.phase === 1 && now >= tEnd) {
        state.phase = 2
        state.end = snap()
        return false
      }
      return true
    },
    result: () => {
      const a = state.start
      const b = state.end
      const wall = (b.t - a.t) / 1000
      // All threads of the process, io_uring kernel workers (iou-wrk, iou-sqp) included.
      const cpuS = (b.proc - a.proc) / HZ
      const machineBusyS = (b.machine.busy - a.machine.busy) / HZ
      return {
        ops: b.ops - a.ops,
        bytes: b.bytes - a.bytes,
        wall_s: wall,
        cpu_s: cpuS,
        cpu_user_s: (b.cpu.user - a.cpu.user) / 1e6,
        cpu_sys_s: (b.cpu.system - a.cpu.system) / 1e6,
        cpu_rusage_s: (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6,
        machine_busy_s: machineBusyS,
        machine_irq_s: (b.machine.irq - a.machine.irq) / HZ,
        threads: threadGroups(process.pid)
      }
    }
  }
}

const workerNode = async (c, path, fileSize, warmupS, durationS) => {
  const { O_RDONLY, O_DIRECT } = fs.constants
  const fh = await fs.promises.open(path, c.direct ? O_RDONLY | O_DIRECT : O_RDONLY)
  // O_DIRECT needs an aligned buffer address; JS cannot ask for one, so probe for an offset into
  // one large ArrayBuffer at which a direct read succeeds.
  const big = Buffer.allocUnsafeSlow(c.bs * c.qd + 64 * KiB)
  let base = 0
  if (c.direct) {
    base = -1
    for (let o = 0; o < 64 * KiB; o += 16) {
      try {
        await fh.read(big, o, c.bs, 0)
        base = o
        break
      } catch (e) {
        if (e.code !== "EINVAL") throw e
      }
    }
    if (base < 0) throw new Error("no aligned buffer offset found for O_DIRECT")
  }
  const m = makeMeter(c, fileSize, warmupS, durationS)
  const loop = async (i) => {
    const buf = big.subarray(base + i * c.bs, base + (i + 1) * c.bs)
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, c.bs, m.offset())
      if (!m.done(bytesRead)) return
    }
  }
  await Promise.all(Array.from({ length: c.qd }, (_, i) => loop(i)))
  await fh.close()
  return { ...m.result(), uv_use_io_uring: process.env.UV_USE_IO_URING ?? null, uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? "4 (default)" }
}

const workerRingline = async (c, path, fileSize, warmupS, durationS, peer) => {
  // Same GC tuning that Ringline.runMain applies by default.
  ;(await import("node:v8")).setFlagsFromString("--no-allocation-site-pretenuring")
  const dist = (p) => pathToFileURL(join(root, "packages", p)).href
  const { Effect } = await import(dist("../node_modules/effect/dist/esm/index.js"))
  const { Ringline } = await import(dist("core/dist/index.js"))
  const { File, DirectFile } = await import(dist("storage/dist/index.js"))
  const m = makeMeter(c, fileSize, warmupS, durationS)
  let mode
  const program = Effect.gen(function*() {
    const ring = yield* Ringline.Ringline
    mode = ring.mode
    if (c.direct) {
      // One registered chunk per in-flight read (the default pool has 16 chunks of 256 KiB,
      // which would cap the queue depth at 16).
      const f = yield* DirectFile.open(path, { readOnly: true, pool: { chunkSize: Math.max(c.bs, 4096), chunks: c.qd } })
      if (peer === "ringline-each") {
        // DirectFile.forEachRead: each completion hands over its bytes (a view of the registered
        // chunk, like fio's fixed buffers: no copy) and submits the next read itself.
        let more = true
        function* offsets() {
          while (more) yield m.offset()
        }
        yield* f.forEachRead(offsets(), { length: c.bs, concurrency: c.qd }, (bytes) => {
          if (!m.done(bytes.length)) more = false
        })
        return
      }
      const loop = () => {
        // Like the other peers: each loop reads into its own buffer, reused (readInto copies
        // out of the registered chunk; read() would allocate a fresh result per read).
        const buf = new Uint8Array(c.bs)
        return Effect.suspend(function again() {
          return Effect.flatMap(f.readInto(m.offset(), buf), (n) => (m.done(n) ? Effect.suspend(again) : Effect.void))
        })
      }
      yield* Effect.forEach(Array.from({ length: c.qd }), loop, { concurrency: c.qd, discard: true })
    } else {
      const f = yield* File.open(path)
      const loop = (_, i) => {
        const buf = new Uint8Array(c.bs)
        return Effect.suspend(function again() {
          return Effect.flatMap(f.read(buf, m.offset()), (n) => (m.done(n) ? Effect.suspend(again) : Effect.void))
        })
      }
      yield* Effect.forEach(Array.from({ length: c.qd }), loop, { concurrency: c.qd, discard: true })
    }
  })
  await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Ringline.layer())))
  return { ...m.result(), ring_mode: mode }
}

if (flag("--worker")) {
  const peer = opt("--worker")
  const c = CASES[opt("--case")]
  if (opt("--qd")) c.qd = Number(opt("--qd"))
  const path = opt("--file")
  const size = Number(opt("--size"))
  const warmup = Number(opt("--warmup"))
  const duration = Number(opt("--duration"))
  const run = RINGLINE_PEERS.includes(peer) ? (...a) => workerRingline(...a, peer) : workerNode
  run(c, path, size, warmup, duration).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + "\n")
      process.exit(0)
    },
    (e) => {
      process.stderr.write(`worker ${peer}: ${e?.stack ?? e}\n`)
      process.exit(1)
    }
  )
} else {
  await main()
}

// ---------------------------------------------------------------------------------------------
// orchestrator

function hasCmd(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0
}

function runChild(cmd, args, env, timeoutMs) {
  return new Promise((res) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    // Sample the child's CPU and the machine's busy time every 100 ms (used for fio, whose
    // process we cannot instrument from inside).
    const samples = []
    let threads
    const sample = () => {
      try {
        samples.push({ t: performance.now(), proc: procJiffies(child.pid), machine: machineJiffies() })
        threads = threadGroups(child.pid)
      } catch {}
    }
    const timer = setInterval(sample, 100)
    sample()
    const kill = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (err += d))
    child.on("close", (code, signal) => {
      clearInterval(timer)
      clearTimeout(kill)
      res({ code, signal, out, err, samples, threads })
    })
  })
}

async function runNodePeer(peer, caseName, cfg) {
  const env = { UV_USE_IO_URING: peer === "node-uring" ? "1" : "0" }
  const args = ["-c", cfg.cpu, process.execPath, fileURLToPath(import.meta.url), "--worker", peer, "--case", caseName, "--file", cfg.file,
    "--size", String(cfg.size), "--warmup", String(cfg.warmup), "--duration", String(cfg.duration), "--qd", String(CASES[caseName].qd)]
  const r = await runChild("taskset", args, env, (cfg.warmup + cfg.duration + 30) * 1000)
  if (r.code !== 0) return { failed: `exit ${r.code ?? r.signal}: ${r.err.trim().split("\n").slice(-3).join(" | ")}` }
  const j = JSON.parse(r.out.trim().split("\n").pop())
  return j
}

async function runFio(caseName, cfg) {
  const c = CASES[caseName]
  const args = ["-c", cfg.cpu, "fio", "--name=bench", `--filename=${cfg.file}`, "--ioengine=io_uring", `--rw=${c.random ? "randread" : "read"}`,
    `--bs=${c.bs}`, `--iodepth=${c.qd}`, `--direct=${c.direct ? 1 : 0}`, `--size=${cfg.size}`, "--time_based", `--runtime=${Math.round(cfg.duration * 1000)}ms`,
    `--ramp_time=${Math.round(cfg.warmup * 1000)}ms`, "--thread", "--numjobs=1", "--norandommap", "--randrepeat=0", "--registerfiles=1",
    `--fixedbufs=${c.direct ? 1 : 0}`, "--invalidate=0", "--output-format=json"]
  const r = await runChild("taskset", args, {}, (cfg.warmup + cfg.duration + 60) * 1000)
  if (r.code !== 0) return { failed: `fio exit ${r.code ?? r.signal}: ${r.err.trim().split("\n").slice(-3).join(" | ")}` }
  const j = JSON.parse(r.out.slice(r.out.indexOf("{")))
  const job = j.jobs[0]
  const wall = job.job_runtime / 1000
  // fio's own usr_cpu/sys_cpu cover only its job thread (getrusage RUSAGE_THREAD), not the
  // io_uring kernel workers; so CPU comes from /proc/<fio>/stat (all threads), sampled every
  // 100 ms by the orchestrator, from the end of the ramp to the last sample, as a rate.
  const s = r.samples
  const t0 = s.length ? s[0].t + cfg.warmup * 1000 + 200 : 0
  const a = s.find((x) => x.t >= t0) ?? s[0]
  const b = s[s.length - 1]
  const span = a && b && b.t > a.t ? (b.t - a.t) / 1000 : 0
  const procRate = span ? (b.proc - a.proc) / HZ / span : 0
  const machineRate = span ? (b.machine.busy - a.machine.busy) / HZ / span : 0
  const irqRate = span ? (b.machine.irq - a.machine.irq) / HZ / span : 0
  const cpuS = procRate * wall
  return {
    ops: job.read.total_ios,
    bytes: job.read.io_bytes,
    wall_s: wall,
    cpu_s: cpuS,
    cpu_sample_span_s: span,
    fio_self_cpu_s: ((job.usr_cpu + job.sys_cpu) / 100) * wall,
    cpu_user_s: (job.usr_cpu / 100) * wall,
    cpu_sys_s: (job.sys_cpu / 100) * wall,
    machine_busy_s: span ? machineRate * wall : undefined,
    machine_irq_s: span ? irqRate * wall : undefined,
    threads: r.threads,
    fio_iops: job.read.iops,
    fio_bw_bytes: job.read.bw_bytes,
    fio_version: j["fio version"]
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? undefined : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

/**
 * `peer` ÷ `other` within each rep (the two ran next to each other, see repOrder): the median,
 * min and max of those per-rep ratios, over the reps where both ran undisturbed (over all reps
 * where both ran if none was). Less exposed than the ratio of medians to the disk's drift,
 * which moves both sides of a pair alike.
 */
function pairRatios(runs, caseName, peer, other, metric) {
  const of = (p) => runs.filter((r) => r.case === caseName && r.peer === p && !r.failed)
  const mine = of(peer)
  const theirs = of(other)
  const all = []
  for (const a of mine) {
    const b = theirs.find((x) => x.rep === a.rep)
    if (b !== undefined) all.push({ ratio: a[metric] / b[metric], quiet: !a.disturbed && !b.disturbed })
  }
  if (!all.length) return undefined
  const quiet = all.filter((x) => x.quiet)
  const use = (quiet.length ? quiet : all).map((x) => x.ratio)
  return { median: median(use), min: Math.min(...use), max: Math.max(...use), pairs: use.length }
}

function fmt(n, d = 0) {
  return n === undefined || Number.isNaN(n) ? "-" : n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
}

/** "median 0.93 (0.81–1.02, 5 pairs)" */
function fmtPairs(p) {
  return `median ${p.median.toFixed(2)} (${p.min.toFixed(2)}–${p.max.toFixed(2)}, ${p.pairs} pair${p.pairs === 1 ? "" : "s"})`
}

function svg(ratios, date) {
  const groups = Object.keys(ratios)
  const keys = ["node-default", "node-uring", "fio"]
  const colors = { "node-default": "#4e79a7", "node-uring": "#59a14f", fio: "#e15759" }
  const W = 720
  const H = 320
  const top = 40
  const bottom = 60
  const left = 50
  const maxV = Math.max(1.2, ...groups.flatMap((g) => keys.map((k) => ratios[g][k] ?? 0))) * 1.1
  const y = (v) => top + (H - top - bottom) * (1 - v / maxV)
  const gw = (W - left - 20) / groups.length
  const bw = (gw - 30) / keys.length
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`
  s += `<text x="${left}" y="20" font-size="14">ringline storage throughput ratios (${date}); dashed = parity</text>`
  s += `<line x1="${left}" y1="${y(1)}" x2="${W - 20}" y2="${y(1)}" stroke="#333" stroke-dasharray="4 3"/>`
  groups.forEach((g, gi) => {
    keys.forEach((k, ki) => {
      const v = ratios[g][k]
      if (v === undefined) return
      const x = left + gi * gw + 15 + ki * bw
      s += `<rect x="${x}" y="${y(v)}" width="${bw - 4}" height="${y(0) - y(v)}" fill="${colors[k]}"/>`
      s += `<text x="${x + (bw - 4) / 2}" y="${y(v) - 4}" text-anchor="middle">${v.toFixed(2)}</text>`
    })
    s += `<text x="${left + gi * gw + gw / 2}" y="${H - bottom + 18}" text-anchor="middle">${g}</text>`
  })
  keys.forEach((k, ki) => {
    s += `<rect x="${left + ki * 170}" y="${H - 22}" width="12" height="12" fill="${colors[k]}"/>`
    s += `<text x="${left + ki * 170 + 16}" y="${H - 12}">ringline ÷ ${k}</text>`
  })
  return s + "</svg>\n"
}

// (Declared as a function: main() is called above, before these lines run.)
function checkArgs() {
  const USAGE = `usage: node bench/storage.mjs [--quick] [--cases a,b] [--peers a,b] [--reps N] [--warmup S]
                           [--duration S] [--size-mib N] [--qd N] [--cpu C] [--dir D]`
  const FLAGS = new Set(["--quick", "--help"])
  const OPTIONS = new Set(["--cases", "--peers", "--reps", "--warmup", "--duration", "--size-mib", "--qd", "--cpu", "--dir"])
  // A mistyped option (or --help) must not start a minutes-long run on a 1 GiB file.
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (FLAGS.has(a)) continue
    if (OPTIONS.has(a) && i + 1 < argv.length) {
      i++
      continue
    }
    console.error(`${OPTIONS.has(a) ? `${a} needs a value` : `unknown argument ${a}`}\n${USAGE}`)
    process.exit(2)
  }
  if (flag("--help")) {
    console.log(`${USAGE}\ncases: ${Object.keys(CASES).join(", ")}\npeers: ${PEERS.join(", ")}`)
    process.exit(0)
  }
}

async function main() {
  checkArgs()
  const quick = flag("--quick")
  const cfg = {
    quick,
    size: Number(opt("--size-mib", quick ? 256 : 1024)) * MiB,
    // Full runs: more, shorter reps (5 × 3 s rather than 3 × 5 s) give more adjacent pairs.
    reps: Number(opt("--reps", quick ? 1 : 5)),
    warmup: Number(opt("--warmup", quick ? 0.3 : 1)),
    duration: Number(opt("--duration", quick ? 1.5 : 3)),
    cpu: opt("--cpu", "0"),
    dir: opt("--dir", os.tmpdir())
  }
  const cases = opt("--cases", Object.keys(CASES).join(",")).split(",")
  if (opt("--qd")) for (const c of Object.values(CASES)) c.qd = Number(opt("--qd"))
  let peers = opt("--peers", PEERS.join(",")).split(",")
  for (const c of cases) if (!CASES[c]) throw new Error(`unknown case ${c}; known: ${Object.keys(CASES).join(", ")}`)
  const skipped = {}
  if (!hasCmd("taskset")) throw new Error("taskset not found (util-linux): it pins every peer to one core")
  if (peers.includes("fio") && !hasCmd("fio")) {
    skipped.fio = "fio not installed (apt-get install -y fio); the fio ceiling and the fio ratios are skipped"
    peers = peers.filter((p) => p !== "fio")
  }
  if (!fs.existsSync(join(root, "packages/storage/dist/index.js"))) {
    for (const p of RINGLINE_PEERS.filter((p) => peers.includes(p))) skipped[p] = "packages/storage/dist not built (pnpm build)"
    peers = peers.filter((p) => !RINGLINE_PEERS.includes(p))
  }
  for (const [p, why] of Object.entries(skipped)) console.error(`SKIP ${p}: ${why}`)

  const dir = fs.mkdtempSync(join(cfg.dir, "ringline-storage-bench-"))
  const fsType = (() => {
    try {
      return execFileSync("stat", ["-f", "-c", "%T", dir], { encoding: "utf8" }).trim()
    } catch {
      return "unknown"
    }
  })()
  cfg.file = join(dir, "data.bin")
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true })
  process.on("SIGINT", () => {
    cleanup()
    process.exit(130)
  })
  const runs = []
  try {
    // The data file: pseudo-random contents (a 16 MiB random block repeated), fsynced so
    // O_DIRECT reads hit the device, then read once so buffered cases run from the page cache.
    const t0 = performance.now()
    {
      const block = Buffer.alloc(16 * MiB)
      const r = rng(12345)
      for (let i = 0; i < block.length; i += 4) block.writeUInt32LE(r(), i)
      const fd = fs.openSync(cfg.file, "w")
      for (let off = 0; off < cfg.size; off += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, cfg.size - off), off)
      fs.fsyncSync(fd)
      fs.closeSync(fd)
    }
    const warmCache = () => spawnSync("sh", ["-c", `cat '${cfg.file}' > /dev/null`])
    warmCache()
    console.error(`file ${cfg.file} (${cfg.size / MiB} MiB on ${fsType}) ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    const caseSkips = {}
    if (cases.includes("rand4k-direct") && !/ext|xfs|btrfs/.test(fsType)) caseSkips["rand4k-direct"] = `${fsType} is not a block-device filesystem`

    for (const caseName of cases) {
      if (caseSkips[caseName]) {
        console.error(`SKIP ${caseName}: ${caseSkips[caseName]}`)
        continue
      }
      const c = CASES[caseName]
      for (let rep = 0; rep < cfg.reps; rep++) {
        for (const peer of repOrder(peers, rep)) {
          if (!appliesTo(peer, c)) continue
          if (!c.direct) warmCache()
          const r = peer === "fio" ? await runFio(caseName, cfg) : await runNodePeer(peer, caseName, cfg)
          const run = { case: caseName, peer, rep, ...r }
          if (!r.failed) {
            run.iops = r.ops / r.wall_s
            run.mbps = r.bytes / r.wall_s / 1e6
            run.cpu_pct = (100 * r.cpu_s) / r.wall_s
            run.cpu_us_per_op = (1e6 * r.cpu_s) / r.ops
            run.other_cores = r.machine_busy_s === undefined ? undefined : Math.max(0, (r.machine_busy_s - r.cpu_s) / r.wall_s)
            run.irq_cores = r.machine_irq_s === undefined ? undefined : r.machine_irq_s / r.wall_s
            run.disturbed = run.other_cores !== undefined && run.other_cores >= 0.15
          }
          runs.push(run)
          console.error(
            r.failed
              ? `${caseName} rep ${rep + 1}/${cfg.reps} ${peer}: FAILED ${r.failed}`
              : `${caseName} rep ${rep + 1}/${cfg.reps} ${peer.padEnd(13)} ${fmt(run.iops).padStart(9)} IOPS ${fmt(run.mbps).padStart(7)} MB/s  CPU ${fmt(run.cpu_pct)}%  other ${fmt(run.other_cores ?? NaN, 2)} irq ${fmt(run.irq_cores ?? NaN, 2)} cores${run.disturbed ? "  DISTURBED" : ""}`
          )
        }
      }
    }
  } finally {
    cleanup()
  }

  // summary: medians over undisturbed runs when there are any
  const summary = {}
  for (const caseName of cases) {
    summary[caseName] = {}
    for (const peer of peers) {
      const all = runs.filter((r) => r.case === caseName && r.peer === peer && !r.failed)
      if (!all.length) continue
      const quiet = all.filter((r) => !r.disturbed)
      const use = quiet.length ? quiet : all
      const metric = CASES[caseName].unit === "MB/s" ? "mbps" : "iops"
      summary[caseName][peer] = {
        runs: all.length,
        used: use.length,
        all_disturbed: quiet.length === 0,
        iops: median(use.map((r) => r.iops)),
        mbps: median(use.map((r) => r.mbps)),
        min: Math.min(...use.map((r) => r[metric])),
        max: Math.max(...use.map((r) => r[metric])),
        cpu_pct: median(use.map((r) => r.cpu_pct)),
        cpu_us_per_op: median(use.map((r) => r.cpu_us_per_op)),
        other_cores: median(use.map((r) => r.other_cores ?? 0)),
        irq_cores: median(use.map((r) => r.irq_cores ?? 0))
      }
    }
  }
  // ratios[case] for the per-read API ("ringline"); ratiosByApi[peer][case] for every ringline peer.
  const ratiosByApi = {}
  for (const rp of RINGLINE_PEERS) {
    ratiosByApi[rp] = {}
    for (const caseName of Object.keys(summary)) {
      const s = summary[caseName]
      const metric = CASES[caseName].unit === "MB/s" ? "mbps" : "iops"
      if (!s[rp]) continue
      const r = (ratiosByApi[rp][caseName] = {})
      for (const p of ["node-default", "node-uring", "fio"]) if (s[p]) r[p] = s[rp][metric] / s[p][metric]
      r.cpu_per_op_vs_node_default = s["node-default"] ? s[rp].cpu_us_per_op / s["node-default"].cpu_us_per_op : undefined
      const pairs = pairRatios(runs, caseName, rp, "fio", metric)
      if (pairs !== undefined) r.fio_pairs = pairs
    }
  }
  const ratios = ratiosByApi.ringline
  const verdict = (ok) => (ok === undefined ? "n/a" : ok ? "MET" : "NOT MET")
  const targets = []
  if (ratios["rand4k-cached"]) {
    const r = ratios["rand4k-cached"]
    const cores = summary["rand4k-cached"].ringline.cpu_pct / 100
    targets.push({ case: "rand4k-cached", target: "≥ 2.5× node default", value: r["node-default"], met: r["node-default"] === undefined ? undefined : r["node-default"] >= 2.5 })
    targets.push({ case: "rand4k-cached", target: "≥ 60 % of fio on ≤ 1 core", value: r.fio, cores, met: r.fio === undefined ? undefined : r.fio >= 0.6 && cores <= 1.005 })
  }
  for (const [rp, api] of [["ringline", "read per Effect"], ["ringline-each", "forEachRead"]]) {
    const r = ratiosByApi[rp]["rand4k-direct"]
    if (r) targets.push({ case: "rand4k-direct", target: `≥ 90 % of fio (${api})`, value: r.fio, pairs: r.fio_pairs, met: r.fio === undefined ? undefined : r.fio >= 0.9 })
  }
  if (ratios["seq1m-cached"]) {
    const r = ratios["seq1m-cached"]
    const nodeBest = Math.min(...["node-default", "node-uring"].filter((p) => r[p] !== undefined).map((p) => r[p]))
    targets.push({ case: "seq1m-cached", target: "≥ node (both node peers)", value: Number.isFinite(nodeBest) ? nodeBest : undefined, met: Number.isFinite(nodeBest) ? nodeBest >= 1 : undefined })
  }

  // table
  const out = []
  for (const caseName of Object.keys(summary)) {
    const c = CASES[caseName]
    const s = summary[caseName]
    if (!Object.keys(s).length) continue
    out.push(`== ${caseName}: ${c.title} (median of ${cfg.reps}${cfg.reps > 1 ? ", min–max of " + c.unit : ""})`)
    out.push(`${"peer".padEnd(14)}${"IOPS".padStart(11)}${"MB/s".padStart(9)}  ${"min–max".padEnd(20)}${"CPU%".padStart(6)}${"µsCPU/op".padStart(10)}${"other".padStart(7)}${"irq".padStart(6)}${"÷fio".padStart(7)}`)
    for (const p of peers) {
      const v = s[p]
      if (!v) continue
      const metric = c.unit === "MB/s" ? "mbps" : "iops"
      const vsFio = s.fio ? v[metric] / s.fio[metric] : undefined
      out.push(
        `${p.padEnd(14)}${fmt(v.iops).padStart(11)}${fmt(v.mbps).padStart(9)}  ${`${fmt(v.min)}–${fmt(v.max)}`.padEnd(20)}${fmt(v.cpu_pct).padStart(6)}${fmt(v.cpu_us_per_op, 2).padStart(10)}${fmt(v.other_cores, 2).padStart(7)}${fmt(v.irq_cores, 2).padStart(6)}${(vsFio === undefined ? "-" : vsFio.toFixed(2)).padStart(7)}${v.all_disturbed ? "  DISTURBED" : ""}`
      )
    }
    for (const rp of RINGLINE_PEERS) {
      const r = ratiosByApi[rp][caseName]
      if (!r) continue
      out.push(
        `  ${rp} ratio: ÷node-default ${r["node-default"]?.toFixed(2) ?? "-"}  ÷node-uring ${r["node-uring"]?.toFixed(2) ?? "-"}  ÷fio ${r.fio?.toFixed(2) ?? "-"}  (CPU/op ÷node-default ${r.cpu_per_op_vs_node_default?.toFixed(2) ?? "-"})`
      )
      if (r.fio_pairs) out.push(`  ${rp} ÷fio per adjacent pair: ${fmtPairs(r.fio_pairs)}`)
    }
    out.push("")
  }
  if (targets.length) {
    out.push("== targets")
    for (const t of targets) {
      out.push(`${t.case.padEnd(15)}${t.target.padEnd(34)}${(t.value === undefined ? "-" : t.value.toFixed(2)).padStart(6)}  ${verdict(t.met)}${t.cores !== undefined ? `  (ringline used ${t.cores.toFixed(2)} cores)` : ""}${t.pairs ? `  (per pair: ${fmtPairs(t.pairs)})` : ""}`)
    }
  }
  for (const [p, why] of Object.entries(skipped)) out.push(`skipped ${p}: ${why}`)
  const anyDisturbed = runs.some((r) => r.disturbed)
  if (anyDisturbed) out.push("WARNING: some runs were DISTURBED (other processes used ≥ 0.15 core during the window); rerun on a quiet machine")
  console.log(out.join("\n"))

  const date = new Date().toISOString().slice(0, 10)
  const resultsDir = join(here, "results")
  fs.mkdirSync(resultsDir, { recursive: true })
  const machine = {
    kernel: os.release(),
    node: process.version,
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model,
    mem_gib: +(os.totalmem() / GiB).toFixed(1),
    fs: fsType,
    loadavg: os.loadavg(),
    clk_tck: HZ
  }
  const json = { date: new Date().toISOString(), config: { ...cfg, cases, peers, cases_def: CASES }, machine, skipped, runs, summary, ratios, ratios_by_api: ratiosByApi, targets }
  const name = `storage-${date}${quick ? "-quick" : ""}`
  fs.writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(json, null, 2) + "\n")
  const chart = { ...ratios }
  const each = ratiosByApi["ringline-each"]["rand4k-direct"]
  if (each) chart["rand4k-direct (forEachRead)"] = each
  if (Object.keys(chart).length) fs.writeFileSync(join(resultsDir, `${name}.svg`), svg(chart, date))
  console.error(`wrote bench/results/${name}.json${Object.keys(ratios).length ? ` and ${name}.svg` : ""}`)
  if (runs.some((r) => r.failed)) process.exitCode = 1
}

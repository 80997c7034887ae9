#!/usr/bin/env node
// run.mjs — orchestrator for the ringline echo benchmark suite.
//
// Builds the C programs (bench/bin/, gitignored), then for every server and
// case: starts the server pinned to CPU 0, waits for its "listening on" line,
// drives it with bench/bin/loadgen pinned to CPU 1, and samples the server's
// CPU time and RSS from /proc at the loadgen's phase markers. Prints a
// progress line per run on stderr, a summary table on stdout, and writes
// bench/results/<YYYY-MM-DD>.json (raw runs + summary) and .svg (ratio chart); --quick runs
// write <YYYY-MM-DD>-quick.{json,svg}.
//
// Run:  node bench/run.mjs [--quick] [--servers a,b] [--cases x,y]
//                          [--reps N] [--warmup S] [--duration S] [--noisy-reps N]
//       (or `pnpm bench` from the workspace root). See bench/README.md.
//
// Plain Node ESM with no dependencies (bench/child.mjs is node: modules only), so it runs before
// `pnpm install`.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { lines, treeSwitches } from "./child.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const BIN = path.join(BENCH, "bin");
const RESULTS = path.join(BENCH, "results");
const ECHO_JS = path.join(ROOT, "packages/core/dist/bin/echo.js");
const SERVER_CPU = "0";
const CLIENT_CPU = "1";

// ---------------------------------------------------------------- options --
const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    servers: { type: "string" },
    cases: { type: "string" },
    reps: { type: "string" },
    warmup: { type: "string" },
    duration: { type: "string" },
    "noisy-reps": { type: "string" },
    // Flags for every Node server (ringline's, node:net's, the platform ones, cluster and its
    // children alike). Default: the README's recommendation for latency-sensitive servers
    // ("Many idle connections"): V8's young generation capped at 4 MB semi-spaces, which the
    // `effect` import otherwise grows to 16 MB (bench/README "Stream mode's d16 tail").
    // node:net's young generation stays ~1 MB, so the cap does not touch it; `--node-flags=`
    // runs every server with Node's defaults.
    "node-flags": { type: "string", default: "--max-semi-space-size=4" },
    help: { type: "boolean", short: "h", default: false },
  },
});

// ------------------------------------------------------------------ cases --
// primary: the throughput metric ratios are computed on (requests/s for
// request/response, MB/s for streaming).
const CASES = [
  { name: "echo64-c50-d1", title: "64 B echo, 50 conns, depth 1", mode: "rr", size: 64, conns: 50, depth: 1, primary: "rps" },
  { name: "echo64-c50-d16", title: "64 B echo, 50 conns, depth 16", mode: "rr", size: 64, conns: 50, depth: 16, primary: "rps" },
  { name: "echo16k-c16-d1", title: "16 KiB echo, 16 conns, depth 1", mode: "rr", size: 16384, conns: 16, depth: 1, primary: "rps" },
  // Bulk: 64 KiB writes, at most 4 writes (256 KiB) un-echoed per connection.
  { name: "bulk-c1", title: "bulk stream, 1 conn, 64 KiB writes", mode: "bulk", size: 65536, conns: 1, depth: 4, primary: "mbps" },
  { name: "bulk-c16", title: "bulk stream, 16 conns, 64 KiB writes", mode: "bulk", size: 65536, conns: 16, depth: 4, primary: "mbps" },
  // Always a fresh server: memory per connection needs a clean baseline.
  { name: "idle1000", title: "1000 idle conns + 50 active 64 B, depth 1", mode: "rr", size: 64, conns: 50, depth: 1, idle: 1000, primary: "rps", fresh: true },
  // Thread-per-core: its own servers (WORKER_SERVERS) and phase, see runWorkersCase.
  { name: "workers", title: "64 B echo, 50 conns, depth 16, 1 vs 2 workers", mode: "rr", size: 64, conns: 50, depth: 16, primary: "rps", workers: true },
];

// ---------------------------------------------------------------- servers --
const resolveFrom = createRequire(path.join(BENCH, "servers", "x.mjs"));
const missingModules = (names) =>
  names.filter((n) => {
    try {
      resolveFrom.resolve(n);
      return false;
    } catch {
      return true;
    }
  });
const ringlineCheck = () =>
  fs.existsSync(ECHO_JS) ? null : `${path.relative(ROOT, ECHO_JS)} not found (build packages/core first)`;

// The node command line every Node server starts with (see --node-flags).
const NODE = [process.execPath, ...opts["node-flags"].split(" ").filter(Boolean)];

const SERVERS = [
  { name: "ringline", cmd: (p) => [...NODE, ECHO_JS, "--port", p], check: ringlineCheck },
  { name: "ringline-parse", cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--mode", "parse"], check: ringlineCheck },
  // Listener.serveChunks: no fiber per connection (the idle-memory design).
  { name: "ringline-chunks", cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--mode", "chunks"], check: ringlineCheck },
  { name: "node-net", cmd: (p) => [...NODE, path.join(BENCH, "servers/node-net-echo.mjs"), "--port", p], check: () => null },
  {
    name: "platform-node",
    cmd: (p) => [...NODE, path.join(BENCH, "servers/platform-node-echo.mjs"), "--port", p],
    check: () => {
      const miss = missingModules(["effect", "@effect/platform", "@effect/platform-node"]);
      return miss.length ? `cannot resolve ${miss.join(", ")} (root devDependencies; run pnpm install)` : null;
    },
  },
  {
    // The same Effect echo handler as platform-node, on RinglineSocketServer.
    name: "platform-ringline",
    cmd: (p) => [...NODE, path.join(BENCH, "servers/platform-ringline-echo.mjs"), "--port", p],
    check: () => ringlineCheck() ?? (missingModules(["effect", "@effect/platform"]).length ? "cannot resolve effect, @effect/platform (run pnpm install)" : null),
  },
  { name: "c-uring", cmd: (p) => [path.join(BIN, "uring-echo"), p], check: () => null },
];
const RINGLINES = ["ringline", "ringline-parse", "ringline-chunks", "platform-ringline"];
const BASELINES = ["node-net", "platform-node", "c-uring"];
// Which baselines each ringline server's ratios are printed against: the platform socket is
// compared with the platform socket on node:net (and the C ceiling), not with raw node:net.
const COMPARED = { "platform-ringline": ["platform-node", "c-uring"] };
const comparedWith = (a) => COMPARED[a] ?? BASELINES;

// -------------------------------------------------------- workers servers --
// Thread-per-core: ringline on 1 thread (the plain server) and on 2 pinned workers (SO_REUSEPORT,
// and acceptor mode; stream and serveChunks), against node:net on node:cluster with 1 and 2 processes. Server and
// loadgen are NOT pinned apart here: on a 2-core machine the workers need both cores, so they
// share them with the loadgen. CPU per request counts every thread and child process.
const WORKER_SERVERS = [
  { name: "ringline-w1", workers: 1, unpinned: true, cmd: (p) => [...NODE, ECHO_JS, "--port", p], check: ringlineCheck },
  { name: "ringline-w2", workers: 2, unpinned: true, cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--workers", "2"], check: ringlineCheck },
  {
    name: "ringline-w2-free", workers: 2, unpinned: true,
    cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--workers", "2", "--no-pin"], check: ringlineCheck,
  },
  {
    name: "ringline-w2-acc", workers: 2, unpinned: true,
    cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--workers", "2", "--acceptor"], check: ringlineCheck,
  },
  // One thread held on CPU 0 (taskset: the whole process, its helper threads too), as a pinned
  // worker is: the like-for-like 1-worker reference of the pinned 2-worker rows. Left to the
  // scheduler, the one thread mostly runs on the loadgen's CPU (wake-affine), which a second
  // worker cannot (bench/README.md, "Placement").
  { name: "ringline-w1-pin", workers: 1, unpinned: true, cmd: (p) => pinned("0", [...NODE, ECHO_JS, "--port", p]), check: ringlineCheck },
  // The same with Listener.serveChunks / RinglineWorkers.serveChunks (no fiber per connection).
  { name: "ringline-w1-chunks", workers: 1, unpinned: true, cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--mode", "chunks"], check: ringlineCheck },
  {
    name: "ringline-w1-chunks-pin", workers: 1, unpinned: true,
    cmd: (p) => pinned("0", [...NODE, ECHO_JS, "--port", p, "--mode", "chunks"]), check: ringlineCheck,
  },
  {
    name: "ringline-w2-chunks", workers: 2, unpinned: true,
    cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--workers", "2", "--mode", "chunks"], check: ringlineCheck,
  },
  {
    name: "ringline-w2-chunks-free", workers: 2, unpinned: true,
    cmd: (p) => [...NODE, ECHO_JS, "--port", p, "--workers", "2", "--mode", "chunks", "--no-pin"], check: ringlineCheck,
  },
  { name: "cluster-w1", workers: 1, unpinned: true, cmd: (p) => [...NODE, path.join(BENCH, "servers/node-cluster-echo.mjs"), "--port", p, "--workers", "1"], check: () => null },
  { name: "cluster-w2", workers: 2, unpinned: true, cmd: (p) => [...NODE, path.join(BENCH, "servers/node-cluster-echo.mjs"), "--port", p, "--workers", "2"], check: () => null },
  // The control with no JavaScript and no cross-worker code: the C server on 1 or 2 threads, each
  // with its own ring and SO_REUSEPORT listener (bench/uring-echo.c --threads), placed like the
  // ringline rows (--pin: thread i on CPU i; -w1-pin: the one thread on CPU 0). If its CPU per
  // request rises from 1 to 2 threads like ringline's does, the rise is the machine's.
  ...[
    ["c-uring-w1", 1, false],
    ["c-uring-w1-pin", 1, true],
    ["c-uring-w2", 2, true],
    ["c-uring-w2-free", 2, false],
  ].map(([name, n, pin]) => ({
    name, workers: n, unpinned: true,
    cmd: (p) => [path.join(BIN, "uring-echo"), p, "--threads", String(n), ...(pin ? ["--pin"] : [])],
    check: () => uringErr,
  })),
];

if (opts.help) {
  console.log(`usage: node bench/run.mjs [--quick] [--servers a,b] [--cases x,y] [--reps N]
                         [--warmup SECS] [--duration SECS] [--noisy-reps N]
                         [--node-flags="FLAGS"]  (every Node server; default ${opts["node-flags"]})
servers: ${SERVERS.map((s) => s.name).join(", ")}
workers case servers (--servers narrows them too): ${WORKER_SERVERS.map((s) => s.name).join(", ")}
cases:   ${CASES.map((c) => c.name).join(", ")}`);
  process.exit(0);
}

const pickList = (arg, all, what) => {
  if (!arg) return all;
  const want = arg.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = want.filter((w) => !all.some((x) => x.name === w));
  if (unknown.length) {
    console.error(`unknown ${what}: ${unknown.join(", ")} (known: ${all.map((x) => x.name).join(", ")})`);
    process.exit(2);
  }
  return all.filter((x) => want.includes(x.name));
};
// --servers names matrix servers and workers-case servers alike; naming none of the latter runs
// every workers-case server (and naming only those runs no matrix server).
const named = pickList(opts.servers, [...SERVERS, ...WORKER_SERVERS], "server");
const servers = SERVERS.filter((s) => named.includes(s));
const workerServers = WORKER_SERVERS.some((s) => named.includes(s)) ? WORKER_SERVERS.filter((s) => named.includes(s)) : WORKER_SERVERS;
const picked = pickList(opts.cases, CASES, "case");
const cases = picked.filter((c) => !c.workers);
const workerCases = picked.filter((c) => c.workers);
const num = (v, d) => (v === undefined ? d : Number(v));
const cfg = {
  quick: opts.quick,
  reps: num(opts.reps, opts.quick ? 1 : 3),
  warmup: num(opts.warmup, opts.quick ? 0.3 : 1),
  duration: num(opts.duration, opts.quick ? 1 : 5),
  // Full mode restarts the server for every run so runs are independent;
  // quick mode keeps one process per server (except for `fresh` cases) to
  // stay within a minute — Node servers take a second or more to start/stop.
  freshEveryRun: !opts.quick,
  // Extra repetitions for a server whose repetitions of a case disagree (see NOISY below): more
  // samples of each of its modes, so a median is not one mode picked by chance.
  noisyReps: num(opts["noisy-reps"], opts.quick ? 0 : 2),
};
for (const k of ["reps", "warmup", "duration", "noisyReps"])
  if (!Number.isFinite(cfg[k]) || cfg[k] < 0 || (k !== "warmup" && k !== "noisyReps" && cfg[k] <= 0)) {
    console.error(`bad --${k === "noisyReps" ? "noisy-reps" : k}`);
    process.exit(2);
  }

// ------------------------------------------------------------------ build --
function build(out, src, libs) {
  const bin = path.join(BIN, out);
  const source = path.join(BENCH, src);
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(source).mtimeMs) return null;
  fs.mkdirSync(BIN, { recursive: true });
  const args = ["-O2", "-Wall", "-o", bin, source, ...libs];
  process.stderr.write(`build: gcc ${args.map((a) => path.relative(ROOT, a) || a).join(" ")}\n`);
  try {
    execFileSync("gcc", args, { stdio: ["ignore", "inherit", "pipe"] });
    return null;
  } catch (e) {
    return `gcc failed for ${src}: ${String(e.stderr || e.message).trim().split("\n").slice(-3).join(" | ")}`;
  }
}

const loadgenErr = build("loadgen", "loadgen.c", ["-lm"]);
if (loadgenErr) {
  console.error(loadgenErr);
  process.exit(1);
}
const uringErr = build("uring-echo", "uring-echo.c", ["-pthread", "-luring"]);

const skipped = {};
const active = [];
for (const s of servers) {
  const reason = s.name === "c-uring" && uringErr ? uringErr : s.check();
  if (reason) {
    skipped[s.name] = reason;
    process.stderr.write(`skip ${s.name}: ${reason}\n`);
  } else active.push(s);
}

// io_uring can be switched off machine-wide (tests of ringline's fallback
// path do this); every io_uring server would then fail to start.
try {
  const v = fs.readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8").trim();
  if (v !== "0") process.stderr.write(`warning: kernel.io_uring_disabled=${v}; ringline and c-uring will probably fail to start\n`);
} catch {}

// Pinning server and client to different cores keeps them from competing
// for one CPU; without taskset or a second core we run unpinned and say so.
const haveTaskset = (() => {
  try {
    execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
})();
if (!haveTaskset) process.stderr.write("warning: taskset or a second CPU is missing; running unpinned\n");
const pinned = (cpu, argv) => (haveTaskset ? ["taskset", "-c", cpu, ...argv] : argv);

// ------------------------------------------------------------ /proc utils --
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
  } catch {
    return 100;
  }
})();
// utime + stime of the whole process (all threads) and of its live child processes (node:cluster
// workers), in seconds. taskset execs the real program, so the spawned pid is the program's pid.
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let s = (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14, 15
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      for (const kid of kids ? kids.split(" ") : []) s += cpuSeconds(Number(kid)) || 0;
    }
    return s;
  } catch {
    return NaN;
  }
}
// The same CPU seconds by kind of thread, for the workers case: the process's main thread,
// its JS worker threads (ringline's: the thread ids the demo prints, `workerTids`; node:cluster's
// workers are child processes, counted by their main threads) and helper threads (V8's GC and
// compiler threads, libuv's pool). Only meaningful for servers that are not pinned with taskset.
function threadSplit(pid, workerTids = new Set(), child = false, out = { main: 0, workers: 0, helpers: 0 }) {
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const task = `/proc/${pid}/task/${tid}`;
      const stat = fs.readFileSync(`${task}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const s = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
      if (Number(tid) === pid) out[child ? "workers" : "main"] += s;
      else if (workerTids.has(Number(tid))) out.workers += s;
      else out.helpers += s;
      const kids = fs.readFileSync(`${task}/children`, "utf8").trim();
      for (const kid of kids ? kids.split(" ") : []) threadSplit(Number(kid), workerTids, true, out);
    }
  } catch {}
  return out;
}
// The worker thread ids a ringline demo printed ("ringline: N workers (mode), thread ids a,b").
function workerTids(h) {
  const line = h.log.find((l) => /thread ids [\d,]+/.test(l));
  return new Set(line ? /thread ids ([\d,]+)/.exec(line)[1].split(",").map(Number) : []);
}
// Requests each ringline (or C) worker served, from the demo's shutdown summary (uring-echo prints
// the same shape) (64 B requests, so
// bytesIn / 64; warm-up included): the share of the busiest worker shows the balance.
function workerRequests(h) {
  return h.log.flatMap((l) => {
    const m = /^(?:ringline|c-uring) worker (\d+): .*bytesIn=(\d+)/.exec(l);
    return m ? [Number(m[2]) / 64] : [];
  });
}
// Ring completions, submissions and wake-ups per request over the whole run (warm-up included),
// summed over the demo's shutdown summary lines (one per worker, or the single-thread one): the
// ring's work per request, which the machine's load does not change (bench/README.md).
function ringPerRequest(h) {
  const sum = { cqes: 0, submitted: 0, wakeups: 0, requests: 0 };
  for (const l of h.log) {
    if (!/^(?:ringline|c-uring)( worker \d+)?: /.test(l)) continue;
    for (const k of ["cqes", "submitted", "wakeups"]) sum[k] += Number(new RegExp(`\\b${k}=(\\d+)`).exec(l)?.[1] ?? 0);
    sum.requests += Number(/bytesIn=(\d+)/.exec(l)?.[1] ?? 0) / 64;
  }
  if (sum.requests === 0) return undefined;
  return { cqes: sum.cqes / sum.requests, submits: sum.submitted / sum.requests, wakeups: sum.wakeups / sum.requests };
}
// Context switches of every thread and child process (bench/child.mjs), which the workers case
// compares per request across ringline, node:cluster and the C control; 0s if the process is gone.
function ctxSwitches(pid) {
  try {
    return treeSwitches(pid);
  } catch {
    return { vol: 0, invol: 0 };
  }
}
// Busy CPU seconds of the whole machine (all cores). Whatever the server and
// loadgen did not use of it was someone else: a build or test run sharing
// this 2-core box skews every number, so it is reported per run.
function machineBusySeconds() {
  try {
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + steal) / CLK_TCK;
  } catch {
    return NaN;
  }
}
// Read- and write-family syscalls of the whole process (all threads), from /proc/<pid>/io:
// how node:net receives a 16 KiB request (one read() or several) is what makes its CPU per
// request multi-modal (bench/README.md, "Noisy peers"); io_uring servers make almost none.
function ioCalls(pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/io`, "utf8");
    // Voluntary context switches of the main thread: how often the event loop went to sleep
    // (each sleep and wake-up is CPU a busier loop does not spend).
    const st = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      // Kernel-mode CPU seconds (all threads): on loopback the kernel's TCP work for both ends of
      // a send is charged to the sender, so this is where a change of receive pattern shows.
      sys: Number(f[12]) / CLK_TCK,
      r: Number(/syscr:\s+(\d+)/.exec(t)[1]),
      w: Number(/syscw:\s+(\d+)/.exec(t)[1]),
      sleeps: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)[1]),
    };
  } catch {
    return null;
  }
}
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Calls onLine for every complete line written to a stream.
// ---------------------------------------------------------------- servers --
async function startServer(server) {
  const port = await freePort();
  const argv = server.unpinned ? server.cmd(String(port)) : pinned(SERVER_CPU, server.cmd(String(port)));
  const proc = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const h = { server, proc, pid: proc.pid, port, exited: false, log: [] };
  const keep = (l) => {
    h.log.push(l);
    if (h.log.length > 20) h.log.shift();
  };
  lines(proc.stderr, keep);
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no 'listening on' line within 30 s")), 30000);
    lines(proc.stdout, (l) => {
      keep(l);
      if (/listening on /.test(l)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on("exit", (code, sig) => {
      h.exited = true;
      clearTimeout(timer);
      reject(new Error(`exited (${sig ?? code}) before listening`));
    });
  });
  h.exitPromise = new Promise((r) => proc.on("exit", r));
  try {
    await ready;
  } catch (e) {
    if (!h.exited) proc.kill("SIGKILL");
    throw new Error(`${server.name}: ${e.message}\n  ${h.log.join("\n  ")}`);
  }
  return h;
}

// SIGTERM first (all servers are expected to exit on it); SIGKILL after a
// grace period so a hung shutdown can't stall the suite.
async function stopServer(h) {
  if (h.exited) return;
  h.proc.kill("SIGTERM");
  const t = setTimeout(() => h.proc.kill("SIGKILL"), 3000);
  await h.exitPromise;
  clearTimeout(t);
}

// ------------------------------------------------------------------- runs --
function runLoadgen(h, c) {
  const args = [
    "--host", "127.0.0.1", "--port", String(h.port), "--mode", c.mode,
    "--conns", String(c.conns), "--size", String(c.size), "--depth", String(c.depth),
    "--idle", String(c.idle ?? 0), "--warmup", String(cfg.warmup), "--duration", String(cfg.duration),
    "--label", `${h.server.name}/${c.name}`,
  ];
  const argv = h.server.unpinned ? [path.join(BIN, "loadgen"), ...args] : pinned(CLIENT_CPU, [path.join(BIN, "loadgen"), ...args]);
  const lg = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  const m = { rssBase: rssKiB(h.pid) };
  const errLog = [];
  let out = "";
  lg.stdout.setEncoding("utf8");
  lg.stdout.on("data", (d) => (out += d));
  // Sample at the loadgen's own phase boundaries so CPU time covers exactly
  // the measured window (not connection setup or warm-up).
  lines(lg.stderr, (l) => {
    if (l.startsWith("#idle-ready")) m.rssIdle = rssKiB(h.pid);
    else if (l === "#measure-start") {
      m.t0 = performance.now();
      m.cpu0 = cpuSeconds(h.pid);
      m.io0 = ioCalls(h.pid);
      if (h.server.unpinned) {
        m.split0 = threadSplit(h.pid, workerTids(h));
        m.sw0 = ctxSwitches(h.pid);
      }
      m.lgCpu0 = cpuSeconds(lg.pid);
      m.busy0 = machineBusySeconds();
    } else if (l === "#measure-end") {
      m.t1 = performance.now();
      m.cpu1 = cpuSeconds(h.pid);
      m.io1 = ioCalls(h.pid);
      if (h.server.unpinned) {
        m.split1 = threadSplit(h.pid, workerTids(h));
        m.sw1 = ctxSwitches(h.pid);
      }
      m.lgCpu1 = cpuSeconds(lg.pid);
      m.busy1 = machineBusySeconds();
      m.rssLoad = rssKiB(h.pid);
    } else if (!l.startsWith("#")) errLog.push(l);
  });
  const limit = (cfg.warmup + cfg.duration + 60) * 1000;
  return new Promise((resolve) => {
    const timer = setTimeout(() => lg.kill("SIGKILL"), limit);
    lg.on("exit", (code, sig) => {
      clearTimeout(timer);
      let res = null;
      try {
        res = JSON.parse(out.trim().split("\n").pop());
      } catch {}
      resolve({ code, sig, res, m, errLog });
    });
  });
}

function makeRecord(h, c, rep, lr) {
  const { res, m } = lr;
  const r = { server: h.server.name, case: c.name, rep, port: h.port, ok: false };
  if (!res || m.t1 === undefined) {
    r.failure = `loadgen exit ${lr.sig ?? lr.code}: ${lr.errLog.slice(-3).join(" | ")}`;
    return r;
  }
  const windowS = (m.t1 - m.t0) / 1000;
  const cpuS = m.cpu1 - m.cpu0;
  Object.assign(r, {
    ok: res.errors === 0 && lr.code === 0,
    rps: res.rps, mbps: res.mbps,
    p50_us: res.p50_us, p99_us: res.p99_us, p999_us: res.p999_us, max_us: res.max_us,
    requests: res.requests, errors: res.errors,
    window_s: +windowS.toFixed(4),
    server_cpu_pct: +((cpuS / windowS) * 100).toFixed(1),
    server_cpu_us_per_req: res.requests ? +((cpuS * 1e6) / res.requests).toFixed(3) : null,
    ...(m.io0 && m.io1 && res.requests
      ? { reads_per_req: +((m.io1.r - m.io0.r) / res.requests).toFixed(3), writes_per_req: +((m.io1.w - m.io0.w) / res.requests).toFixed(3),
          sleeps_per_req: +((m.io1.sleeps - m.io0.sleeps) / res.requests).toFixed(3),
          server_sys_us_per_req: +(((m.io1.sys - m.io0.sys) * 1e6) / res.requests).toFixed(3) }
      : {}),
    ...(m.split1 && res.requests
      ? { cpu_split_us_per_req: Object.fromEntries(Object.keys(m.split1).map((k) => [k, +(((m.split1[k] - m.split0[k]) * 1e6) / res.requests).toFixed(3)])) }
      : {}),
    ...(m.sw1 && res.requests
      ? { sw_vol_per_kreq: +(((m.sw1.vol - m.sw0.vol) * 1000) / res.requests).toFixed(3),
          sw_invol_per_kreq: +(((m.sw1.invol - m.sw0.invol) * 1000) / res.requests).toFixed(3) }
      : {}),
    loadgen_cpu_pct: +(((m.lgCpu1 - m.lgCpu0) / windowS) * 100).toFixed(1),
    other_cpu_pct: +(((m.busy1 - m.busy0 - cpuS - (m.lgCpu1 - m.lgCpu0)) / windowS) * 100).toFixed(1),
    rss_base_kib: m.rssBase, rss_load_kib: m.rssLoad,
    loadgen: res,
  });
  if (c.idle) {
    r.rss_idle_kib = m.rssIdle;
    r.mem_per_conn_kib = +((m.rssIdle - m.rssBase) / c.idle).toFixed(2);
  }
  if (!r.ok) r.failure = `loadgen reported ${res.errors} errors (corrupt ${res.corrupt}, conn ${res.conn_errors}, stalled ${res.stalled})`;
  return r;
}

// Above this much CPU used by other processes during a window, a run is
// flagged as disturbed (tick granularity alone gives a few percent).
const OTHER_CPU_WARN = 15;
const fmtInt = (v) => (v == null || Number.isNaN(v) ? "-" : Math.round(v).toLocaleString("en-US"));
const fmt = (v, d = 1) => (v == null || Number.isNaN(v) ? "-" : v.toFixed(d));

function progress(i, n, r, c) {
  const tag = `[${String(i).padStart(String(n).length)}/${n}] ${c.name.padEnd(15)} rep ${r.rep}/${cfg.reps}${r.rep > cfg.reps ? " (noisy, extra)" : ""} ${r.server.padEnd(14)}`;
  if (r.rps === undefined) return process.stderr.write(`${tag} FAILED: ${r.failure}\n`);
  const mem = c.idle ? `  mem/conn ${fmt(r.mem_per_conn_kib, 2)} KiB` : "";
  const other = r.other_cpu_pct >= OTHER_CPU_WARN ? `  DISTURBED: other processes used ${fmt(r.other_cpu_pct, 0)}% CPU` : "";
  process.stderr.write(
    `${tag} ${fmtInt(r.rps).padStart(10)} req/s ${fmt(r.mbps).padStart(8)} MB/s  p99 ${fmt(r.p99_us).padStart(8)} µs` +
      `  cpu ${fmt(r.server_cpu_pct, 0)}% ${fmt(r.server_cpu_us_per_req, 2)} µs/req (sys ${fmt(r.server_sys_us_per_req, 2)}) lg ${fmt(r.loadgen_cpu_pct, 0)}%` +
      `  rd/wr ${fmt(r.reads_per_req, 2)}/${fmt(r.writes_per_req, 2)} per req  sleeps/req ${fmt(r.sleeps_per_req, 2)}  errors ${r.errors}${mem}${other}\n`,
  );
}

async function runWorkersCase() {
  if (!workerCases.length) return null;
  const med = (xs) => {
    const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
    return v.length ? (v.length % 2 ? v[v.length >> 1] : (v[(v.length >> 1) - 1] + v[v.length >> 1]) / 2) : null;
  };
  const wruns = [];
  const summary = {};
  const table = [""];
  for (const c of workerCases) {
    summary[c.name] = {};
    const plan = [];
    for (let rep = 1; rep <= cfg.reps; rep++) for (const s of workerServers) plan.push({ s, rep });
    for (let i = 0; i < plan.length; i++) {
      const { s, rep } = plan[i];
      const why = s.check();
      if (why) {
        wruns.push({ server: s.name, case: c.name, rep, ok: false, failure: why });
        continue;
      }
      let h;
      try {
        h = await startServer(s);
      } catch (e) {
        const r = { server: s.name, case: c.name, rep, ok: false, failure: e.message };
        wruns.push(r);
        progress(i + 1, plan.length, r, c);
        continue;
      }
      await sleep(200);
      const r = makeRecord(h, c, rep, await runLoadgen(h, c));
      await stopServer(h);
      const perWorker = workerRequests(h);
      if (perWorker.length > 1) r.busiest_worker_share = +(Math.max(...perWorker) / perWorker.reduce((a, b) => a + b, 0)).toFixed(3);
      const ring = ringPerRequest(h);
      if (ring) Object.assign(r, { cqes_per_req: +ring.cqes.toFixed(4), submits_per_req: +ring.submits.toFixed(4), wakeups_per_req: +ring.wakeups.toFixed(4) });
      wruns.push(r);
      progress(i + 1, plan.length, r, c);
    }
    for (const s of workerServers) {
      const rs = wruns.filter((r) => r.server === s.name && r.case === c.name && r.rps !== undefined);
      if (!rs.length) continue;
      summary[c.name][s.name] = {
        workers: s.workers,
        rps: med(rs.map((r) => r.rps)),
        server_cpu_us_per_req: med(rs.map((r) => r.server_cpu_us_per_req)),
        server_cpu_us_per_req_min: Math.min(...rs.map((r) => r.server_cpu_us_per_req)),
        server_cpu_us_per_req_max: Math.max(...rs.map((r) => r.server_cpu_us_per_req)),
        server_cpu_pct: med(rs.map((r) => r.server_cpu_pct)),
        p99_us: med(rs.map((r) => r.p99_us)),
        other_cpu_pct: med(rs.map((r) => r.other_cpu_pct)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        sw_vol_per_kreq: med(rs.map((r) => r.sw_vol_per_kreq)),
        sw_invol_per_kreq: med(rs.map((r) => r.sw_invol_per_kreq)),
        busiest_worker_share: med(rs.map((r) => r.busiest_worker_share)),
        cqes_per_req: med(rs.map((r) => r.cqes_per_req)),
        submits_per_req: med(rs.map((r) => r.submits_per_req)),
        wakeups_per_req: med(rs.map((r) => r.wakeups_per_req)),
        cpu_split_us_per_req: rs[0].cpu_split_us_per_req && Object.fromEntries(
          Object.keys(rs[0].cpu_split_us_per_req).map((k) => [k, med(rs.map((r) => r.cpu_split_us_per_req?.[k]))]),
        ),
      };
    }
    const S = summary[c.name];
    table.push(`== ${c.name}: ${c.title} (server and loadgen share both CPUs; ringline workers pin themselves to CPU 0 and 1, -free ones do not; -pin: the one thread held on CPU 0)`);
    table.push("server".padEnd(24) + "workers".padStart(8) + "req/s".padStart(11) + "µsCPU/req".padStart(10) + "[min–max]".padStart(14) + "CPU%".padStart(6) + "p99 µs".padStart(9) + "other%".padStart(8) + "errors".padStart(7));
    for (const s of workerServers) {
      const e = S[s.name];
      if (!e) {
        table.push(s.name.padEnd(24) + "  (no successful run)");
        continue;
      }
      table.push(
        s.name.padEnd(24) + String(e.workers).padStart(8) + fmtInt(e.rps).padStart(11) + fmt(e.server_cpu_us_per_req, 2).padStart(10) +
          `[${fmt(e.server_cpu_us_per_req_min, 2)}–${fmt(e.server_cpu_us_per_req_max, 2)}]`.padStart(14) + fmt(e.server_cpu_pct, 0).padStart(6) + fmt(e.p99_us).padStart(9) + fmt(e.other_cpu_pct, 0).padStart(8) + String(e.errors).padStart(7),
      );
    }
    table.push("  µs CPU/request by thread (main thread / JS worker threads / V8 and libuv helper threads):");
    for (const s of workerServers) {
      const t = S[s.name]?.cpu_split_us_per_req;
      if (t) table.push(`    ${s.name.padEnd(24)} ${fmt(t.main, 3)} / ${fmt(t.workers, 3)} / ${fmt(t.helpers, 3)}`);
    }
    table.push("  ring work per request, completions / submissions / wake-ups (load-independent; bench/workers-cost.mjs counts instructions):");
    for (const s of workerServers) {
      const e = S[s.name];
      if (e?.cqes_per_req != null) table.push(`    ${s.name.padEnd(24)} ${fmt(e.cqes_per_req, 3)} / ${fmt(e.submits_per_req, 3)} / ${fmt(e.wakeups_per_req, 4)}`);
    }
    table.push("  context switches per 1,000 requests, every server thread: voluntary (sleeps) / involuntary (preempted: the core was wanted elsewhere):");
    for (const s of workerServers) {
      const e = S[s.name];
      if (e?.sw_vol_per_kreq != null) table.push(`    ${s.name.padEnd(24)} ${fmt(e.sw_vol_per_kreq, 2)} / ${fmt(e.sw_invol_per_kreq, 2)}`);
    }
    const shares = workerServers.flatMap((s) => (S[s.name]?.busiest_worker_share != null ? [`${s.name} ${fmt(S[s.name].busiest_worker_share * 100, 0)}%`] : []));
    if (shares.length) table.push(`  busiest worker's share of the requests (0.5 = even): ${shares.join(", ")}`);
    const ratio = (a, b, k) => (S[a]?.[k] != null && S[b]?.[k] ? S[a][k] / S[b][k] : null);
    table.push(
      `  scaling 1→2 workers, req/s: ringline ${fmt(ratio("ringline-w2", "ringline-w1", "rps"), 2)}× (acceptor ${fmt(ratio("ringline-w2-acc", "ringline-w1", "rps"), 2)}×), ` +
        `node cluster ${fmt(ratio("cluster-w2", "cluster-w1", "rps"), 2)}×`,
    );
    table.push(
      `  CPU/request at 2 workers ÷ 1 worker: ringline ${fmt(ratio("ringline-w2", "ringline-w1", "server_cpu_us_per_req"), 2)} (target ≤ 1.10; ` +
        `unpinned ${fmt(ratio("ringline-w2-free", "ringline-w1", "server_cpu_us_per_req"), 2)}; ` +
        `pinned ÷ pinned ${fmt(ratio("ringline-w2", "ringline-w1-pin", "server_cpu_us_per_req"), 2)}), ` +
        `node cluster ${fmt(ratio("cluster-w2", "cluster-w1", "server_cpu_us_per_req"), 2)}`,
    );
    table.push(
      `  CPU/request, ringline 2 workers ÷ node cluster 2 workers: ${fmt(ratio("ringline-w2", "cluster-w2", "server_cpu_us_per_req"), 2)} (target ≤ 0.80)`,
    );
    table.push(
      `  serveChunks: scaling 1→2 workers, req/s ${fmt(ratio("ringline-w2-chunks", "ringline-w1-chunks", "rps"), 2)}×; ` +
        `CPU/request 2÷1 workers ${fmt(ratio("ringline-w2-chunks", "ringline-w1-chunks", "server_cpu_us_per_req"), 2)} ` +
        `(unpinned ${fmt(ratio("ringline-w2-chunks-free", "ringline-w1-chunks", "server_cpu_us_per_req"), 2)}; ` +
        `pinned ÷ pinned ${fmt(ratio("ringline-w2-chunks", "ringline-w1-chunks-pin", "server_cpu_us_per_req"), 2)}); ` +
        `2 workers ÷ node cluster 2 workers ${fmt(ratio("ringline-w2-chunks", "cluster-w2", "server_cpu_us_per_req"), 2)} ` +
        `(unpinned ${fmt(ratio("ringline-w2-chunks-free", "cluster-w2", "server_cpu_us_per_req"), 2)})`,
    );
    // The same three 2÷1 ratios for every server family side by side, with the C control: a rise
    // the C server shares is the machine's (cores shared with the loadgen), not ringline's code.
    const cpuRatio = (a, b) => ratio(a, b, "server_cpu_us_per_req");
    const FAMILIES = {
      ringline: ["ringline-w2", "ringline-w2-free", "ringline-w1", "ringline-w1-pin"],
      serveChunks: ["ringline-w2-chunks", "ringline-w2-chunks-free", "ringline-w1-chunks", "ringline-w1-chunks-pin"],
      "C control": ["c-uring-w2", "c-uring-w2-free", "c-uring-w1", "c-uring-w1-pin"],
    };
    const twoByOne = ([w2, w2free, w1, w1pin]) => [cpuRatio(w2, w1), cpuRatio(w2free, w1), cpuRatio(w2, w1pin)];
    const show = (xs) => xs.map((x) => fmt(x, 2)).join(" / ");
    table.push(
      `  CPU/request 2÷1 workers (2 pinned ÷ 1 free / free ÷ free / pinned ÷ pinned): ` +
        Object.entries(FAMILIES).map(([k, f]) => `${k} ${show(twoByOne(f))}`).join("; ") +
        `; node cluster ${fmt(cpuRatio("cluster-w2", "cluster-w1"), 2)}`,
    );
    // Divided by the C control's ratio, placement by placement: what ringline adds beyond a server
    // with no JavaScript and no cross-worker code on the same machine (≤ 1.10: within the target).
    const ctl = twoByOne(FAMILIES["C control"]);
    const overC = (f) => show(twoByOne(f).map((x, i) => (x != null && ctl[i] ? x / ctl[i] : null)));
    table.push(
      `  the same ÷ the C control's (the machine's share divided out; ≤ 1.10 = within 10 % of a server with no cross-worker code): ` +
        `ringline ${overC(FAMILIES.ringline)}; serveChunks ${overC(FAMILIES.serveChunks)}`,
    );
    table.push(
      `  C control (bench/uring-echo.c --threads): scaling 1→2 threads, req/s ${fmt(ratio("c-uring-w2", "c-uring-w1", "rps"), 2)}× ` +
        `(free ${fmt(ratio("c-uring-w2-free", "c-uring-w1", "rps"), 2)}×)`,
    );
    if (cfg.quick) table.push("  (quick mode: one short run each — a smoke test, not a measurement)");
  }
  return { summary, runs: wruns, table };
}

// ------------------------------------------------------------------- main --
// Full mode interleaves servers within each case/repetition so slow drift
// (thermal, noisy neighbours) hits every server alike; quick mode groups by
// server so one process can serve all its cases, running the cases that
// need a never-used process first so that process can then be reused.
const plan = [];
if (cfg.freshEveryRun) {
  for (const c of cases) for (let rep = 1; rep <= cfg.reps; rep++) for (const s of active) plan.push({ s, c, rep });
} else {
  const ordered = [...cases.filter((c) => c.fresh), ...cases.filter((c) => !c.fresh)];
  for (const s of active) for (const c of ordered) for (let rep = 1; rep <= cfg.reps; rep++) plan.push({ s, c, rep });
}

const started = new Date();
const runs = [];
let live = null;
process.on("SIGINT", async () => {
  if (live) await stopServer(live);
  process.exit(130);
});
async function runPlan(plan) {
for (let i = 0; i < plan.length; i++) {
  const { s, c, rep } = plan[i];
  const reuse = live && live.server === s && !live.exited && !cfg.freshEveryRun && !(c.fresh && live.used);
  if (!reuse) {
    if (live) await stopServer(live);
    live = null;
    try {
      live = await startServer(s);
    } catch (e) {
      const r = { server: s.name, case: c.name, rep, ok: false, failure: e.message };
      runs.push(r);
      progress(i + 1, plan.length, r, c);
      continue;
    }
    await sleep(200); // let start-up allocation settle before the RSS baseline
  }
  live.used = true;
  const lr = await runLoadgen(live, c);
  const r = makeRecord(live, c, rep, lr);
  if (live.exited) {
    r.ok = false;
    r.failure = `${r.failure ? r.failure + "; " : ""}server died: ${live.log.slice(-3).join(" | ")}`;
  }
  runs.push(r);
  progress(i + 1, plan.length, r, c);
  if (cfg.freshEveryRun) {
    await stopServer(live);
    live = null;
  }
}
}

// The spread of a server's repetitions of a case, (max − min) / median, of its rate and of its
// CPU per request; above NOISY_SPREAD the server runs in more than one mode (node:net's 16 KiB
// and bulk cost per request was seen to swing 2.5× between runs of one build on an idle machine,
// bench/README.md "Noisy peers"), so a ratio against its median is a ratio against one mode.
const NOISY_SPREAD = 0.25;
const spreadOf = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length < 2) return 0;
  const m = v.length >> 1;
  const med = v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  return med > 0 ? (v[v.length - 1] - v[0]) / med : 0;
};
const quietRuns = (srv, c) => {
  const all = runs.filter((r) => r.server === srv && r.case === c.name && r.rps !== undefined);
  const quiet = all.filter((r) => !(r.other_cpu_pct >= OTHER_CPU_WARN));
  return { all, used: quiet.length ? quiet : all };
};
const noisyPairs = () => {
  const out = [];
  for (const c of cases)
    for (const s of active) {
      const { used } = quietRuns(s.name, c);
      if (Math.max(spreadOf(used.map((r) => r[c.primary])), spreadOf(used.map((r) => r.server_cpu_us_per_req))) > NOISY_SPREAD) out.push({ s, c });
    }
  return out;
};

await runPlan(plan);
if (cfg.noisyReps > 0) {
  const noisy = noisyPairs();
  if (noisy.length) {
    process.stderr.write(`noisy: ${noisy.map(({ s, c }) => `${s.name}/${c.name}`).join(", ")}: ${cfg.noisyReps} more rep(s) each\n`);
    const extra = [];
    for (let rep = cfg.reps + 1; rep <= cfg.reps + cfg.noisyReps; rep++) for (const { s, c } of noisy) extra.push({ s, c, rep });
    await runPlan(extra);
  }
}
if (live) await stopServer(live);
const workersResult = await runWorkersCase();

// ---------------------------------------------------------------- summary --
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const stat = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x));
  return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v) } : null;
};
const METRICS = ["rps", "mbps", "p50_us", "p99_us", "p999_us", "server_cpu_pct", "server_cpu_us_per_req", "server_sys_us_per_req", "reads_per_req", "writes_per_req", "sleeps_per_req", "loadgen_cpu_pct", "other_cpu_pct", "rss_load_kib", "mem_per_conn_kib"];

const summary = {};
for (const c of cases) {
  summary[c.name] = {};
  for (const s of active) {
    // Disturbed runs stay in the raw data but are left out of the summary
    // whenever an undisturbed run of the same server and case exists.
    const { all, used: rs } = quietRuns(s.name, c);
    if (!all.length) continue;
    const e = { runs: rs.length, disturbed_excluded: all.length - rs.length, errors: all.reduce((a, r) => a + r.errors, 0) };
    e.spread = { [c.primary]: +spreadOf(rs.map((r) => r[c.primary])).toFixed(3), server_cpu_us_per_req: +spreadOf(rs.map((r) => r.server_cpu_us_per_req)).toFixed(3) };
    e.noisy = Math.max(...Object.values(e.spread)) > NOISY_SPREAD;
    // Per repetition, in run order: the modes of a noisy server are visible here.
    e.per_rep = rs.map((r) => ({ rep: r.rep, [c.primary]: r[c.primary], server_cpu_us_per_req: r.server_cpu_us_per_req, server_sys_us_per_req: r.server_sys_us_per_req, reads_per_req: r.reads_per_req, writes_per_req: r.writes_per_req, sleeps_per_req: r.sleeps_per_req }));
    for (const k of METRICS) {
      const st = stat(rs.map((r) => r[k]));
      if (st) e[k] = st;
    }
    summary[c.name][s.name] = e;
  }
}

// Ratios of medians. throughput: >1 means ringline is faster. p99: <1 means
// ringline has the lower tail. mem_per_conn: <1 means ringline uses less.
const ratios = {};
for (const c of cases) {
  ratios[c.name] = {};
  const S = summary[c.name];
  const get = (srv, k) => S[srv]?.[k]?.median;
  for (const a of RINGLINES)
    for (const b of comparedWith(a)) {
      const ta = get(a, c.primary), tb = get(b, c.primary);
      if (ta == null || tb == null || tb === 0) continue;
      const r = { throughput: ta / tb };
      const pa = get(a, "p99_us"), pb = get(b, "p99_us");
      if (pa != null && pb) r.p99 = pa / pb;
      const ma = get(a, "mem_per_conn_kib"), mb = get(b, "mem_per_conn_kib");
      if (ma != null && mb) r.mem_per_conn = ma / mb;
      // CPU per request: <1 means ringline spends less server CPU on each request.
      const ca = get(a, "server_cpu_us_per_req"), cb = get(b, "server_cpu_us_per_req");
      if (ca != null && cb) r.cpu_per_req = ca / cb;
      // Against a noisy side the median ratio is one of several: give the ratio to each extreme
      // of the other side's repetitions too (the ringline side's median over the baseline's max
      // and min), and say so.
      if (S[a]?.noisy || S[b]?.noisy) {
        r.noisy = true;
        const tr = S[b][c.primary], cr = S[b].server_cpu_us_per_req;
        r.throughput_range = [ta / tr.max, ta / tr.min];
        if (ca != null && cr?.min) r.cpu_per_req_range = [ca / cr.max, ca / cr.min];
      }
      ratios[c.name][`${a}÷${b}`] = r;
    }
}

// ------------------------------------------------------------------ table --
const out = [];
const W = { name: 15, num: 10 };
out.push("");
out.push(`ringline echo benchmark — ${started.toISOString()} — ${cfg.quick ? "QUICK" : "full"} mode, ` +
  `${cfg.reps} rep(s), ${cfg.warmup}s warm-up + ${cfg.duration}s measured, server on CPU ${SERVER_CPU}, loadgen on CPU ${CLIENT_CPU}`);
out.push(`Node servers run as: node ${NODE.slice(1).join(" ") || "(no flags: Node's defaults)"}`);
for (const [n, why] of Object.entries(skipped)) out.push(`skipped ${n}: ${why}`);
for (const c of cases) {
  const S = summary[c.name];
  out.push("");
  out.push(`== ${c.name}: ${c.title} (${c.mode}; ${cfg.reps > 1 ? `median of ${cfg.reps}, min–max of ${c.primary === "rps" ? "req/s" : "MB/s"}` : "single run"})`);
  const idle = !!c.idle;
  out.push(
    "server".padEnd(W.name) + "req/s".padStart(W.num + 1) + "MB/s".padStart(9) + (cfg.reps > 1 ? "  min–max".padEnd(22) : "") +
      "p50 µs".padStart(9) + "p99 µs".padStart(9) + "p999 µs".padStart(9) + "CPU%".padStart(6) + "µsCPU/req".padStart(10) +
      "lg CPU%".padStart(8) + (idle ? "KiB/conn".padStart(9) : "") + "÷c-uring".padStart(9) + "errors".padStart(7),
  );
  const ceiling = S["c-uring"]?.[c.primary]?.median;
  for (const s of active) {
    const e = S[s.name];
    if (!e) {
      out.push(s.name.padEnd(W.name) + "  (no successful run)");
      continue;
    }
    const p = e[c.primary];
    const range = cfg.reps > 1 ? `  ${c.primary === "rps" ? `${fmtInt(p.min)}–${fmtInt(p.max)}` : `${fmt(p.min)}–${fmt(p.max)}`}`.padEnd(22) : "";
    // "*" marks a client-bound run: the loadgen used ~all of its core, so
    // the server may be faster than the number shows.
    const clientBound = (e.loadgen_cpu_pct?.median ?? 0) >= 95 ? "*" : e.noisy ? "~" : " ";
    out.push(
      s.name.padEnd(W.name) + fmtInt(e.rps?.median).padStart(W.num) + clientBound + fmt(e.mbps?.median).padStart(9) + range +
        fmt(e.p50_us?.median).padStart(9) + fmt(e.p99_us?.median).padStart(9) + fmt(e.p999_us?.median).padStart(9) +
        fmt(e.server_cpu_pct?.median, 0).padStart(6) + fmt(e.server_cpu_us_per_req?.median, 2).padStart(10) +
        fmt(e.loadgen_cpu_pct?.median, 0).padStart(8) + (idle ? fmt(e.mem_per_conn_kib?.median, 2).padStart(9) : "") +
        (ceiling ? fmt(p.median / ceiling, 2) : "-").padStart(9) + String(e.errors).padStart(7),
    );
  }
  const rs = Object.entries(ratios[c.name]);
  if (rs.length) {
    for (const a of RINGLINES) {
      const mine = rs.filter(([k]) => k.startsWith(`${a}÷`));
      if (!mine.length) continue;
      const range = (v, k) => (v[k] ? `~(${fmt(v[k][0], 2)}–${fmt(v[k][1], 2)})` : "");
      out.push(`  ${a} throughput ratio: ` + mine.map(([k, v]) => `÷${k.split("÷")[1]} ${fmt(v.throughput, 2)}${range(v, "throughput_range")}`).join("  ") +
        "   CPU/req ratio: " + mine.map(([k, v]) => `÷${k.split("÷")[1]} ${fmt(v.cpu_per_req, 2)}${range(v, "cpu_per_req_range")}`).join("  ") +
        (idle ? "   mem/conn ratio: " + mine.map(([k, v]) => `÷${k.split("÷")[1]} ${fmt(v.mem_per_conn, 2)}`).join("  ") : ""));
    }
  }
  // What each server did per request (from /proc): read- and write-family syscalls, sleeps of the
  // main thread, kernel CPU. Explains a noisy server's modes; io_uring servers make ~0 syscalls.
  const io = active.filter((s) => S[s.name]?.reads_per_req);
  if (io.length)
    out.push(`  per ${c.mode === "bulk" ? "64 KiB" : "request"}, reads/writes/sleeps/µs sys: ` +
      io.map((s) => `${s.name} ${["reads_per_req", "writes_per_req", "sleeps_per_req"].map((k) => fmt(S[s.name][k]?.median, 2)).join("/")}/${fmt(S[s.name].server_sys_us_per_req?.median, 1)}`).join("  "));
  for (const s of active) {
    const e = S[s.name];
    if (!e?.noisy) continue;
    out.push(`  NOISY ${s.name}: repetitions disagree by ${fmt(100 * Math.max(...Object.values(e.spread)), 0)}% (> ${100 * NOISY_SPREAD}%); ` +
      `per rep ${c.primary === "rps" ? "req/s" : "MB/s"} | µs CPU (sys) | reads/sleeps per req: ` +
      e.per_rep.map((r) => `${c.primary === "rps" ? fmtInt(r.rps) : fmt(r.mbps)} | ${fmt(r.server_cpu_us_per_req, 1)} (${fmt(r.server_sys_us_per_req, 1)}) | ${fmt(r.reads_per_req, 2)}/${fmt(r.sleeps_per_req, 2)}`).join(";  "));
  }
  if (!rs.length) {
    out.push(`  ringline ratios: n/a (${RINGLINES.map((n) => skipped[n] ? `${n} skipped` : summary[c.name][n] ? null : `${n} not run`).filter(Boolean).join(", ") || "no baseline"})`);
  }
}
if (workersResult) out.push(...workersResult.table);
out.push("");
out.push("req/s marked * = loadgen used ≥95% of its core (client-bound: the server may have headroom).");
out.push(`req/s marked ~ = NOISY: the server's repetitions disagree by > ${100 * NOISY_SPREAD}% (rate or CPU/req); ratios against it also show ~(ratio to its max – ratio to its min).`);
out.push("CPU% = server CPU time (all threads) / measured wall time; µsCPU/req = server CPU per request (bulk: per 64 KiB chunk).");
const disturbed = runs.filter((r) => r.other_cpu_pct >= OTHER_CPU_WARN);
if (disturbed.length) {
  out.push(`WARNING: ${disturbed.length} run(s) shared the CPUs with other processes (≥${OTHER_CPU_WARN}% of a core); their numbers are unreliable — rerun on a quiet machine:`);
  for (const r of disturbed) out.push(`  ${r.server}/${r.case} rep ${r.rep}: other ${fmt(r.other_cpu_pct, 0)}%`);
  out.push("  (left out of the medians above where an undisturbed repetition of the same server and case exists)");
}
const failed = [...runs, ...(workersResult?.runs ?? [])].filter((r) => !r.ok);
if (failed.length) {
  out.push(`${failed.length} run(s) had errors or failed:`);
  for (const r of failed) out.push(`  ${r.server}/${r.case} rep ${r.rep}: ${r.failure}`);
}
console.log(out.join("\n"));

// -------------------------------------------------------------------- svg --
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
function chart() {
  // Series: ringline ratios if ringline ran; otherwise (so the file is still
  // useful before ringline builds) every server relative to the C ceiling.
  // A ratio involving a server that echoed wrong data is meaningless; such
  // bars are drawn faded and flagged.
  const hadErrors = (c, srv) => (summary[c.name][srv]?.errors ?? 0) > 0;
  let series = [];
  let title, ylabel;
  for (const a of RINGLINES) for (const b of comparedWith(a)) {
    const key = `${a}÷${b}`;
    if (cases.some((c) => ratios[c.name][key]))
      series.push({ key, get: (c) => ratios[c.name][key]?.throughput, bad: (c) => hadErrors(c, a) || hadErrors(c, b) });
  }
  if (series.length) {
    title = "ringline throughput ratios (median; >1 = ringline faster)";
    ylabel = "throughput ratio";
  } else {
    const ref = active.some((s) => s.name === "c-uring") ? "c-uring" : active[0]?.name;
    series = active.filter((s) => s.name !== ref).map((s) => ({
      key: `${s.name}÷${ref}`,
      bad: (c) => hadErrors(c, s.name) || hadErrors(c, ref),
      get: (c) => {
        const a = summary[c.name][s.name]?.[c.primary]?.median, b = summary[c.name][ref]?.[c.primary]?.median;
        return a != null && b ? a / b : undefined;
      },
    }));
    title = `throughput relative to ${ref} (no ringline results)`;
    ylabel = `throughput ÷ ${ref}`;
  }
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#e377c2", "#7f7f7f"];
  const barW = 20, gap = 4, groupGap = 36, left = 70, right = 90, top = 60, plotH = 300, legendW = 260;
  const groupW = Math.max(1, series.length) * (barW + gap) - gap;
  const width = Math.max(640, left + cases.length * (groupW + groupGap) + right);
  const perRow = Math.max(1, Math.floor((width - left) / legendW));
  const legendRows = Math.ceil(series.length / perRow);
  const anyBad = cases.some((c) => series.some((s) => s.bad(c) && s.get(c) != null));
  const height = top + plotH + 56 + legendRows * 18 + (anyBad ? 22 : 0) + 10;
  const plotRight = width - right;
  const vals = cases.flatMap((c) => series.map((s) => s.get(c))).filter((v) => v != null && Number.isFinite(v));
  const vmax = Math.max(1.2, ...vals) * 1.1;
  const step = vmax > 8 ? 2 : vmax > 4 ? 1 : vmax > 2 ? 0.5 : 0.25;
  const y = (v) => top + plotH - (v / vmax) * plotH;
  const p = [];
  p.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  p.push(`<rect width="100%" height="100%" fill="white"/>`);
  p.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  p.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${started.toISOString().slice(0, 10)} · ${cfg.quick ? "quick" : "full"} mode · ${cfg.reps} rep(s) · ${cfg.duration}s runs · rr cases: req/s, bulk cases: MB/s`)}</text>`);
  for (let v = 0; v <= vmax + 1e-9; v += step) {
    p.push(`<line x1="${left}" x2="${plotRight}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    p.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${+v.toFixed(2)}</text>`);
  }
  p.push(`<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(ylabel)}</text>`);
  cases.forEach((c, ci) => {
    const gx = left + groupGap / 2 + ci * (groupW + groupGap);
    series.forEach((s, si) => {
      const v = s.get(c);
      const x = gx + si * (barW + gap);
      if (v == null || !Number.isFinite(v)) {
        p.push(`<text x="${x + barW / 2}" y="${y(0) - 4}" text-anchor="middle" fill="#999" font-size="10">n/a</text>`);
        return;
      }
      const bad = s.bad(c);
      const tip = `${c.name} ${s.key}: ${v.toFixed(3)}${bad ? " (a server in this ratio returned wrong echoes)" : ""}`;
      p.push(`<rect x="${x}" y="${y(v)}" width="${barW}" height="${y(0) - y(v)}" fill="${colors[si % colors.length]}"${bad ? ` fill-opacity="0.3" stroke="#d62728" stroke-dasharray="3 2"` : ""}><title>${esc(tip)}</title></rect>`);
      p.push(`<text transform="translate(${x + barW / 2 + 3} ${y(v) - 4}) rotate(-90)" font-size="10" fill="${bad ? "#d62728" : "#333"}">${v.toFixed(2)}${bad ? " ✗" : ""}</text>`);
    });
    p.push(`<text x="${gx + groupW / 2}" y="${top + plotH + 18}" text-anchor="middle">${esc(c.name)}</text>`);
  });
  // Parity line: at 1.0 both sides of a ratio are equally fast.
  p.push(`<line x1="${left}" x2="${plotRight}" y1="${y(1)}" y2="${y(1)}" stroke="#d62728" stroke-dasharray="6 4"/>`);
  p.push(`<text x="${plotRight + 6}" y="${y(1) + 4}" fill="#d62728" font-size="11">1.0 = parity</text>`);
  p.push(`<line x1="${left}" x2="${plotRight}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  const ly = top + plotH + 44;
  series.forEach((s, si) => {
    const lx = left + (si % perRow) * legendW, yy = ly + Math.floor(si / perRow) * 18;
    p.push(`<rect x="${lx}" y="${yy - 10}" width="12" height="12" fill="${colors[si % colors.length]}"/>`);
    p.push(`<text x="${lx + 18}" y="${yy}">${esc(s.key)}</text>`);
  });
  if (anyBad)
    p.push(`<text x="${left}" y="${ly + legendRows * 18 + 6}" fill="#d62728">✗ faded: a server in the ratio returned wrong echoes, so it means nothing</text>`);
  if (!series.length) p.push(`<text x="${width / 2}" y="${top + plotH / 2}" text-anchor="middle" fill="#999">no data</text>`);
  p.push(`</svg>`);
  return p.join("\n") + "\n";
}

// ---------------------------------------------------------------- results --
const pad = (n) => String(n).padStart(2, "0");
const day = `${started.getFullYear()}-${pad(started.getMonth() + 1)}-${pad(started.getDate())}`;
const git = (() => {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return null;
  }
})();
const doc = {
  started: started.toISOString(),
  finished: new Date().toISOString(),
  config: { ...cfg, node_flags: NODE.slice(1), servers: servers.map((s) => s.name), cases: cases.map((c) => c.name), pinned: haveTaskset, server_cpu: SERVER_CPU, client_cpu: CLIENT_CPU },
  machine: { io_uring_disabled: (() => { try { return Number(fs.readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8")); } catch { return null; } })(), node: process.version, kernel: os.release(), cpu: os.cpus()[0]?.model, cpus: os.cpus().length, mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1), git },
  cases: Object.fromEntries(cases.map((c) => [c.name, c])),
  skipped,
  summary,
  ratios,
  runs,
  workers: workersResult && { summary: workersResult.summary, runs: workersResult.runs },
};
fs.mkdirSync(RESULTS, { recursive: true });
// Write-then-rename so an interrupted run never leaves a half-written file.
const write = (file, text) => {
  fs.writeFileSync(file + ".tmp", text);
  fs.renameSync(file + ".tmp", file);
};
// A quick (smoke) run never overwrites the full run of the same day.
const stem = `${day}${cfg.quick ? "-quick" : ""}`;
const jsonFile = path.join(RESULTS, `${stem}.json`);
const svgFile = path.join(RESULTS, `${stem}.svg`);
write(jsonFile, JSON.stringify(doc, null, 2) + "\n");
write(svgFile, chart());
process.stderr.write(`wrote ${path.relative(ROOT, jsonFile)} and ${path.relative(ROOT, svgFile)}\n`);
process.exitCode = failed.length ? 1 : 0;

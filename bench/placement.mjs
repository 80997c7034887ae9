#!/usr/bin/env node
// placement.mjs — where the extra CPU per request of 2 workers on a 2-core box comes from: the
// same server at 1 and 2 threads under fixed placements of its threads and of the loadgen, for the
// C io_uring echo (bench/uring-echo.c --threads, no JavaScript, nothing shared between threads)
// and for ringline (the demo, serveChunks or stream). A rise that the C server shows too is the
// machine's (cores shared with the loadgen, cross-CPU wake-ups), not ringline's code.
//
// Run: node bench/placement.mjs [--servers c,chunks,stream,chunks-yg,stream-yg] [--placements w1-apart,w1-together,...]
//        [--reps 3] [--warmup 1] [--duration 3] [--gc]
//
// `chunks-yg` / `stream-yg`: the same with a 4 MiB semi-space young generation (V8's default after
// importing `effect` is 16 MiB): `node --max-semi-space-size=4` on one thread, `--young-generation-mb 12`
// (RinglineWorkers youngGenerationMb) on workers. `--gc` runs the Node servers with `--trace-gc`
// (line-buffered) and adds scavenges per 1,000 requests and their summed pause per request.
//
// Placements (CPU numbers are the first two allowed CPUs, "0" and "1" below):
//   w1-apart     1 thread on CPU 0, loadgen on CPU 1: every wake-up crosses CPUs, as when the
//                load comes from elsewhere and the server has its core to itself
//   w1-together  1 thread and the loadgen both on CPU 0: no wake-up crosses CPUs
//   w1-free      1 thread, nothing pinned (what run.mjs's ringline-w1 / c-uring-w1 rows do)
//   w2-pin       2 threads pinned to CPUs 0 and 1, loadgen free (run.mjs's ringline-w2)
//   w2-pin-lg1   2 threads pinned to CPUs 0 and 1, loadgen on CPU 1
//   w2-free      2 threads, nothing pinned
// Per run, over the loadgen's measured window (64 B echo, 50 connections × depth 16): server CPU
// per request (schedstat, every thread) and its kernel share (/proc stime), context switches of
// every server thread per 1,000 requests (voluntary = sleeps, involuntary = preempted), and the
// machine's rescheduling + function-call IPIs per 1,000 requests (/proc/interrupts RES + CAL: all
// processes, so only meaningful when the box is otherwise quiet). Runs are interleaved: each
// repetition runs every server × placement once. Prints median [min–max] per row.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort, lines, spawnListening, stopChild, treeCpuNs, treeSwitches } from "./child.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ECHO_JS = path.join(BENCH, "../packages/core/dist/bin/echo.js");
const { values: opts } = parseArgs({
  options: {
    servers: { type: "string", default: "c,chunks" },
    placements: { type: "string", default: "w1-apart,w1-together,w1-free,w2-pin,w2-pin-lg1,w2-free" },
    reps: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    duration: { type: "string", default: "3" },
    gc: { type: "boolean", default: false },
  },
});

const cpus = (() => {
  const line = fs.readFileSync("/proc/self/status", "utf8").match(/^Cpus_allowed_list:\s*(\S+)/m)[1];
  return line.split(",").flatMap((r) => {
    const [a, b = a] = r.split("-").map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
})();
if (cpus.length < 2) throw new Error("placement.mjs needs 2 CPUs");
const [C0, C1] = cpus.map(String);

// A server's argv at 1 or 2 threads; `pin` pins a 2-thread server's own threads (ringline's
// RinglineWorkers pin, uring-echo --pin). A 1-thread server is pinned from outside with taskset.
const SERVERS = {
  c: (p, n, pin) => [path.join(BENCH, "bin/uring-echo"), p, "--threads", String(n), ...(pin ? ["--pin"] : [])],
  chunks: (p, n, pin) => [process.execPath, ECHO_JS, "--port", p, "--mode", "chunks", ...(n > 1 ? ["--workers", String(n), ...(pin ? [] : ["--no-pin"])] : [])],
  stream: (p, n, pin) => [process.execPath, ECHO_JS, "--port", p, ...(n > 1 ? ["--workers", String(n), ...(pin ? [] : ["--no-pin"])] : [])],
};
// 4 MiB semi-spaces: the process flag on one thread, each worker's resourceLimits on workers.
const youngGen = (argv, n) => (n > 1 ? [...argv, "--young-generation-mb", "12"] : [argv[0], "--max-semi-space-size=4", ...argv.slice(1)]);
SERVERS["chunks-yg"] = (p, n, pin) => youngGen(SERVERS.chunks(p, n, pin), n);
SERVERS["stream-yg"] = (p, n, pin) => youngGen(SERVERS.stream(p, n, pin), n);
// --gc: every collection on stdout as it happens (V8 prints with stdio, block-buffered on a pipe).
const traced = (argv) => (opts.gc && argv[0] === process.execPath ? ["stdbuf", "-oL", argv[0], "--trace-gc", ...argv.slice(1)] : argv);
const PLACEMENTS = {
  "w1-apart": { n: 1, server: C0, lg: C1 },
  "w1-together": { n: 1, server: C0, lg: C0 },
  "w1-free": { n: 1 },
  "w2-pin": { n: 2, pin: true },
  "w2-pin-lg1": { n: 2, pin: true, lg: C1 },
  "w2-free": { n: 2 },
};
const pick = (arg, all, what) =>
  arg.split(",").map((k) => {
    if (!(k in all)) throw new Error(`unknown ${what} ${k}; one of ${Object.keys(all).join(", ")}`);
    return k;
  });
const servers = pick(opts.servers, SERVERS, "server");
const placements = pick(opts.placements, PLACEMENTS, "placement");
if (!fs.existsSync(path.join(BENCH, "bin/loadgen")) || !fs.existsSync(path.join(BENCH, "bin/uring-echo")))
  throw new Error("bench/bin/loadgen or bench/bin/uring-echo missing: `node bench/run.mjs --quick --cases workers --servers c-uring-w1` builds both");

const argvIsNode = (server) => SERVERS[server]("0", 1, false)[0] === process.execPath;
const taskset = (cpu, argv) => (cpu === undefined ? argv : ["taskset", "-c", cpu, ...argv]);
const CLK_TCK = 100;

/** Kernel-mode CPU seconds of every thread of `pid` (its /proc stat: threads included). */
const stimeS = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(f.slice(f.lastIndexOf(")") + 2).split(" ")[12]) / CLK_TCK;
};
/** Rescheduling + function-call IPIs so far, all CPUs (machine-wide). */
const ipis = () =>
  fs
    .readFileSync("/proc/interrupts", "utf8")
    .split("\n")
    .filter((l) => /^\s*(RES|CAL):/.test(l))
    .reduce((a, l) => a + l.trim().split(/\s+/).slice(1, 1 + os.cpus().length).reduce((s, x) => s + Number(x), 0), 0);

const snapshot = (pid) => ({ cpuNs: treeCpuNs(pid), sys: stimeS(pid), sw: treeSwitches(pid), ipi: ipis() });

/** One run: start the server, drive it with the loadgen, sample at the loadgen's phase markers. */
const runOnce = async (server, placement) => {
  const pl = PLACEMENTS[placement];
  const port = String(await freePort());
  const child = await spawnListening(taskset(pl.server, traced(SERVERS[server](port, pl.n, pl.pin))), `${server}/${placement}`);
  // Scavenges (count, summed pause in ms) while the loadgen measures, from --trace-gc's lines.
  const gc = { on: false, n: 0, ms: 0 };
  lines(child.stdout, (l) => {
    const m = gc.on && / Scavenge [^,]*, ([\d.]+) \//.exec(l);
    if (m) (gc.n++, (gc.ms += Number(m[1])));
  });
  let log = "";
  child.stderr.on("data", (d) => (log = (log + d).slice(-8000)));
  const lgArgv = taskset(pl.lg, [
    path.join(BENCH, "bin/loadgen"), "--host", "127.0.0.1", "--port", port, "--mode", "rr", "--conns", "50", "--size", "64",
    "--depth", "16", "--warmup", opts.warmup, "--duration", opts.duration,
  ]);
  const lg = spawn(lgArgv[0], lgArgv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let s0, s1;
  lg.stdout.on("data", (d) => (out += d));
  lines(lg.stderr, (l) => {
    if (l === "#measure-start") (s0 = snapshot(child.pid)), (gc.on = true);
    else if (l === "#measure-end") (s1 = snapshot(child.pid)), (gc.on = false);
  });
  const code = await new Promise((r) => lg.on("exit", r));
  await new Promise((r) => setTimeout(r, 100));
  await stopChild(child);
  await new Promise((r) => setTimeout(r, 100)); // the shutdown summary lines
  const res = JSON.parse(out.trim().split("\n").pop());
  if (code !== 0 || res.errors || !s1) throw new Error(`${server}/${placement}: loadgen exit ${code}, errors ${res.errors}`);
  const n = res.requests;
  // Requests per worker from the shutdown summaries (ringline's demo and uring-echo alike).
  const per = [...log.matchAll(/^(?:ringline|c-uring) worker \d+: .*bytesIn=(\d+)/gm)].map((m) => Number(m[1]));
  return {
    rps: res.rps,
    cpu: (s1.cpuNs - s0.cpuNs) / n / 1000,
    sysShare: (s1.sys - s0.sys) / ((s1.cpuNs - s0.cpuNs) / 1e9),
    vol: ((s1.sw.vol - s0.sw.vol) * 1000) / n,
    invol: ((s1.sw.invol - s0.sw.invol) * 1000) / n,
    ipi: ((s1.ipi - s0.ipi) * 1000) / n,
    scav: opts.gc && argvIsNode(server) ? (gc.n * 1000) / n : undefined,
    scavUs: opts.gc && argvIsNode(server) ? (gc.ms * 1000) / n : undefined,
    busiest: per.length > 1 ? Math.max(...per) / per.reduce((a, b) => a + b, 0) : undefined,
  };
};

const med = (xs) => {
  const v = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : undefined;
};
const f = (x, d = 2) => (x === undefined ? "-" : x.toFixed(d));
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");

console.log(`# ${new Date().toISOString()} load ${load()}; 64 B echo, 50 conns × depth 16, ${opts.reps} interleaved reps of ${opts.warmup} s + ${opts.duration} s; CPUs ${C0},${C1}`);
const results = {};
for (let rep = 0; rep < Number(opts.reps); rep++)
  for (const s of servers)
    for (const p of placements) {
      const r = await runOnce(s, p);
      (results[`${s} ${p}`] ??= []).push(r);
      process.stderr.write(`rep ${rep + 1} ${s} ${p}: ${f(r.cpu)} µs/req, ${Math.round(r.rps)} req/s, load ${load()}\n`);
    }
console.log(
  `${"server placement".padEnd(20)} ${"µs CPU/req [min–max]".padStart(22)} ${"sys".padStart(5)} ${"kreq/s".padStart(7)} ${"vol/invol sw per kreq".padStart(22)} ${"IPIs/kreq".padStart(10)} busiest${opts.gc ? "  scav/kreq  scav µs/req" : ""}`,
);
for (const [k, rs] of Object.entries(results)) {
  const m = (key) => med(rs.map((r) => r[key]));
  const cpu = rs.map((r) => r.cpu);
  console.log(
    `${k.padEnd(20)} ${`${f(m("cpu"))} [${f(Math.min(...cpu))}–${f(Math.max(...cpu))}]`.padStart(22)} ${f(m("sysShare"), 2).padStart(5)} ${f(m("rps") / 1000, 0).padStart(7)}` +
      ` ${`${f(m("vol"), 1)} / ${f(m("invol"), 1)}`.padStart(22)} ${f(m("ipi"), 1).padStart(10)} ${(m("busiest") === undefined ? "" : f(m("busiest") * 100, 0) + "%").padStart(7)}` +
      (m("scav") === undefined ? "" : ` ${f(m("scav"), 2).padStart(10)} ${f(m("scavUs"), 3).padStart(12)}`),
  );
}
console.log(`# load after ${load()}`);
console.log(JSON.stringify(results));

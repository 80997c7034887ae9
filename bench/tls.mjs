#!/usr/bin/env node
// tls.mjs — TLS cases: the ringline TLS echo demo against a node:tls echo server (same handler),
// driven by the C TLS load generator (bench/loadgen.c built with -DLOADGEN_TLS against the system
// OpenSSL, so the client is never the JS event loop that capped the old numbers).
//
// Servers run pinned to CPU 0 and the load generator to CPU 1 (as bench/run.mjs does). Cases: 64 B
// echo (50 connections, depth 1), 16 KiB echo (16 connections), bulk (1 connection, 64 KiB writes,
// 256 KiB in flight; a "request" is 64 KiB) and full handshakes per second (16 at a time, a fresh
// SSL object each: no resumption). Every case × server × rep starts a fresh server; reps are
// interleaved (rep 1 of every case and server, then rep 2, ...) so a burst of load from elsewhere
// hits both servers. Reported: the median (min–max) of the rate and of the server's CPU time per
// request, sampled from /proc at the load generator's measure-start/-end markers, and the load
// generator's own CPU use ("*" when ≥ 95 %: client-bound, the server may have headroom).
//
// Run: node bench/tls.mjs [--reps 3] [--warmup 1] [--duration 5] [--servers ringline-tls,ringline-tls-chunks,node-tls]
//        [--cases echo64,handshakes] [--node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"] [--json F]
//      (or `pnpm bench:tls`). `--cases` keeps the cases whose name contains one of the words;
//      `--node-args` is passed to the server processes (profiling one case under the bench's load).
//      `--callgrind`: load-independent instead — each server runs once under valgrind's callgrind
//      (all cases on that one process, 1 rep, default warm-up 20 s), counters zeroed and dumped at
//      the load generator's markers; reported: instructions per request of the main thread (the
//      event loop: what the server does per request) and of all threads (adds V8's background
//      compiler and GC, which are still warming up under valgrind). Wall-clock rates are then
//      meaningless. Keep the .out files with `--callgrind-dir D` (callgrind_annotate).
// Needs gcc and OpenSSL's headers (libssl-dev): installed with apt when missing and possible,
// otherwise the bench prints SKIP with the reason and exits 0.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(ROOT, "bench/bin");
const { values: opts } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    duration: { type: "string", default: "5" },
    servers: { type: "string" },
    cases: { type: "string" },
    "node-args": { type: "string" },
    json: { type: "string" },
    callgrind: { type: "boolean", default: false },
    "callgrind-dir": { type: "string" },
  },
});
const callgrind = opts.callgrind || opts["callgrind-dir"] !== undefined;
const cfg = callgrind
  ? { reps: 1, warmup: Number(opts.warmup === "1" ? "20" : opts.warmup), duration: Number(opts.duration === "5" ? "20" : opts.duration) }
  : { reps: Number(opts.reps), warmup: Number(opts.warmup), duration: Number(opts.duration) };
for (const [k, v] of Object.entries(cfg)) {
  if (!(v > 0) && !(k === "warmup" && v === 0)) throw new Error(`--${k} must be a positive number, got ${opts[k]}`);
}

// ------------------------------------------------------------------ build --
const LOADGEN = path.join(BIN, "tls-loadgen");
const buildLoadgen = () => {
  const src = path.join(ROOT, "bench/loadgen.c");
  if (fs.existsSync(LOADGEN) && fs.statSync(LOADGEN).mtimeMs >= fs.statSync(src).mtimeMs) return null;
  fs.mkdirSync(BIN, { recursive: true });
  const args = ["-O2", "-Wall", "-DLOADGEN_TLS", "-o", LOADGEN, src, "-lssl", "-lcrypto", "-lm"];
  process.stderr.write(`build: gcc ${args.map((a) => path.relative(ROOT, a) || a).join(" ")}\n`);
  try {
    execFileSync("gcc", args, { stdio: ["ignore", "inherit", "pipe"] });
    return null;
  } catch (e) {
    return String(e.stderr || e.message).trim().split("\n").slice(-3).join(" | ");
  }
};
// libssl-dev the way scripts/dev.sh installs wrk: apt, as root or through sudo without a password.
const installLibssl = () => {
  const [cmd, ...pre] = process.getuid?.() === 0 ? ["apt-get"] : ["sudo", "-n", "apt-get"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    process.stderr.write("installing libssl-dev (apt) for the TLS load generator\n");
    execFileSync(cmd, [...pre, "update", "-qq"], { stdio: "ignore", env });
    execFileSync(cmd, [...pre, "install", "-y", "-qq", "libssl-dev"], { stdio: "ignore", env });
    return true;
  } catch {
    return false;
  }
};
let buildErr = buildLoadgen();
if (buildErr && !fs.existsSync("/usr/include/openssl/ssl.h") && installLibssl()) buildErr = buildLoadgen();
if (buildErr) {
  console.log(`SKIP tls bench: cannot build the TLS load generator (needs gcc and libssl-dev): ${buildErr}`);
  process.exit(0);
}

// ------------------------------------------------------------- certificate --
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringline-tls-bench-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
  "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { cwd: dir, stdio: "ignore" });
const certArgs = ["--tls-cert", path.join(dir, "cert.pem"), "--tls-key", path.join(dir, "key.pem")];

// ---------------------------------------------------------------- pinning --
const pinned = (() => {
  try {
    execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
})();
if (!pinned) process.stderr.write("warning: taskset or a second CPU is missing; running unpinned\n");
const onCpu = (cpu, argv) => (pinned ? ["taskset", "-c", cpu, ...argv] : argv);

const nodeArgs = opts["node-args"] === undefined ? [] : opts["node-args"].split(" ").filter((a) => a !== "");
if (callgrind) {
  try {
    execFileSync("callgrind_control", ["-h"], { stdio: "ignore" });
  } catch {
    console.log("SKIP tls bench --callgrind: valgrind (callgrind_control) is not installed (apt-get install -y valgrind)");
    process.exit(0);
  }
}
const cgDir = callgrind ? (opts["callgrind-dir"] ?? path.join(dir, "callgrind")) : undefined;
if (cgDir !== undefined) fs.mkdirSync(cgDir, { recursive: true });
const valgrind = cgDir === undefined ? [] : ["valgrind", "--tool=callgrind", "--separate-threads=yes", `--callgrind-out-file=${cgDir}/%p.out`];
const SERVERS = [
  { name: "ringline-tls", cmd: [...valgrind, process.execPath, ...nodeArgs, path.join(ROOT, "packages/core/dist/bin/echo.js"), "--port", "0", ...certArgs] },
  // The demo's zero-copy handler (`--mode parse`: echoes the parser's view, as run.mjs's ringline-parse).
  { name: "ringline-tls-parse", cmd: [...valgrind, process.execPath, ...nodeArgs, path.join(ROOT, "packages/core/dist/bin/echo.js"), "--port", "0", "--mode", "parse", ...certArgs] },
  // Listener.serveChunks (`--mode chunks`: the handler runs from the completion, no fiber per connection).
  { name: "ringline-tls-chunks", cmd: [...valgrind, process.execPath, ...nodeArgs, path.join(ROOT, "packages/core/dist/bin/echo.js"), "--port", "0", "--mode", "chunks", ...certArgs] },
  { name: "node-tls", cmd: [...valgrind, process.execPath, ...nodeArgs, path.join(ROOT, "bench/servers/node-tls-echo.mjs"), "--port", "0", ...certArgs] },
].filter((s) => opts.servers === undefined || opts.servers.split(",").includes(s.name));

// The client verifies the chain and host name like a real one (its cost is the client's, not
// measured here); SNI is "localhost" for both servers.
const verify = ["--tls", "--ca", path.join(dir, "cert.pem"), "--servername", "localhost"];
const CASES = [
  { name: "tls-echo64-c50", unit: "req/s", args: ["--mode", "rr", "--size", "64", "--conns", "50"] },
  { name: "tls-echo16k-c16", unit: "req/s", args: ["--mode", "rr", "--size", "16384", "--conns", "16"] },
  { name: "tls-bulk-c1", unit: "MB/s", args: ["--mode", "bulk", "--size", "65536", "--depth", "4", "--conns", "1"] },
  { name: "tls-handshakes-c16", unit: "handshakes/s", args: ["--mode", "handshake", "--conns", "16"] },
].filter((c) => opts.cases === undefined || opts.cases.split(",").some((w) => c.name.includes(w)));

// ------------------------------------------------------------------- runs --
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
  } catch {
    return 100;
  }
})();
const cpuSeconds = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime (fields 14, 15), all threads
};

const start = (server) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = onCpu("0", server.cmd);
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", callgrind ? "ignore" : "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on("exit", (code) => reject(new Error(`${server.name} exited with ${code} before listening`)));
  });

const drive = (server, c) =>
  new Promise((resolve, reject) => {
    const argv = onCpu("1", [LOADGEN, "--port", String(server.port), ...verify, ...c.args,
      "--warmup", String(cfg.warmup), "--duration", String(cfg.duration), "--label", c.name]);
    const lg = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    const m = {};
    let out = "";
    let err = "";
    lg.stdout.on("data", (d) => (out += d));
    lg.stderr.setEncoding("utf8");
    lg.stderr.on("data", (d) => {
      err += d;
      // Sampled at the load generator's own phase markers: CPU covers exactly the measured window.
      if (m.cpu0 === undefined && err.includes("#measure-start\n")) {
        if (callgrind) callgrindControl("-z", server.child.pid);
        m.cpu0 = cpuSeconds(server.child.pid);
        m.lg0 = cpuSeconds(lg.pid);
      }
      if (m.cpu1 === undefined && err.includes("#measure-end\n")) {
        m.cpu1 = cpuSeconds(server.child.pid);
        m.lg1 = cpuSeconds(lg.pid);
        if (callgrind) m.ir = callgrindDump(server.child.pid, c.name);
      }
    });
    lg.on("exit", (code) => {
      let res;
      try {
        res = JSON.parse(out);
      } catch {
        return reject(new Error(`${c.name}: load generator exited ${code}: ${err.trim().split("\n").slice(-3).join(" | ")}`));
      }
      if (code !== 0 || res.errors > 0 || m.cpu1 === undefined) {
        return reject(new Error(`${c.name}: load generator exit ${code}, ${res.errors} errors: ${err.trim().split("\n").slice(-3).join(" | ")}`));
      }
      resolve({
        rate: c.unit === "MB/s" ? res.mbps : res.rps,
        cpuUsPerReq: ((m.cpu1 - m.cpu0) * 1e6) / Math.max(1, res.requests),
        lgCpuPct: ((m.lg1 - m.lg0) / res.elapsed_s) * 100,
        p99: res.p99_us,
        ...(m.ir && { irMainPerReq: m.ir.main / Math.max(1, res.requests), irAllPerReq: m.ir.all / Math.max(1, res.requests) }),
      });
    });
  });

// callgrind_control waits until valgrind has acted on the command (its answer), so the counters
// are zeroed/dumped within a fraction of a second of the marker (windows are ≥ 10 s).
function callgrindControl(...args) {
  execFileSync("callgrind_control", args.map(String), { stdio: "ignore" });
}
// Dumps the counters since the last zero; returns the instructions of the main thread (file -01)
// and of all threads (one file per thread: `<pid>.out.<dump>-<thread>`).
function callgrindDump(pid, tag) {
  const before = new Set(fs.readdirSync(cgDir));
  callgrindControl("-d", tag, pid);
  let main = 0;
  let all = 0;
  for (const f of fs.readdirSync(cgDir)) {
    if (before.has(f) || !f.startsWith(`${pid}.out.`)) continue;
    const m = /^summary:\s+(\d+)/m.exec(fs.readFileSync(path.join(cgDir, f), "utf8"));
    const ir = m ? Number(m[1]) : 0;
    all += ir;
    if (f.endsWith("-01")) main = ir;
  }
  return { main, all };
}

const results = {}; // server → case → [run]
const load0 = os.loadavg();
const stop = async (srv) => {
  srv.child.removeAllListeners("exit");
  srv.child.kill("SIGTERM");
  await new Promise((res) => (srv.child.exitCode !== null ? res() : srv.child.on("exit", res)));
};
const record = (rep, s, c, r) => {
  ((results[s.name] ??= {})[c.name] ??= []).push(r);
  const ir = r.irMainPerReq === undefined ? "" : `  Ir/req main ${Math.round(r.irMainPerReq)} all ${Math.round(r.irAllPerReq)}`;
  process.stderr.write(`rep ${rep} ${s.name.padEnd(18)} ${c.name.padEnd(19)} ${r.rate.toFixed(0).padStart(8)} ${c.unit.padEnd(12)}` +
    ` server ${r.cpuUsPerReq.toFixed(1).padStart(6)} µs/req  loadgen ${r.lgCpuPct.toFixed(0)}% CPU  load ${os.loadavg()[0].toFixed(1)}${ir}\n`);
};
if (callgrind) {
  // Starting node under valgrind takes minutes: one process per server for all cases.
  for (const s of SERVERS) {
    const srv = await start(s);
    try {
      for (const c of CASES) record(1, s, c, await drive(srv, c));
    } finally {
      await stop(srv);
    }
  }
} else {
  for (let rep = 1; rep <= cfg.reps; rep++) {
    for (const c of CASES) {
      for (const s of SERVERS) {
        const srv = await start(s);
        try {
          record(rep, s, c, await drive(srv, c));
        } finally {
          await stop(srv);
        }
      }
    }
  }
}

// ----------------------------------------------------------------- report --
const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const stat = (runs, k) => ({ median: median(runs.map((r) => r[k])), min: Math.min(...runs.map((r) => r[k])), max: Math.max(...runs.map((r) => r[k])) });
const out = [
  `TLS echo: C TLS load generator on CPU 1, server on CPU 0${pinned ? "" : " (UNPINNED)"}${callgrind ? " under callgrind" : ""}; ${cfg.reps} interleaved rep(s) of ` +
    `${cfg.duration} s (+${cfg.warmup} s warm-up); load average ${load0.map((l) => l.toFixed(2)).join(" ")} → ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
];
if (!callgrind) out.push(`${"case".padEnd(19)} ${"server".padEnd(18)} ${"rate median (min–max)".padStart(30)}  ${"server µs/req (min–max)".padStart(25)}  loadgen CPU`);
const summary = {};
for (const c of CASES) {
  for (const s of SERVERS) {
    const runs = results[s.name]?.[c.name];
    if (!runs) continue;
    const rate = stat(runs, "rate");
    const cpu = stat(runs, "cpuUsPerReq");
    const lg = median(runs.map((r) => r.lgCpuPct));
    (summary[c.name] ??= {})[s.name] = { rate, cpuUsPerReq: cpu, loadgenCpuPct: lg, unit: c.unit };
    if (callgrind) {
      const e = summary[c.name][s.name];
      e.irMainPerReq = runs[0].irMainPerReq;
      e.irAllPerReq = runs[0].irAllPerReq;
      out.push(`${c.name.padEnd(19)} ${s.name.padEnd(18)} instructions per request: main thread ${Math.round(e.irMainPerReq)}, all threads ${Math.round(e.irAllPerReq)}`);
      continue;
    }
    out.push(`${c.name.padEnd(19)} ${s.name.padEnd(18)} ${`${rate.median.toFixed(0)}${lg >= 95 ? "*" : " "} ${c.unit} (${rate.min.toFixed(0)}–${rate.max.toFixed(0)})`.padStart(30)}  ` +
      `${`${cpu.median.toFixed(1)} (${cpu.min.toFixed(1)}–${cpu.max.toFixed(1)})`.padStart(25)}  ${lg.toFixed(0)}%`);
  }
  const b = summary[c.name]?.["node-tls"];
  for (const name of ["ringline-tls", "ringline-tls-parse", "ringline-tls-chunks"]) {
    const a = summary[c.name]?.[name];
    const who = `${name.replace("-tls", "")} ÷ node:`.padEnd(24);
    if (a && b && callgrind) {
      out.push(`${"".padEnd(19)} ${who} instructions per request, main thread ${(a.irMainPerReq / b.irMainPerReq).toFixed(2)}×, all threads ${(a.irAllPerReq / b.irAllPerReq).toFixed(2)}×`);
    } else if (a && b) {
      out.push(`${"".padEnd(19)} ${who} rate ${(a.rate.median / b.rate.median).toFixed(2)}×, CPU/req ${(a.cpuUsPerReq.median / b.cpuUsPerReq.median).toFixed(2)}×`);
    }
  }
}
out.push("rate marked * = the load generator used ≥ 95 % of its core (client-bound). Targets: rate ≥ 1.3×, CPU/req ≤ 0.8×, handshakes ≥ 1×.");
console.log(out.join("\n"));
if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ cfg, pinned, load: { before: load0, after: os.loadavg() }, summary, results }, null, 2));

#!/usr/bin/env node
// http.mjs — the HTTP benchmark: wrk against the same HttpRouter app served by RinglineHttpServer
// and by @effect/platform-node's NodeHttpServer, and against a hand-written node:http handler.
//
// Every server runs pinned to CPU 0 and wrk (-t1) to CPU 1, as bench/run.mjs does. Repetitions are
// interleaved (rep 1 of every server and case, then rep 2, ...); the summary gives the median with
// min and max of req/s, p50/p99 latency and the server's CPU time per request (utime+stime from
// /proc over the measured run). Writes bench/results/http-<YYYY-MM-DD>[-quick].{json,txt}.
//
// Run:  node bench/http.mjs [--quick] [--servers a,b] [--cases x,y] [--reps N] [--duration S] [--out BASE]
//       (or `pnpm bench:http`). Needs wrk (apt-get install -y wrk) and the TypeScript build.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { freePort } from "./child.mjs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const RESULTS = path.join(BENCH, "results");
const HTTP_JS = path.join(ROOT, "packages/http/dist/bin/http.js");
const SERVER_CPU = "0";
const CLIENT_CPU = "1";

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    servers: { type: "string" },
    cases: { type: "string" },
    reps: { type: "string" },
    warmup: { type: "string" },
    duration: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opts.help) {
  console.log("node bench/http.mjs [--quick] [--servers ringline,platform-node,node-raw] [--cases ...] [--reps N] [--warmup S] [--duration S] [--out PATH-BASE]");
  process.exit(0);
}
const cfg = {
  reps: Number(opts.reps ?? (opts.quick ? 1 : 5)),
  warmup: Number(opts.warmup ?? (opts.quick ? 1 : 2)),
  duration: Number(opts.duration ?? (opts.quick ? 2 : 10)),
};

const LUA = {
  echo16k: `wrk.method = "POST"\nwrk.body = string.rep("x", 16384)\nwrk.headers["Content-Type"] = "application/octet-stream"\n`,
  pipeline16: `init = function(args)\n  local r = {}\n  for i = 1, 16 do r[i] = wrk.format(nil, "/") end\n  req = table.concat(r)\nend\nrequest = function() return req end\n`,
};
const CASES = [
  { name: "get-root", title: "GET / (Hello, World!), 50 conns", path: "/", conns: 50 },
  { name: "get-json", title: "GET /json, 50 conns", path: "/json", conns: 50 },
  { name: "post-echo-16k", title: "POST /echo 16 KiB, 50 conns", path: "/echo", conns: 50, lua: "echo16k" },
  // wrk's percentiles are not usable when pipelining (see latency-probe.mjs): p50/p99 come from a
  // probe connection beside wrk's 50 instead.
  { name: "pipeline16", title: "GET / pipelined 16 deep, 50 conns", path: "/", conns: 50, lua: "pipeline16", probe: { depth: 16, body: 13 } },
];
const SERVERS = [
  { name: "ringline", title: "RinglineHttpServer + HttpRouter app", cmd: (p) => [process.execPath, HTTP_JS, "--port", p] },
  { name: "platform-node", title: "NodeHttpServer + the same app", cmd: (p) => [process.execPath, HTTP_JS, "--port", p, "--impl", "node"] },
  { name: "node-raw", title: "node:http, raw handler", cmd: (p) => [process.execPath, path.join(BENCH, "servers/node-http-raw.mjs"), "--port", p] },
];
const pick = (arg, all) => {
  if (!arg) return all;
  const names = arg.split(",");
  for (const n of names) if (!all.some((x) => x.name === n)) throw new Error(`unknown ${n}; one of ${all.map((x) => x.name).join(", ")}`);
  return all.filter((x) => names.includes(x.name));
};
const servers = pick(opts.servers, SERVERS);
const cases = pick(opts.cases, CASES);

try {
  execFileSync("wrk", ["--version"], { stdio: "ignore" });
} catch (e) {
  if (e.code === "ENOENT") {
    console.error("wrk is not installed: apt-get install -y wrk (bash scripts/dev.sh bench installs it)");
    process.exit(2);
  }
}
if (!fs.existsSync(HTTP_JS)) {
  console.error(`${path.relative(ROOT, HTTP_JS)} not found: build first (pnpm exec tsc -b)`);
  process.exit(2);
}
const haveTaskset = (() => {
  try {
    execFileSync("taskset", ["-c", "1", "true"], { stdio: "ignore" });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
})();
if (!haveTaskset) process.stderr.write("warning: taskset or a second CPU is missing; running unpinned\n");
const pinned = (cpu, argv) => (haveTaskset ? ["taskset", "-c", cpu, ...argv] : argv);

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
  } catch {
    return 100;
  }
})();
const cpuSeconds = (pid) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
};
// A server that fails to start (a port taken between freePort and bind, a busy machine) gets a
// second try before the suite gives up.
async function startServer(server) {
  try {
    return await startServerOnce(server);
  } catch (e) {
    process.stderr.write(`${e.message}\nretrying once\n`);
    return await startServerOnce(server);
  }
}
async function startServerOnce(server) {
  const port = await freePort();
  const argv = pinned(SERVER_CPU, server.cmd(String(port)));
  const proc = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log = (log + d).slice(-2000)));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${server.name}: no 'listening on' line within 30 s\n${log}`)), 30000);
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      if (/listening on /.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      // stderr may still be arriving: give it a moment for the message.
      setTimeout(() => reject(new Error(`${server.name}: exited (${code}) before listening\n${log}`)), 100);
    });
  });
  return { server, proc, port, exit: new Promise((r) => proc.on("exit", r)) };
}
async function stopServer(h) {
  h.proc.kill("SIGTERM");
  const t = setTimeout(() => h.proc.kill("SIGKILL"), 5000);
  await h.exit;
  clearTimeout(t);
}

const luaFiles = {};
for (const [k, v] of Object.entries(LUA)) {
  const f = path.join(os.tmpdir(), `ringline-bench-${k}.lua`);
  fs.writeFileSync(f, v);
  luaFiles[k] = f;
}
const wrk = (port, c, seconds) =>
  new Promise((resolve, reject) => {
    const args = ["-t1", `-c${c.conns}`, `-d${seconds}s`, "--latency", ...(c.lua ? ["-s", luaFiles[c.lua]] : []), `http://127.0.0.1:${port}${c.path}`];
    const argv = pinned(CLIENT_CPU, ["wrk", ...args]);
    const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`))));
  });
// The pipelined case's latency: batches of `depth` on one more connection during the measured
// run (bench/latency-probe.mjs), pinned beside wrk.
const latencyProbe = (port, c, seconds) =>
  new Promise((resolve, reject) => {
    const argv = pinned(CLIENT_CPU, [process.execPath, path.join(BENCH, "latency-probe.mjs"), "--port", String(port), "--path", c.path,
      "--depth", String(c.probe.depth), "--body", String(c.probe.body), "--duration", String(seconds)]);
    const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`latency probe exited ${code}: ${out}`))));
  });
const unitMs = (v, u) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[u] ?? NaN);
const parseWrk = (out) => {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const lat = (q) => {
    const m = new RegExp(`\\s${q}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? unitMs(m[1], m[2]) : NaN;
  };
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? null;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { rps, requests, p50: lat(50), p99: lat(99), errors, non2xx };
};

const runs = [];
const total = cfg.reps * servers.length * cases.length;
let done = 0;
for (let rep = 1; rep <= cfg.reps; rep++) {
  for (const c of cases) {
    for (const s of servers) {
      const h = await startServer(s);
      try {
        await wrk(h.port, c, cfg.warmup);
        const cpu0 = cpuSeconds(h.proc.pid);
        const [out, probe] = await Promise.all([wrk(h.port, c, cfg.duration), c.probe ? latencyProbe(h.port, c, cfg.duration) : undefined]);
        const cpu1 = cpuSeconds(h.proc.pid);
        const r = parseWrk(out);
        // The server's CPU went to the probe's requests too: they count in the CPU per request.
        const served = r.requests + (probe === undefined ? 0 : probe.batches * c.probe.depth);
        if (probe !== undefined) Object.assign(r, { p50: probe.p50, p99: probe.p99, latency: "probe", probeBatches: probe.batches });
        const run = { rep, server: s.name, case: c.name, ...r, cpuUsPerReq: ((cpu1 - cpu0) * 1e6) / served, cpuUtil: (cpu1 - cpu0) / cfg.duration };
        runs.push(run);
        done++;
        process.stderr.write(
          `[${done}/${total}] rep ${rep} ${c.name.padEnd(14)} ${s.name.padEnd(14)} ${Math.round(r.rps).toString().padStart(8)} req/s  p99 ${r.p99.toFixed(2)} ms  cpu ${run.cpuUsPerReq.toFixed(1)} µs/req${r.errors ? `  errors: ${r.errors}` : ""}${r.non2xx ? `  non-2xx: ${r.non2xx}` : ""}\n`,
        );
      } finally {
        await stopServer(h);
      }
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
const summary = [];
for (const c of cases) {
  for (const s of servers) {
    const rs = runs.filter((r) => r.case === c.name && r.server === s.name);
    summary.push({
      case: c.name,
      server: s.name,
      rps: stat(rs.map((r) => r.rps)),
      p50: stat(rs.map((r) => r.p50)),
      p99: stat(rs.map((r) => r.p99)),
      cpuUsPerReq: stat(rs.map((r) => r.cpuUsPerReq)),
    });
  }
}
const f0 = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "-");
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : "-");
let txt = `HTTP benchmark ${new Date().toISOString()}${opts.quick ? " (quick)" : ""}\n`;
txt += `wrk -t1, ${cfg.reps} interleaved reps of ${cfg.duration} s (+${cfg.warmup} s warm-up), server on CPU ${SERVER_CPU}, wrk on CPU ${CLIENT_CPU}${haveTaskset ? "" : " (UNPINNED)"}\n`;
txt += `node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} at the end\n\n`;
for (const c of cases) {
  txt += `${CASES.find((x) => x.name === c.name).title}\n`;
  txt += `  ${"server".padEnd(14)} ${"req/s median [min..max]".padEnd(34)} ${"p50 ms".padEnd(8)} ${"p99 ms".padEnd(8)} cpu µs/req  vs platform-node\n`;
  const base = summary.find((x) => x.case === c.name && x.server === "platform-node");
  for (const s of summary.filter((x) => x.case === c.name)) {
    const ratio = base ? `${(s.rps.median / base.rps.median).toFixed(2)}× req/s, ${(s.cpuUsPerReq.median / base.cpuUsPerReq.median).toFixed(2)}× cpu` : "";
    txt += `  ${s.server.padEnd(14)} ${`${f0(s.rps.median)} [${f0(s.rps.min)}..${f0(s.rps.max)}]`.padEnd(34)} ${f2(s.p50.median).padEnd(8)} ${f2(s.p99.median).padEnd(8)} ${f2(s.cpuUsPerReq.median).padEnd(11)} ${ratio}\n`;
  }
  if (c.probe) {
    txt += `  (p50/p99: latency of a ${c.probe.depth}-deep batch, write to last response, on a probe connection beside wrk's ${c.conns}; wrk's own percentiles are not usable when pipelining)\n`;
  }
  txt += "\n";
}
process.stdout.write(txt);
fs.mkdirSync(RESULTS, { recursive: true });
const date = new Date().toISOString().slice(0, 10);
// --out writes elsewhere (exploratory runs must not overwrite the committed results).
const base = opts.out ? path.resolve(opts.out) : path.join(RESULTS, `http-${date}${opts.quick ? "-quick" : ""}`);
fs.mkdirSync(path.dirname(base), { recursive: true });
fs.writeFileSync(`${base}.json`, JSON.stringify({ config: cfg, pinned: haveTaskset, node: process.version, cpus: os.cpus().length, runs, summary }, null, 2) + "\n");
fs.writeFileSync(`${base}.txt`, txt);
process.stderr.write(`wrote ${path.relative(ROOT, base)}.{json,txt}\n`);

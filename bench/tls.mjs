#!/usr/bin/env node
// tls.mjs — TLS cases: the ringline TLS echo demo against a node:tls echo server (same handler).
//
// The C load generator (bench/loadgen.c) speaks no TLS, so the load comes from a node:tls client
// in this process (pinned to CPU 1 when taskset works; servers on CPU 0). Cases: 64 B echo
// (50 connections, depth 1), 16 KiB echo (16 connections), bulk (1 connection, 64 KiB writes,
// 256 KiB in flight) and full handshakes per second (16 at a time, no resumption). For each: the
// client-side rate and the server's CPU time per request (from /proc/<pid>/stat).
//
// Run: node bench/tls.mjs [--duration S] [--servers ringline-tls,node-tls] [--cases echo64,handshakes]
//        [--node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"]   (or `pnpm bench:tls`)
// `--cases` keeps the cases whose name contains one of the words; `--node-args` is passed to the
// server processes (profiling one case under the bench's load).
// The client is JS too: absolute numbers are bounded by it; compare servers with each other.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: opts } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    servers: { type: "string" },
    cases: { type: "string" },
    "node-args": { type: "string" },
  },
});
let DURATION = Number(opts.duration) * 1000;
const MEASURE = DURATION;
const WARMUP = 1000; // lazy compilation and first-connection costs stay out of the numbers

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringline-tls-bench-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
  "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { cwd: dir, stdio: "ignore" });
const ca = fs.readFileSync(path.join(dir, "cert.pem"));
const certArgs = ["--tls-cert", path.join(dir, "cert.pem"), "--tls-key", path.join(dir, "key.pem")];

let pin = [];
try {
  execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
  if (os.cpus().length > 1) {
    pin = ["taskset", "-c", "0"];
    execFileSync("taskset", ["-p", "-c", "1", String(process.pid)], { stdio: "ignore" });
  }
} catch {}

const nodeArgs = opts["node-args"] === undefined ? [] : opts["node-args"].split(" ").filter((a) => a !== "");
const SERVERS = [
  { name: "ringline-tls", cmd: [process.execPath, ...nodeArgs, path.join(ROOT, "packages/core/dist/bin/echo.js"), "--port", "0", ...certArgs] },
  { name: "node-tls", cmd: [process.execPath, ...nodeArgs, path.join(ROOT, "bench/servers/node-tls-echo.mjs"), "--port", "0", ...certArgs] },
].filter((s) => opts.servers === undefined || opts.servers.split(",").includes(s.name));

const start = (server) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = [...pin, ...server.cmd];
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on("exit", (code) => reject(new Error(`${server.name} exited with ${code}`)));
  });

const cpuMs = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
};

const connect = (port) =>
  new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: "127.0.0.1", ca, servername: "localhost" }, () => resolve(s));
    s.setNoDelay(true);
    s.on("error", reject);
  });

// Request/response: each connection sends `size` bytes and waits for all of them back.
const rr = async (port, size, conns) => {
  const payload = Buffer.alloc(size, 120);
  const sockets = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  let done = 0;
  let running = true;
  await Promise.all(sockets.map((s) => new Promise((resolve) => {
    let got = 0;
    s.on("data", (d) => {
      got += d.length;
      if (got >= size) {
        got -= size;
        done++;
        if (running) s.write(payload);
        else resolve();
      }
    });
    s.write(payload);
    setTimeout(() => (running = false), DURATION);
    s.on("close", resolve);
  })));
  for (const s of sockets) s.destroy();
  return { requests: done, rate: done / (DURATION / 1000), unit: "req/s" };
};

const bulk = async (port) => {
  const chunk = Buffer.alloc(65536, 98);
  const s = await connect(port);
  let sent = 0;
  let got = 0;
  let running = true;
  setTimeout(() => (running = false), DURATION);
  await new Promise((resolve) => {
    const pump = () => {
      while (running && sent - got < 256 * 1024) {
        s.write(chunk);
        sent += chunk.length;
      }
      if (!running && got >= sent) resolve();
    };
    s.on("data", (d) => {
      got += d.length;
      pump();
    });
    pump();
  });
  s.destroy();
  return { requests: got / 65536, rate: got / 1e6 / (DURATION / 1000), unit: "MB/s" };
};

const handshakes = async (port) => {
  let done = 0;
  const end = Date.now() + DURATION;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (Date.now() < end) {
      const s = await connect(port);
      done++;
      s.destroy();
    }
  }));
  return { requests: done, rate: done / (DURATION / 1000), unit: "handshakes/s" };
};

const CASES = [
  { name: "tls-echo64-c50", run: (p) => rr(p, 64, 50) },
  { name: "tls-echo16k-c16", run: (p) => rr(p, 16384, 16) },
  { name: "tls-bulk-c1", run: (p) => bulk(p) },
  { name: "tls-handshakes-c16", run: (p) => handshakes(p) },
].filter((c) => opts.cases === undefined || opts.cases.split(",").some((w) => c.name.includes(w)));

const rows = [];
for (const server of SERVERS) {
  for (const c of CASES) {
    const { child, port } = await start(server);
    DURATION = WARMUP;
    await c.run(port);
    DURATION = MEASURE;
    const cpu0 = cpuMs(child.pid);
    const r = await c.run(port);
    const cpu = cpuMs(child.pid) - cpu0;
    child.kill("SIGTERM");
    await new Promise((res) => child.on("exit", res));
    const row = { server: server.name, case: c.name, rate: Math.round(r.rate), unit: r.unit, serverCpuUsPerReq: Math.round((cpu * 1000) / Math.max(1, r.requests)) };
    rows.push(row);
    process.stderr.write(`${row.server.padEnd(14)} ${row.case.padEnd(20)} ${String(row.rate).padStart(8)} ${row.unit.padEnd(13)} server CPU ${row.serverCpuUsPerReq} µs/req\n`);
  }
}
console.table(rows);
fs.rmSync(dir, { recursive: true, force: true });

#!/usr/bin/env node
// http-cost.mjs — what one HTTP request costs a server, in measures the machine's load does not
// change: instructions per request (callgrind) and, without valgrind, CPU time per request.
//
// Run: node bench/http-cost.mjs [--servers ringline,platform-node,node-raw] [--cases get-root,...]
//        [--requests 4000] [--warmup 20000] [--conns 16] [--cpu] [--http DIST_BIN]
//
// Each server runs under `valgrind --tool=callgrind --instr-atstart=no` with --single-threaded-gc
// (the GC's work is then on the main thread and counted). The client (this process, plain
// node:net sockets, a minimal response parser that checks status and body length) keeps --conns
// keep-alive connections busy, `depth` requests in flight on each (1, or 16 for the pipelined
// case). It runs --warmup requests (JIT warm), switches instrumentation on (callgrind_control
// -i on), runs --requests more, switches it off and dumps the main thread's count (V8's
// background compiler threads left out: their share depends on when a function gets optimised).
// Under valgrind the server is ~50× slower than the client, so every connection has its request
// waiting whenever the server looks: batching per io_uring_enter is the same from run to run.
//
// --cpu: no valgrind; the server's utime+stime (/proc) over the measured requests instead. Depends
// on load (cache, frequency), unlike the instruction count, but includes the kernel's share.
// --http: another build's demo server (e.g. a copy of main's packages/http/dist/bin/http.js) to
// compare before/after in one run; it is the "ringline" server then.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ResponseCounter } from "./http-client.mjs";
import { freePort, spawnListening, stopChild } from "./child.mjs";
import { callgrind, callgrindArgv, splitGc } from "./callgrind.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const { values: opts } = parseArgs({
  strict: !process.argv.includes("--split"),
  options: {
    servers: { type: "string", default: "ringline" },
    cases: { type: "string", default: "get-root,get-json" },
    requests: { type: "string", default: "4000" },
    warmup: { type: "string", default: "20000" },
    conns: { type: "string", default: "16" },
    cpu: { type: "boolean", default: false },
    http: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opts.help) {
  console.log("node bench/http-cost.mjs [--servers ringline,platform-node,node-raw] [--cases get-root,get-json,post-echo-16k,pipeline16] [--requests N] [--warmup N] [--conns N] [--cpu] [--http DIST_BIN]");
  process.exit(0);
}
const HTTP_JS = opts.http !== undefined ? path.resolve(opts.http) : path.join(ROOT, "packages/http/dist/bin/http.js");
const REQUESTS = Number(opts.requests);
const WARMUP = Number(opts.warmup);
const CONNS = Number(opts.conns);
const CPU = opts.cpu;

const SERVERS = [
  { name: "ringline", args: (p) => [HTTP_JS, "--port", p] },
  { name: "platform-node", args: (p) => [HTTP_JS, "--port", p, "--impl", "node"] },
  { name: "node-raw", args: (p) => [path.join(BENCH, "servers/node-http-raw.mjs"), "--port", p] },
];
const echoBody = Buffer.alloc(16384, "x");
const CASES = [
  { name: "get-root", depth: 1, request: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", body: 13 },
  { name: "get-json", depth: 1, request: "GET /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", body: 17 },
  {
    name: "post-echo-16k",
    depth: 1,
    request: Buffer.concat([
      Buffer.from(`POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${echoBody.length}\r\n\r\n`),
      echoBody,
    ]),
    body: echoBody.length,
  },
  { name: "pipeline16", depth: 16, request: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", body: 13 },
];
const pick = (arg, all) =>
  arg.split(",").map((n) => {
    const x = all.find((y) => y.name === n);
    if (x === undefined) throw new Error(`unknown ${n}; one of ${all.map((y) => y.name).join(", ")}`);
    return x;
  });
const servers = pick(opts.servers, SERVERS);
const cases = pick(opts.cases, CASES);

const start = async (server) => {
  const port = String(await freePort());
  const node = [process.execPath, "--single-threaded-gc"];
  const argv = CPU
    ? [...node, ...server.args(port)]
    : [...callgrindArgv("httpcost"), ...node, ...server.args(port)];
  return { child: await spawnListening(argv, server.name), port: Number(port) };
};
const stop = (h) => stopChild(h.child);

// ------------------------------------------------------------------ client --
/** Runs `total` requests over CONNS connections, `c.depth` in flight on each; resolves when all are answered. */
const drive = (port, c, total) =>
  new Promise((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    const socks = [];
    const req = typeof c.request === "string" ? Buffer.from(c.request, "latin1") : c.request;
    const sendSome = (s, k) => {
      const n = Math.min(k, total - sent);
      if (n <= 0) return;
      sent += n;
      s.write(n === 1 ? req : Buffer.concat(Array(n).fill(req)));
    };
    for (let i = 0; i < CONNS; i++) {
      const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
      const counter = new ResponseCounter(c.body);
      socks.push(s);
      s.on("error", reject);
      s.on("connect", () => sendSome(s, c.depth));
      s.on("data", (d) => {
        let n;
        try {
          n = counter.push(d);
        } catch (e) {
          reject(e);
          return;
        }
        answered += n;
        if (answered >= total) {
          for (const x of socks) x.destroy();
          resolve();
        } else if (n > 0) sendSome(s, n);
      });
    }
  });

/** Dumps `pid`'s profile (main thread) and splits it (see `splitGc`). */
const dumpTotal = (pid) => {
  const prefix = `httpcost-${pid}.out`;
  const before = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(prefix)));
  callgrind(pid, "-d");
  const file = fs.readdirSync(os.tmpdir()).find((f) => f.startsWith(prefix) && /\.out\.\d+-01$/.test(f) && !before.has(f));
  if (file === undefined) throw new Error(`callgrind wrote no main-thread dump for ${pid}`);
  const full = path.join(os.tmpdir(), file);
  console.log(`#   dump ${full}`);
  return splitGc(fs.readFileSync(full, "utf8"));
};
if (process.argv.includes("--split")) {
  // node bench/http-cost.mjs --split FILE N: an existing dump's numbers per request.
  const i = process.argv.indexOf("--split");
  const { total, gc } = splitGc(fs.readFileSync(process.argv[i + 1], "utf8"));
  const n = Number(process.argv[i + 2]);
  console.log(`${(total / n / 1000).toFixed(1)} k total, ${((total - gc) / n / 1000).toFixed(1)} k mutator, ${(gc / n / 1000).toFixed(1)} k GC per request`);
  process.exit(0);
}
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
const cpuSeconds = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
};

// -------------------------------------------------------------------- runs --
const results = [];
console.log(`# ${new Date().toISOString()} load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}; ${CPU ? "cpu time" : "callgrind"}, ${CONNS} conns, ${REQUESTS} requests after ${WARMUP}; server ${path.relative(ROOT, HTTP_JS)}`);
for (const server of servers) {
  for (const c of cases) {
    const h = await start(server);
    try {
      await drive(h.port, c, WARMUP);
      if (CPU) {
        const t0 = cpuSeconds(h.child.pid);
        await drive(h.port, c, REQUESTS);
        const us = ((cpuSeconds(h.child.pid) - t0) * 1e6) / REQUESTS;
        results.push({ server: server.name, case: c.name, cpuUsPerReq: +us.toFixed(2) });
        console.log(`${server.name.padEnd(14)} ${c.name.padEnd(14)} ${us.toFixed(2)} µs CPU per request`);
      } else {
        callgrind(h.child.pid, "-z");
        callgrind(h.child.pid, "-i", "on");
        await drive(h.port, c, REQUESTS);
        callgrind(h.child.pid, "-i", "off");
        const { total, gc } = dumpTotal(h.child.pid);
        const k = (x) => +(x / REQUESTS / 1000).toFixed(1);
        results.push({ server: server.name, case: c.name, kInstrPerReq: k(total), kMutator: k(total - gc), kGc: k(gc) });
        console.log(`${server.name.padEnd(14)} ${c.name.padEnd(14)} ${k(total)} k instructions per request (main thread): ${k(total - gc)} k mutator + ${k(gc)} k GC`);
      }
    } finally {
      await stop(h);
    }
  }
}
console.log(`# load after ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(JSON.stringify(results));

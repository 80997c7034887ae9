#!/usr/bin/env node
// workers-cost.mjs — what a 64 B echo request costs ringline on the main thread, on one worker
// thread and on two, in measures the machine's load does not change: instructions per request
// (callgrind) and ring completions / submissions / wake-ups per request; with --cpu, CPU time per
// request instead of instructions (load-dependent: cache, frequency, a shared core).
//
// Run: node bench/workers-cost.mjs [--servers main,w1,w2,node-net] [--requests 20000]
//        [--warmup 150000] [--conns 50] [--depth 16] [--cpu] [--reps 1] [--keep] [--node-flags="..."]
// --keep leaves the dumps in the temporary directory; --node-flags=--perf-basic-prof also writes
// /tmp/perf-<pid>.map, which names the JIT code the dumps show as addresses.
//
// Servers (bench/servers/workers-echo.mjs unless said): `main` the demo's echo on the process's
// main thread (what `pnpm run echo` runs), `w1`/`w2` the same handler on 1/2 RinglineWorkers
// threads (SO_REUSEPORT), `w2-acc` acceptor mode, `node-net` node:net in one process (what each
// node:cluster worker runs), `cluster-w2` (--cpu only) node:cluster with 2 processes; the
// `-chunks` variants (main-chunks, w1-chunks, w2-chunks, w2-acc-chunks) serve with serveChunks;
// `main-parse` the demo's parse mode (read(parse) + unsafeWrite) on the main thread;
// any worker server with `-free` appended runs --no-pin (its threads left to the scheduler).
// With --cpu the "sw/kreq" column counts the JS threads' context switches per 1,000 requests,
// voluntary (sleeps) / involuntary (preempted: a core shared with something else).
// Each server runs under `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`
// with --single-threaded (the collector's and compiler's work is then on the JS thread). The
// client (this process, node:net) keeps --conns connections with --depth 64 B requests in flight
// each, runs --warmup requests on every worker (JIT warm: 60,000 were not enough, the count
// per request still fell by a fifth from there to 100,000), switches instrumentation on, runs --requests more,
// switches it off and sums the dump over the JS threads (the main thread and the worker threads;
// other threads, libuv's and V8's idle helpers, are reported apart and should be ~0). Under valgrind the server is ~50× slower than the client, so every connection
// has requests waiting whenever a worker looks: batching is the most the connections allow,
// whatever the load. A worker serving half the connections sees half as many per wake-up; the
// completions/submissions per request columns show it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { callgrind, callgrindArgv, dumpThreads } from "./callgrind.mjs";
import { freePort, lines, stopChild, treeCpuNs } from "./child.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    servers: { type: "string", default: "main,w1,w2,node-net" },
    requests: { type: "string", default: "20000" },
    warmup: { type: "string", default: "150000" },
    conns: { type: "string", default: "50" },
    depth: { type: "string", default: "16" },
    reps: { type: "string", default: "1" },
    cpu: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "node-flags": { type: "string", default: "" },
  },
});
const REQUESTS = Number(opts.requests);
const WARMUP = Number(opts.warmup);
const CONNS = Number(opts.conns);
const DEPTH = Number(opts.depth);
const CPU = opts.cpu;
const SIZE = 64;

const ECHO = path.join(BENCH, "servers/workers-echo.mjs");
const SERVERS = [
  { name: "main", ringline: true, args: (p) => [ECHO, "--port", p, "--workers", "0"] },
  { name: "w1", ringline: true, workers: 1, args: (p) => [ECHO, "--port", p, "--workers", "1"] },
  { name: "w2", ringline: true, workers: 2, args: (p) => [ECHO, "--port", p, "--workers", "2"] },
  { name: "w2-acc", ringline: true, workers: 2, args: (p) => [ECHO, "--port", p, "--workers", "2", "--acceptor"] },
  { name: "main-parse", ringline: true, args: (p) => [ECHO, "--port", p, "--workers", "0", "--mode", "parse"] },
  { name: "main-chunks", ringline: true, args: (p) => [ECHO, "--port", p, "--workers", "0", "--mode", "chunks"] },
  { name: "w1-chunks", ringline: true, workers: 1, args: (p) => [ECHO, "--port", p, "--workers", "1", "--mode", "chunks"] },
  { name: "w2-chunks", ringline: true, workers: 2, args: (p) => [ECHO, "--port", p, "--workers", "2", "--mode", "chunks"] },
  { name: "w2-acc-chunks", ringline: true, workers: 2, args: (p) => [ECHO, "--port", p, "--workers", "2", "--acceptor", "--mode", "chunks"] },
  { name: "node-net", args: (p) => [path.join(BENCH, "servers/node-net-echo.mjs"), "--port", p] },
  { name: "cluster-w2", cpuOnly: true, workers: 2, args: (p) => [path.join(BENCH, "servers/node-cluster-echo.mjs"), "--port", p, "--workers", "2"] },
];
// `<worker server>-free`: the same with --no-pin (the workers' threads left to the scheduler).
const withFree = (n) => {
  const base = n.endsWith("-free") ? SERVERS.find((x) => x.name === n.slice(0, -5) && x.workers !== undefined && x.ringline) : undefined;
  return base && { ...base, name: n, args: (p) => [...base.args(p), "--no-pin"] };
};
const servers = opts.servers.split(",").map((n) => {
  const s = SERVERS.find((x) => x.name === n) ?? withFree(n);
  if (s === undefined) throw new Error(`unknown server ${n}; one of ${SERVERS.map((x) => x.name).join(", ")}`);
  if (s.cpuOnly && !CPU) throw new Error(`${n} runs with --cpu only (its workers are child processes callgrind does not follow here)`);
  return s;
});

/** Starts a server; resolves once it printed "listening on" (and, for ringline, its threads). */
const start = async (server) => {
  const port = String(await freePort());
  // --single-threaded: V8 compiles and collects on the JS thread that needs it, so the measured
  // window holds no background compile job finishing late (valgrind runs threads one at a time).
  const node = [process.execPath, "--single-threaded", ...opts["node-flags"].split(" ").filter(Boolean)];
  const argv = CPU ? [...node, ...server.args(port)] : [...callgrindArgv("workerscost"), ...node, ...server.args(port)];
  const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
  const seen = [];
  const waiters = [];
  lines(child.stdout, (l) => {
    seen.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const line = (re) =>
    new Promise((resolve, reject) => {
      const look = () => {
        const l = seen.find((x) => re.test(x));
        if (l !== undefined) {
          seen.splice(seen.indexOf(l), 1);
          resolve(l);
        } else waiters.push(look);
      };
      child.once("exit", (code) => reject(new Error(`${server.name} exited with ${code}\n${err}`)));
      look();
    });
  await line(/^listening on /);
  const threads = server.ringline ? (await line(/^threads /)).slice(8).split(",").map(Number) : [child.pid];
  /** The ring counters (ringline servers), summed over its JS threads. */
  const stats = async () => {
    if (!server.ringline) return undefined;
    child.stdin.write("stats\n");
    return JSON.parse((await line(/^stats /)).slice(6));
  };
  return { child, port: Number(port), threads, stats };
};

// ------------------------------------------------------------------ client --
/**
 * CONNS connections to `port`, kept open across runs (accepting and closing them stays out of
 * the measured window); `run(total)` sends `total` 64 B echo requests, DEPTH in flight on each.
 */
const connectAll = async (port) => {
  const req = Buffer.alloc(SIZE * DEPTH, "r");
  let run = null; // { left to send, answered, total, resolve }
  const socks = await Promise.all(
    Array.from({ length: CONNS }, () =>
      new Promise((resolve, reject) => {
        const s = net.connect({ port, host: "127.0.0.1", noDelay: true }, () => resolve(s));
        s.on("error", (e) => (run ? run.reject(e) : reject(e)));
        let bytes = 0;
        s.on("data", (d) => {
          const before = Math.floor(bytes / SIZE);
          bytes += d.length;
          const n = Math.floor(bytes / SIZE) - before;
          if (run === null) return;
          run.answered += n;
          if (run.answered >= run.total) {
            const r = run;
            run = null;
            r.resolve();
          } else sendSome(s, n);
        });
      }),
    ),
  );
  const sendSome = (s, k) => {
    const n = Math.min(k, run.left);
    if (n <= 0) return;
    run.left -= n;
    s.write(req.subarray(0, n * SIZE));
  };
  return {
    run: (total) =>
      new Promise((resolve, reject) => {
        run = { left: total, answered: 0, total, resolve, reject };
        for (const s of socks) sendSome(s, DEPTH);
      }),
    close: () => socks.forEach((s) => s.destroy()),
  };
};

// Context switches of the server's JS threads (ringline: the threads it printed; node servers: the
// main thread of the process and of each child process, node:cluster's workers), summed.
const switches = (pid, tids, ringline) => {
  const out = { vol: 0, invol: 0 };
  const add = (status) => {
    const st = fs.readFileSync(status, "utf8");
    out.vol += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(st)[1]);
    out.invol += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(st)[1]);
  };
  if (ringline) for (const tid of tids) add(`/proc/${pid}/task/${tid}/status`);
  else {
    add(`/proc/${pid}/status`);
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    for (const kid of kids ? kids.split(" ") : []) add(`/proc/${kid}/status`);
  }
  return out;
};

const fmt = (x, d = 1) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");

// -------------------------------------------------------------------- runs --
const results = [];
console.log(`# ${new Date().toISOString()} load ${load()}; ${CPU ? "cpu time" : "callgrind"}, 64 B echo, ${CONNS} conns × depth ${DEPTH}, ${REQUESTS} requests after ${WARMUP}`);
console.log(
  `${"server".padEnd(14)} ${(CPU ? "µs CPU/req" : "k instr/req").padStart(12)} ${(CPU ? "" : "(mutator+GC+JIT)").padStart(20)} ${(CPU ? "sw/kreq" : "other thr").padStart(10)}` +
    ` ${"cqe/req".padStart(8)} ${"submit/req".padStart(10)} ${"wake/req".padStart(9)}  shares`,
);
for (let rep = 0; rep < Number(opts.reps); rep++) {
  for (const server of servers) {
    const h = await start(server);
    const client = await connectAll(h.port);
    try {
      // Every worker's isolate tiers its code up on its own, and SO_REUSEPORT may give one of
      // them few connections: warm up until each served --warmup requests.
      await client.run(WARMUP * Math.max(1, server.workers ?? 1));
      let s0 = await h.stats();
      for (let more = 0; s0 !== undefined && Math.min(...s0.perWorker) / SIZE < WARMUP; more++) {
        if (more === 4) {
          console.log(`#   ${server.name}: a worker served only ${Math.min(...s0.perWorker) / SIZE} warm-up requests (an uneven split of the requests); its code may be colder`);
          break;
        }
        await client.run(WARMUP);
        s0 = await h.stats();
      }
      const r = { server: server.name, rep };
      if (CPU) {
        const t0 = treeCpuNs(h.child.pid);
        const c0 = switches(h.child.pid, h.threads, server.ringline);
        await client.run(REQUESTS);
        r.cpuUsPerReq = (treeCpuNs(h.child.pid) - t0) / REQUESTS / 1000;
        const c1 = switches(h.child.pid, h.threads, server.ringline);
        // Per 1,000 requests, over the JS threads: sleeps (voluntary) and preemptions (involuntary).
        r.volPerKReq = ((c1.vol - c0.vol) * 1000) / REQUESTS;
        r.involPerKReq = ((c1.invol - c0.invol) * 1000) / REQUESTS;
      } else {
        callgrind(h.child.pid, "-z");
        callgrind(h.child.pid, "-i", "on");
        await client.run(REQUESTS);
        callgrind(h.child.pid, "-i", "off");
        const dump = dumpThreads(h.child.pid, "workerscost");
        // The JS threads: the main thread and, for worker servers, the busiest `workers` others.
        const js = dump.slice(0, 1 + (server.ringline ? server.workers ?? 0 : 0));
        const sum = (ts, k) => ts.reduce((a, t) => a + t[k], 0);
        const k = (x) => x / REQUESTS / 1000;
        r.kInstrPerReq = k(sum(js, "total"));
        // The mutator without the collector and without the optimising compiler (callgrind.mjs).
        r.kMutator = k(sum(js, "total") - sum(js, "gc") - sum(js, "jit"));
        r.kGc = k(sum(js, "gc"));
        r.kJit = k(sum(js, "jit"));
        r.kOtherThreads = k(sum(dump, "total") - sum(js, "total"));
        r.kPerThread = js.map((t) => +k(t.total).toFixed(2));
        if (opts.keep) console.log(`#   dumps ${dump.map((t) => `${t.file} (${fmt(k(t.total), 2)} k/req)`).join(", ")}`);
        else for (const t of dump) fs.rmSync(t.file);
      }
      const s1 = await h.stats();
      if (s0 !== undefined) {
        const n = (s1.bytesIn - s0.bytesIn) / SIZE;
        r.cqesPerReq = (s1.cqes - s0.cqes) / n;
        r.submitsPerReq = (s1.submitted - s0.submitted) / n;
        r.wakeupsPerReq = (s1.wakeups - s0.wakeups) / n;
        r.shares = s1.perWorker.map((b, i) => (b - s0.perWorker[i]) / SIZE / n);
      }
      results.push(r);
      console.log(
        `${server.name.padEnd(14)} ${fmt(CPU ? r.cpuUsPerReq : r.kInstrPerReq, 2).padStart(12)} ${(CPU ? "" : `(${fmt(r.kMutator, 2)}+${fmt(r.kGc, 2)}+${fmt(r.kJit, 2)})`).padStart(20)}` +
          ` ${(CPU ? `${fmt(r.volPerKReq, 1)}/${fmt(r.involPerKReq, 1)}` : fmt(r.kOtherThreads, 2)).padStart(10)} ${fmt(r.cqesPerReq, 3).padStart(8)} ${fmt(r.submitsPerReq, 3).padStart(10)} ${fmt(r.wakeupsPerReq, 3).padStart(9)}` +
          `  ${r.shares ? r.shares.map((x) => fmt(x * 100, 0) + "%").join("/") : ""}${r.kPerThread ? `  per JS thread k: ${r.kPerThread.join(" / ")}` : ""}`,
      );
    } finally {
      client.close();
      await stopChild(h.child);
    }
  }
}
console.log(`# load after ${load()}`);
console.log(JSON.stringify(results));

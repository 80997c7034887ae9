// conncost.mjs — what one connection costs a server, measured in ways the machine's load does not
// change: idle memory per connection (after a full GC) and instructions per connection lifecycle
// (callgrind).
//
// Run: node bench/conncost.mjs mem   [--servers a,b] [--conns 1000]
//      node bench/conncost.mjs heap  [--servers a,b] [--conns 500] [--top 40]
//      node bench/conncost.mjs instr [--servers a,b] [--conns 300] [--warmup 300]
//      node bench/conncost.mjs breakdown [--servers a,b] [--conns 1000] [--alloc] [--top 40]
//
// mem: each server runs with --expose-gc and a preload (conncost-probe.mjs) that, on SIGUSR2,
// runs gc() twice and prints process.memoryUsage(). The script takes that after `--conns` idle
// connections and again after `--conns` more (each proven with a 1-byte echo, as
// bench/loadgen.c's --idle does), and prints heap, external and RSS deltas per connection. RSS is what
// bench/run.mjs's idle1000 case reports (without the GC); the heap delta is the part a change
// in JS can move. "young generation" is the growth of its physical size (before the GC) from the
// fresh server to `--conns` connections, per connection: run.mjs's figure holds it too (what it
// is made of: `breakdown`).
//
// heap: the same two points, with a heap snapshot at each (after the GC); prints what one idle
// connection adds to the heap by object kind and constructor, closures by the line that defines
// them (bench/heapdiff.mjs): where the heap per connection goes, and what a change removed.
//
// breakdown: what run.mjs's idle1000 figure is made of. A fresh server, then `--conns` idle
// connections (as run.mjs), sampled before any GC: growth per connection of the RSS, of each V8
// heap space's physical size and of the native rest (anonymous memory minus the heap spaces),
// next to the live heap per connection (after a full GC) and the bytes that survived scavenges
// per connection (--trace-gc-nvp: promoted + new_space_survived). V8 doubles the young generation
// each time the bytes surviving scavenges since its last growth exceed its size (1 → 2 → 4 → 8
// → 16 MB), so its growth follows the surviving bytes in steps, not the live heap; and its
// resident size grows as allocation first touches its pages, up to twice that size. With
// --alloc it also prints the bytes allocated per connection (V8's sampling heap profiler over
// the same window, collected objects included; its own memory then inflates the RSS figures) and
// the functions that allocate most, each with its two callers.
//
// instr: each server runs under `valgrind --tool=callgrind --instr-atstart=no`; the client runs
// `--warmup` lifecycles (JIT warm), then switches instrumentation on (callgrind_control -i on),
// runs `--conns` lifecycles one after the other, switches it off and dumps the main thread's
// count (V8's background compiler is left out: its share depends on when a function gets
// optimised; the GC runs on the main thread, --single-threaded-gc for every server). A lifecycle is:
// plain — connect, 64 B echoed, client half-close, server closes; tls — a full handshake (no
// resumption), 64 B echoed, close_notify + FIN. The report is the server's instructions per
// lifecycle (idle loop turns in between are included, and are few: the client is never idle).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { heapDiff } from "./heapdiff.mjs";
import { freePort, lines, stopChild } from "./child.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const { values: early } = parseArgs({ strict: false });
const ECHO_JS = typeof early.echo === "string" ? path.resolve(early.echo) : path.join(ROOT, "packages/core/dist/bin/echo.js");
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    servers: { type: "string" },
    conns: { type: "string" },
    warmup: { type: "string", default: "1000" },
    top: { type: "string", default: "40" },
    // Another build's demo server, to compare before/after in one run (e.g. a copy of main's dist).
    echo: { type: "string" },
    // breakdown: also sample allocations (the profiler's own memory then shows in the RSS).
    alloc: { type: "boolean" },
  },
});
const what = positionals[0];
if (what !== "mem" && what !== "heap" && what !== "instr" && what !== "breakdown") {
  console.error("usage: node bench/conncost.mjs mem|heap|instr|breakdown [--servers a,b] [--conns N] [--warmup N] [--top N]");
  process.exit(2);
}
// heap and mem run the servers the same way; heap also writes snapshots.
const memLike = what !== "instr";
const CONNS = Number(opts.conns ?? (what === "mem" || what === "breakdown" ? 1000 : what === "heap" ? 500 : 300));
const SNAP_DIR = what === "heap" ? fs.mkdtempSync(path.join(os.tmpdir(), "ringline-conncost-heap-")) : undefined;
// Where the scripts a snapshot names are looked up (bench/heapdiff.mjs).
const SOURCE_DIRS = [
  ...fs.readdirSync(path.join(ROOT, "packages")).map((p) => path.join(ROOT, "packages", p, "dist")),
  ...fs.readdirSync(path.join(ROOT, "node_modules/.pnpm")).filter((d) => /^(effect@|@effect\+platform@)/.test(d))
    .map((d) => path.join(ROOT, "node_modules/.pnpm", d, "node_modules", d.startsWith("effect@") ? "effect" : "@effect/platform", "dist/esm")),
  BENCH,
];
const WARMUP = Number(opts.warmup);

let certArgs = [];
let ca;
const needTls = () => {
  if (ca !== undefined) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringline-conncost-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { cwd: dir, stdio: "ignore" });
  ca = fs.readFileSync(path.join(dir, "cert.pem"));
  certArgs = ["--tls-cert", path.join(dir, "cert.pem"), "--tls-key", path.join(dir, "key.pem")];
};

let PORT = 0;
/** A port free right now (each server gets its own; node-net-echo prints the port it was given). */
const SERVERS = [
  { name: "ringline", args: () => [ECHO_JS, "--port", String(PORT)] },
  { name: "ringline-parse", args: () => [ECHO_JS, "--port", String(PORT), "--mode", "parse"] },
  { name: "ringline-chunks", args: () => [ECHO_JS, "--port", String(PORT), "--mode", "chunks"] },
  { name: "node-net", args: () => [path.join(BENCH, "servers/node-net-echo.mjs"), "--port", String(PORT)] },
  { name: "platform-ringline", args: () => [path.join(BENCH, "servers/platform-ringline-echo.mjs"), "--port", String(PORT)] },
  { name: "platform-node", args: () => [path.join(BENCH, "servers/platform-node-echo.mjs"), "--port", String(PORT)] },
  { name: "ringline-tls", tls: true, args: () => [ECHO_JS, "--port", String(PORT), ...certArgs] },
  { name: "node-tls", tls: true, args: () => [path.join(BENCH, "servers/node-tls-echo.mjs"), "--port", String(PORT), ...certArgs] },
];
const DEFAULT = memLike
  ? ["ringline", "ringline-parse", "ringline-chunks", "node-net", "platform-ringline", "platform-node"]
  : ["ringline", "node-net", "ringline-tls", "node-tls"];
const picked = (opts.servers?.split(",") ?? DEFAULT).map((n) => {
  const s = SERVERS.find((x) => x.name === n);
  if (s === undefined) throw new Error(`unknown server ${n} (${SERVERS.map((x) => x.name).join(", ")})`);
  return s;
});

// ------------------------------------------------------------------ server --
const start = async (server) => {
  PORT = await freePort();
  return new Promise((resolve, reject) => {
    if (server.tls) needTls();
    // instr: every server's GC runs on its main thread (--single-threaded-gc), so that the count
    // of the main thread includes the collection of what a connection allocated.
    const node = [process.execPath, ...(memLike ? ["--expose-gc", "--import", path.join(BENCH, "conncost-probe.mjs")] : ["--single-threaded-gc"])];
    if (what === "breakdown") node.push("--trace-gc-nvp");
    const argv = what === "instr"
      ? ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes", `--callgrind-out-file=${path.join(os.tmpdir(), "conncost-%p.out")}`, ...node, ...server.args()]
      : [...node, ...server.args()];
    const env = SNAP_DIR !== undefined ? { ...process.env, CONNCOST_SNAPSHOT: SNAP_DIR }
      : opts.alloc === true ? { ...process.env, CONNCOST_ALLOC: "1" } : process.env;
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env });
    const mem = [];
    // Bytes that survived scavenges so far, and how many scavenges (--trace-gc-nvp lines).
    const young = { survived: 0, scavenges: 0 };
    let listening = false;
    lines(child.stdout, (line) => {
      const m = /listening on [^:]+:(\d+)/.exec(line);
      if (m && !listening) {
        listening = true;
        resolve({ child, port: Number(m[1]), mem, young });
      }
      const p = /gc=s .*promoted=(\d+) new_space_survived=(\d+)/.exec(line);
      if (p) {
        young.survived += Number(p[1]) + Number(p[2]);
        young.scavenges++;
      }
    });
    lines(child.stderr, (line) => {
      if (line.startsWith("#mem ")) mem.push(JSON.parse(line.slice(5)));
    });
    child.on("exit", (code) => reject(new Error(`${server.name} exited with ${code}`)));
  });
};

const stop = (h) => stopChild(h.child);

const sampleMem = async (h) => {
  const n = h.mem.length;
  h.child.kill("SIGUSR2");
  while (h.mem.length === n) await new Promise((r) => setTimeout(r, 20));
  return h.mem[n];
};

// ------------------------------------------------------------------ client --
const once = (s, ev) => new Promise((resolve, reject) => { s.once(ev, resolve); s.once("error", reject); });

/** Opens a connection and proves it with a 1-byte echo; the connection then stays idle. */
const openIdle = async (port) => {
  const s = net.connect({ port, host: "127.0.0.1" });
  s.on("error", () => {});
  await once(s, "connect");
  s.write(Buffer.from([1]));
  await once(s, "data");
  return s;
};

const payload = Buffer.alloc(64, 7);

/** One lifecycle: connect (and handshake), 64 B echoed, the client closes, the server's close is seen. */
const lifecycle = async (port, secure) => {
  const s = secure
    ? tls.connect({ port, host: "127.0.0.1", ca, servername: "localhost", session: undefined })
    : net.connect({ port, host: "127.0.0.1" });
  await once(s, secure ? "secureConnect" : "connect");
  s.write(payload);
  let got = 0;
  const closed = once(s, "close");
  s.on("data", (d) => {
    got += d.length;
    if (got >= 64) s.end();
  });
  await closed;
  if (got !== 64) throw new Error(`echoed ${got} bytes, not 64`);
};

const callgrind = (pid, ...args) => execFileSync("callgrind_control", [...args, String(pid)], { stdio: ["ignore", "pipe", "pipe"] }).toString();

/**
 * Dumps the profile of `pid` and returns the main thread's instruction total (the "totals:" line
 * of its dump). Only the main thread: the others are V8's background compiler and GC helpers,
 * whose work depends on timing (when a function gets optimised), not on what a connection costs.
 */
const dumpTotal = (pid) => {
  const prefix = `conncost-${pid}.out`;
  const before = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(prefix)));
  callgrind(pid, "-d");
  const file = fs.readdirSync(os.tmpdir()).find((f) => f.startsWith(prefix) && /\.out\.\d+-01$/.test(f) && !before.has(f));
  if (file === undefined) throw new Error(`callgrind wrote no main-thread dump for ${pid}`);
  const text = fs.readFileSync(path.join(os.tmpdir(), file), "utf8");
  const m = /^totals:\s*(\d+)/m.exec(text);
  if (m === null) throw new Error(`no totals in ${file}`);
  return Number(m[1]);
};

// -------------------------------------------------------------------- runs --
const results = [];
console.log(`# ${new Date().toISOString()} load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (const server of picked) {
  const h = await start(server);
  if (what === "breakdown") {
    // As run.mjs's idle1000: a fresh server, `conns` connections, read without a GC.
    const fresh = await sampleMem(h);
    const y0 = { ...h.young };
    const socks = [];
    for (let i = 0; i < CONNS; i++) socks.push(await openIdle(h.port));
    await new Promise((r) => setTimeout(r, 200));
    const y1 = { ...h.young };
    const idle = await sampleMem(h);
    const kib = (a, b) => +((b - a) / CONNS / 1024).toFixed(2);
    const mb = (b) => (b / 1048576).toFixed(1);
    const spaces = Object.fromEntries(Object.keys(idle.raw.spaces).map((k) => [k, kib(fresh.raw.spaces[k] ?? 0, idle.raw.spaces[k])]));
    const heapSum = (s) => Object.values(s).reduce((a, b) => a + b, 0);
    const r = {
      server: server.name,
      conns: CONNS,
      rssKiB: kib(fresh.raw.rss, idle.raw.rss),
      liveHeapKiB: kib(fresh.heapUsed, idle.heapUsed),
      survivedKiB: +((y1.survived - y0.survived) / CONNS / 1024).toFixed(2),
      scavenges: y1.scavenges - y0.scavenges,
      spaces,
      nativeKiB: kib(fresh.raw.anon - heapSum(fresh.raw.spaces), idle.raw.anon - heapSum(idle.raw.spaces)),
      fileKiB: kib(fresh.raw.rss - fresh.raw.anon, idle.raw.rss - idle.raw.anon)
    };
    if (idle.alloc !== undefined) r.allocatedKiB = +(idle.alloc.total / CONNS / 1024).toFixed(2);
    results.push(r);
    const big = Object.entries(spaces).filter(([, v]) => Math.abs(v) >= 0.05).map(([k, v]) => `${k.replace(/_space$/, "")} ${v}`).join(", ");
    console.log(`${server.name.padEnd(18)} per idle conn (0 → ${CONNS}, no GC): rss ${r.rssKiB} KiB = heap spaces {${big}} + native ${r.nativeKiB} + file ${r.fileKiB} (new space ${mb(fresh.raw.spaces.new_space)} → ${mb(idle.raw.spaces.new_space)} MB); live heap ${r.liveHeapKiB}, survived scavenges ${r.survivedKiB} KiB (${r.scavenges} scavenges)`);
    if (idle.alloc !== undefined) {
      console.log(`  allocated per connection (accept, 1-byte echo, idle; sampled): ${r.allocatedKiB} KiB, largest:`);
      for (const [k, b] of idle.alloc.by.slice(0, Number(opts.top))) console.log(`  ${(b / CONNS).toFixed(0).padStart(7)} B  ${k}`);
    }
    for (const s of socks) s.destroy();
    await new Promise((r) => setTimeout(r, 200));
  } else if (memLike) {
    // Measured between `conns` and 2 × `conns` idle connections: what the first connections pay
    // once (compiled code, lazily built module state) stays out of the per-connection figure.
    // The young generation before any connection (run.mjs's baseline is a fresh server too).
    const fresh = await sampleMem(h);
    const socks = [];
    for (let i = 0; i < CONNS; i++) socks.push(await openIdle(h.port));
    await new Promise((r) => setTimeout(r, 200));
    const before = await sampleMem(h);
    for (let i = 0; i < CONNS; i++) socks.push(await openIdle(h.port));
    await new Promise((r) => setTimeout(r, 200));
    const after = await sampleMem(h);
    const per = (k) => ((after[k] - before[k]) / CONNS / 1024).toFixed(2);
    const r = { server: server.name, conns: CONNS, heapKiB: per("heapUsed"), externalKiB: per("external"), rssKiB: per("rss"), youngKiB: ((before.newSpace - fresh.newSpace) / CONNS / 1024).toFixed(2) };
    results.push(r);
    // heap mode: the snapshots themselves take memory, so only the heap figures mean anything.
    if (what === "mem") console.log(`${server.name.padEnd(18)} per idle conn: heap ${r.heapKiB} KiB  external ${r.externalKiB} KiB  rss ${r.rssKiB} KiB  (${CONNS} → ${2 * CONNS} conns); young generation +${r.youngKiB} KiB (0 → ${CONNS})`);
    if (what === "heap") {
      const { total, rows } = heapDiff(before.snapshot, after.snapshot, CONNS, SOURCE_DIRS);
      r.heapBytes = Math.round(total);
      console.log(`${server.name.padEnd(18)} per idle conn: heap ${r.heapKiB} KiB (${CONNS} → ${2 * CONNS} conns); snapshot ${total.toFixed(0)} B, largest:`);
      for (const row of rows.slice(0, Number(opts.top))) {
        console.log(`  ${row.bytes.toFixed(0).padStart(7)} B ${row.count.toFixed(2).padStart(7)}×  ${row.key}`);
      }
      fs.rmSync(before.snapshot);
      fs.rmSync(after.snapshot);
    }
    for (const s of socks) s.destroy();
    await new Promise((r) => setTimeout(r, 200));
  } else {
    for (let i = 0; i < WARMUP; i++) await lifecycle(h.port, server.tls);
    callgrind(h.child.pid, "-z");
    callgrind(h.child.pid, "-i", "on");
    for (let i = 0; i < CONNS; i++) await lifecycle(h.port, server.tls);
    callgrind(h.child.pid, "-i", "off");
    const ir = dumpTotal(h.child.pid);
    const r = { server: server.name, conns: CONNS, instrPerConnK: +(ir / CONNS / 1000).toFixed(1) };
    results.push(r);
    console.log(`${server.name.padEnd(18)} ${r.instrPerConnK} k instructions per lifecycle (${CONNS} after ${WARMUP} warm-up)`);
  }
  await stop(h);
}
if (SNAP_DIR !== undefined) fs.rmSync(SNAP_DIR, { recursive: true, force: true });
console.log(`# load after ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(JSON.stringify(results));

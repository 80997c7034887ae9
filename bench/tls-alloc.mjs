#!/usr/bin/env node
// tls-alloc.mjs — JS heap allocated per request by the ringline TLS echo server, per serving mode:
// load-independent (unlike CPU time on a shared machine) and cheap to run. The server runs in this
// process (Tls.listen + the demo's echo handlers), the C TLS load generator (bench/bin/tls-loadgen,
// built by bench/tls.mjs) in a child on another CPU; between its measure-start and -end markers
// V8's sampling heap profiler records every allocation, also those the GC collected since.
// Reported per request: bytes allocated, and the functions that allocate most (self bytes).
//
// Run: node bench/tls-alloc.mjs [--mode stream|parse|chunks] [--size 16384] [--conns 16]
//        [--duration 5] [--warmup 2] [--top 12]
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { Session } from "node:inspector";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LOADGEN = path.join(ROOT, "bench/bin/tls-loadgen");
const { values: opts } = parseArgs({
  options: {
    mode: { type: "string", default: "chunks" },
    size: { type: "string", default: "16384" },
    conns: { type: "string", default: "16" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    top: { type: "string", default: "12" },
  },
});
if (!["stream", "parse", "chunks"].includes(opts.mode)) throw new Error(`--mode must be stream, parse or chunks, got ${opts.mode}`);
if (!fs.existsSync(LOADGEN)) {
  console.log(`SKIP tls-alloc: ${LOADGEN} is missing (node bench/tls.mjs builds it)`);
  process.exit(0);
}

const { Listener, Ringline } = await import(path.join(ROOT, "packages/core/dist/index.js"));
const { echoChunk, echoHandlers } = await import(path.join(ROOT, "packages/core/dist/bin/echoHandlers.js"));
const { Tls } = await import(path.join(ROOT, "packages/tls/dist/index.js"));
const { Effect } = await import("effect");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringline-tls-alloc-"));
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
  "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { cwd: dir, stdio: "ignore" });

const session = new Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));

/** Runs the load generator against `port`; the profile covers its measured window only. */
const drive = async (port) => {
  const argv = ["taskset", "-c", "1", LOADGEN, "--port", String(port), "--tls", "--ca", path.join(dir, "cert.pem"),
    "--servername", "localhost", "--mode", "rr", "--size", opts.size, "--conns", opts.conns,
    "--warmup", opts.warmup, "--duration", opts.duration, "--label", "alloc"];
  const lg = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let profile;
  let started;
  lg.stdout.on("data", (d) => (out += d));
  lg.stderr.setEncoding("utf8");
  lg.stderr.on("data", (d) => {
    err += d;
    if (started === undefined && err.includes("#measure-start\n")) {
      started = post("HeapProfiler.startSampling", { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    if (profile === undefined && err.includes("#measure-end\n")) profile = started.then(() => post("HeapProfiler.stopSampling"));
  });
  const code = await new Promise((resolve) => lg.on("exit", resolve));
  const res = JSON.parse(out);
  if (code !== 0 || res.errors > 0 || profile === undefined) throw new Error(`load generator exit ${code}: ${err.trim().split("\n").slice(-3).join(" | ")}`);
  return { res, profile: (await profile).profile };
};

const report = ({ res, profile }) => {
  const self = new Map();
  let total = 0;
  const walk = (n) => {
    const bytes = n.selfSize;
    total += bytes;
    const f = n.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + bytes);
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  const per = (b) => (b / Math.max(1, res.requests)).toFixed(0).padStart(7);
  console.log(`tls-alloc ${opts.mode} size ${opts.size} c${opts.conns}: ${res.requests} requests in ${res.elapsed_s.toFixed(1)} s; ` +
    `${per(total).trim()} B of JS heap allocated per request (sampled every 256 B; load average ${os.loadavg()[0].toFixed(1)})`);
  for (const [k, b] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(opts.top))) console.log(`${per(b)} B  ${k}`);
};

const program = Effect.gen(function*() {
  const listener = yield* Tls.listen({ port: 0, cert: fs.readFileSync(path.join(dir, "cert.pem")), key: fs.readFileSync(path.join(dir, "key.pem")) });
  const served = opts.mode === "chunks"
    ? Listener.serveChunks(listener, echoChunk, { onFailure: () => Effect.void })
    : listener.serve((conn) => Effect.ignore(echoHandlers[opts.mode](conn)));
  yield* Effect.forkScoped(served);
  const result = yield* Effect.promise(() => drive(listener.address.port));
  report(result);
}).pipe(Effect.scoped, Effect.provide(Ringline.layer()));

await Effect.runPromise(program);
process.exit(0);

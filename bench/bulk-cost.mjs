#!/usr/bin/env node
// bulk-cost.mjs — what a bulk echo costs the server per 64 KiB, in load-independent units:
// callgrind instructions of the server's main thread (the event loop; the collector's share
// apart) per 64 KiB echoed. The client is node:net in this process (not measured): CONNS
// connections, each with DEPTH 64 KiB writes in flight.
// `--cpu` runs the servers without valgrind and reports the server's CPU time (user + system of
// every thread, /proc/<pid>/task/*/schedstat) per 64 KiB instead, `--reps` times, servers interleaved:
// median (min–max). Not load-independent, but CPU time, unlike a rate, counts only the server's
// own work (plus what sharing the caches with other processes costs it); with it, each rep's
// user / system split and the server's minor page faults per 64 KiB (/proc/<pid>/stat).
//
// A/B against another build: `--base DIR` (a checkout with its own built dist and addon, e.g.
// /work/main) and a server name with `@base` (`--servers chunks@base,chunks`) runs that server
// from DIR; interleaved with this checkout's in every rep.
//
// Run: node bench/bulk-cost.mjs [--servers stream,parse,chunks,platform,c-uring] [--conns 1]
//      [--mib 64] [--warmup-mib 512] [--cpu [--reps 3]] [--base DIR]
// The warm-up is long on purpose: after 32 MiB (512 chunks) V8 was still compiling inside the
// measured window under valgrind and much of the code still ran in the baseline tier (stream
// mode: 236 k instructions per 64 KiB then, 80 k after 512 MiB; bench/README "Stream mode per
// chunk"). The compiler's part is printed apart whatever the warm-up.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { callgrind, callgrindArgv, dumpThreads } from "./callgrind.mjs";
import { freePort, spawnListening, stopChild, treeCpuNs } from "./child.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    servers: { type: "string", default: "stream,parse,chunks,platform" },
    conns: { type: "string", default: "1" },
    depth: { type: "string", default: "4" },
    mib: { type: "string", default: "64" },
    "warmup-mib": { type: "string", default: "512" },
    cpu: { type: "boolean", default: false },
    reps: { type: "string", default: "3" },
    base: { type: "string" },
  },
});
const CONNS = Number(opts.conns);
const DEPTH = Number(opts.depth);
const CHUNK = 65536;
const DEMO = path.join(BENCH, "../packages/core/dist/bin/echo.js");
const SERVERS = {
  stream: (p) => [DEMO, "--port", p, "--mode", "stream"],
  parse: (p) => [DEMO, "--port", p, "--mode", "parse"],
  chunks: (p) => [DEMO, "--port", p, "--mode", "chunks"],
  platform: (p) => [path.join(BENCH, "servers/platform-ringline-echo.mjs"), "--port", p],
  // The C io_uring ceiling (bench/uring-echo.c, built by `make -C bench`), --cpu only.
  "c-uring": (p) => [path.join(BENCH, "bin/uring-echo"), p],
};
const CPU = opts.cpu;

const ROOT = path.join(BENCH, "..");
/** `name`'s command; `x@base` is server x with this checkout's paths moved to `--base`. */
const command = (name, port) => {
  const [server, base] = name.split("@");
  const cmd = SERVERS[server](port);
  if (base === undefined) return cmd;
  if (opts.base === undefined) throw new Error(`${name} needs --base DIR`);
  return cmd.map((a) => a.startsWith(ROOT) ? path.join(opts.base, path.relative(ROOT, a)) : a);
};

const start = async (name) => {
  const port = String(await freePort());
  const cmd = command(name, port);
  const node = name.startsWith("c-uring") ? cmd : [process.execPath, "--single-threaded", ...cmd];
  if (name.startsWith("c-uring") && !CPU) throw new Error("c-uring runs with --cpu only");
  const argv = CPU ? node : [...callgrindArgv("bulkcost"), ...node];
  return { child: await spawnListening(argv, name), port: Number(port) };
};

/** CONNS connections; `run(bytes)` echoes `bytes` per connection (DEPTH writes of 64 KiB in flight). */
const connectAll = async (port) => {
  const payload = Buffer.alloc(CHUNK, "b");
  const socks = await Promise.all(Array.from({ length: CONNS }, () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
      s.once("error", reject);
    })));
  const run = (bytes) => Promise.all(socks.map((s) => new Promise((resolve) => {
    let sent = 0;
    let back = 0;
    const pump = () => {
      while (sent < bytes && sent - back < DEPTH * CHUNK) {
        s.write(payload);
        sent += CHUNK;
      }
    };
    const onData = (d) => {
      back += d.length;
      if (back >= bytes) {
        s.off("data", onData);
        resolve();
      } else pump();
    };
    s.on("data", onData);
    pump();
  })));
  return { run, close: () => socks.forEach((s) => s.destroy()) };
};

/** Minor page faults, user and system seconds of `pid` so far (/proc/<pid>/stat). */
const procStat = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { minflt: Number(f[7]), user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
};

const MiB = 1024 * 1024;
const fmt = (x, d = 0) => x.toLocaleString("en-US", { maximumFractionDigits: d });
console.log(`bulk-cost: ${CONNS} conn(s), ${DEPTH} x 64 KiB in flight each, ${opts.mib} MiB per conn measured ` +
  `after ${opts["warmup-mib"]} MiB; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const names = opts.servers.split(",");
for (const name of names) {
  if (SERVERS[name.split("@")[0]] === undefined) throw new Error(`unknown server ${name}; one of ${Object.keys(SERVERS).join(", ")}`);
}
if (CPU) {
  const per = Object.fromEntries(names.map((n) => [n, []]));
  const split = Object.fromEntries(names.map((n) => [n, []]));
  const chunks = (CONNS * Number(opts.mib) * MiB) / CHUNK;
  for (let rep = 0; rep < Number(opts.reps); rep++) {
    for (const name of names) {
      const server = await start(name);
      const conns = await connectAll(server.port);
      await conns.run(Number(opts["warmup-mib"]) * MiB);
      const before = treeCpuNs(server.child.pid);
      const st = procStat(server.child.pid);
      await conns.run(Number(opts.mib) * MiB);
      per[name].push((treeCpuNs(server.child.pid) - before) / 1e3 / chunks);
      const st2 = procStat(server.child.pid);
      split[name].push(`${((st2.user - st.user) * 1e6 / chunks).toFixed(0)}/${((st2.sys - st.sys) * 1e6 / chunks).toFixed(0)} µs, ` +
        `${((st2.minflt - st.minflt) / chunks).toFixed(1)} faults`);
      conns.close();
      await stopChild(server.child);
    }
  }
  for (const name of names) {
    const v = per[name].sort((a, b) => a - b);
    console.log(`${name.padEnd(9)} ${v[v.length >> 1].toFixed(1).padStart(7)} µs CPU per 64 KiB (${v[0].toFixed(1)}–${v[v.length - 1].toFixed(1)}); ` +
      `per rep user/sys, minor faults per 64 KiB: ${split[name].join("; ")}`);
  }
  console.log(`load after: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  process.exit(0);
}
for (const name of names) {
  const server = await start(name);
  const conns = await connectAll(server.port);
  await conns.run(Number(opts["warmup-mib"]) * MiB);
  callgrind(server.child.pid, "-z");
  callgrind(server.child.pid, "-i", "on");
  await conns.run(Number(opts.mib) * MiB);
  callgrind(server.child.pid, "-i", "off");
  const [main] = dumpThreads(server.child.pid, "bulkcost");
  conns.close();
  await stopChild(server.child);
  const chunks = (CONNS * Number(opts.mib) * MiB) / CHUNK;
  console.log(`${name.padEnd(9)} ${fmt((main.total - main.gc - main.jit) / chunks).padStart(10)} instructions per 64 KiB ` +
    `(main thread, collector and optimising compiler apart; collector ${fmt(main.gc / chunks)}, compiler ${fmt(main.jit / chunks)})`);
}
console.log(`load after: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);

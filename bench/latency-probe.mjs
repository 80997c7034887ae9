#!/usr/bin/env node
// latency-probe.mjs — latency of pipelined batches on one extra connection, for the HTTP bench's
// pipelined case: wrk's percentiles are not usable there (it records one latency per batch but
// corrects for coordinated omission with the per-request interval, so every percentile above the
// recorded minimum reads 0). Closed loop: a batch of --depth `GET <path>` goes out every
// --interval ms (or as soon as the previous one completed, if later); its latency runs from the
// write to the last response. Prints one JSON line: { batches, p50, p99, max } in ms.
//
// Run: node bench/latency-probe.mjs --port P [--path /] [--depth 16] [--interval 20] [--duration 10]
//      [--body 13]   (SIGTERM ends it early, still printing the result)
import net from "node:net";
import { parseArgs } from "node:util";
import { ResponseCounter } from "./http-client.mjs";

const { values: o } = parseArgs({
  options: {
    port: { type: "string" },
    path: { type: "string", default: "/" },
    depth: { type: "string", default: "16" },
    interval: { type: "string", default: "20" },
    duration: { type: "string", default: "10" },
    body: { type: "string", default: "13" },
  },
});
const depth = Number(o.depth);
const batch = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(depth), "latin1");
const lat = [];
const counter = new ResponseCounter(Number(o.body));
let pending = 0;
let sentAt = 0n;
let nextAt = 0;
let stopping = false;

const s = net.connect({ port: Number(o.port), host: "127.0.0.1", noDelay: true });
const send = () => {
  if (stopping) return;
  pending = depth;
  sentAt = process.hrtime.bigint();
  nextAt = Date.now() + Number(o.interval);
  s.write(batch);
};
const finish = () => {
  stopping = true;
  s.destroy();
  const sorted = lat.sort((a, b) => a - b);
  const q = (p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
  process.stdout.write(`${JSON.stringify({ batches: sorted.length, p50: q(50), p99: q(99), max: q(100) })}\n`);
  process.exit(0);
};
s.on("connect", send);
s.on("error", (e) => {
  process.stderr.write(`latency-probe: ${e.message}\n`);
  finish();
});
s.on("data", (d) => {
  pending -= counter.push(d);
  if (pending > 0) return;
  lat.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
  const wait = nextAt - Date.now();
  if (wait > 0) setTimeout(send, wait);
  else send();
});
setTimeout(finish, Number(o.duration) * 1000);
process.on("SIGTERM", finish);

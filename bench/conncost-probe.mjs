// conncost-probe.mjs — preloaded into bench/conncost.mjs's servers (`--expose-gc --import`):
// on SIGUSR2, two full GCs, then process.memoryUsage() as one "#mem {json}" line on stderr, with
// `newSpace`: the young generation's physical size before the GCs (what bench/run.mjs's RSS
// figure, taken without a GC, also holds), and `raw`: what run.mjs's RSS holds, split, before
// the GCs (`spaces`: each V8 heap space's physical size; `rss`, `anon`: the process's resident
// and anonymous memory from /proc/self/smaps_rollup, so `anon` minus the spaces is native: malloc
// arenas, the addon's and libuv's state, thread stacks). With CONNCOST_SNAPSHOT=<dir> it also
// writes a heap snapshot there after the GCs (`snapshot`: its path). With CONNCOST_ALLOC=1, V8's
// sampling heap profiler runs from the first SIGUSR2 to the second (every object allocated, also
// those a GC already collected), and the second line carries `alloc`: the bytes allocated in
// between, in total and by allocating function.
import fs from "node:fs";
import { Session } from "node:inspector";
import path from "node:path";
import v8 from "node:v8";

/** Resident and anonymous bytes of this process (smaps_rollup's kB lines), or undefined off Linux. */
const rollup = () => {
  try {
    const text = fs.readFileSync("/proc/self/smaps_rollup", "utf8");
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
    return { rss: kb("Rss"), anon: kb("Anonymous") };
  } catch {
    return undefined;
  }
};

let session;
/** Sampled allocations since the last call ({ total, by: [[function, bytes]] }), then sampling again. */
const allocations = () => {
  let out;
  if (session === undefined) {
    session = new Session();
    session.connect();
    session.post("HeapProfiler.enable");
  } else {
    // The in-thread session answers synchronously.
    session.post("HeapProfiler.stopSampling", (err, r) => {
      if (err !== null) return;
      const by = new Map();
      let total = 0;
      const name = (f) => `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-3).join("/")}:${f.lineNumber + 1}`;
      // Keyed by the allocating function and its two callers (Effect's helpers allocate for many).
      const walk = (node, up) => {
        const here = [name(node.callFrame), ...up].slice(0, 3);
        if (node.selfSize > 0) {
          const k = here.join(" < ");
          by.set(k, (by.get(k) ?? 0) + node.selfSize);
          total += node.selfSize;
        }
        for (const c of node.children) walk(c, here);
      };
      walk(r.profile.head, []);
      out = { total, by: [...by].sort((a, b) => b[1] - a[1]).slice(0, 25) };
    });
  }
  session.post("HeapProfiler.startSampling", { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return out;
};

let n = 0;
process.on("SIGUSR2", () => {
  const alloc = process.env.CONNCOST_ALLOC === "1" ? allocations() : undefined;
  const stats = v8.getHeapSpaceStatistics();
  const spaces = Object.fromEntries(stats.map((s) => [s.space_name, s.physical_space_size]));
  const raw = { spaces, ...rollup() };
  const newSpace = spaces.new_space ?? 0;
  globalThis.gc();
  globalThis.gc();
  const dir = process.env.CONNCOST_SNAPSHOT;
  const snapshot = dir ? v8.writeHeapSnapshot(path.join(dir, `conncost-${process.pid}-${n++}.heapsnapshot`)) : undefined;
  process.stderr.write(`#mem ${JSON.stringify({ ...process.memoryUsage(), newSpace, raw, snapshot, alloc })}\n`);
});

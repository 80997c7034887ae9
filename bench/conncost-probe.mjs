// conncost-probe.mjs — preloaded into bench/conncost.mjs's servers (`--expose-gc --import`):
// on SIGUSR2, two full GCs, then process.memoryUsage() as one "#mem {json}" line on stderr, with
// `newSpace`: the young generation's physical size before the GCs (what bench/run.mjs's RSS
// figure, taken without a GC, also holds). With CONNCOST_SNAPSHOT=<dir> it also writes a heap
// snapshot there after the GCs (`snapshot`: its path).
import path from "node:path";
import v8 from "node:v8";

let n = 0;
process.on("SIGUSR2", () => {
  const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.physical_space_size ?? 0;
  globalThis.gc();
  globalThis.gc();
  const dir = process.env.CONNCOST_SNAPSHOT;
  const snapshot = dir ? v8.writeHeapSnapshot(path.join(dir, `conncost-${process.pid}-${n++}.heapsnapshot`)) : undefined;
  process.stderr.write(`#mem ${JSON.stringify({ ...process.memoryUsage(), newSpace, snapshot })}\n`);
});

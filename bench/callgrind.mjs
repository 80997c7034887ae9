// Callgrind helpers shared by the benchmark scripts that count a server's instructions
// (http-cost.mjs, workers-cost.mjs): the server runs under
// `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`; the script switches
// instrumentation on and off around the measured requests (callgrind_control) and reads the dump.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** callgrind_control with `args` on `pid` (e.g. "-z", "-i on", "-d"); its stdout. */
export const callgrind = (pid, ...args) => execFileSync("callgrind_control", [...args, String(pid)], { stdio: ["ignore", "pipe", "pipe"] }).toString();

/** The valgrind argv prefix: dumps go to `<tmpdir>/<prefix>-<pid>.out.<n>-<thread>`. */
export const callgrindArgv = (prefix) => [
  "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
  `--callgrind-out-file=${path.join(os.tmpdir(), `${prefix}-%p.out`)}`,
];

// V8's collector runs on the JS thread (--single-threaded-gc) inside whatever allocated; a major
// collection's cycle (~100-300 M instructions) falls into a measured window or not. So the dump's
// calls into the collector are summed apart (the inclusive cost of every call from a function
// outside it to one inside it) and the report gives the mutator's count (load- and timing-
// independent) beside the collector's.
const GC_FN = /v8::internal::(Heap::(CollectGarbage|HandleGCRequest|StartIncrementalMarking|FinalizeIncrementalMarking)|IncrementalMarking::|IncrementalMarkingJob|MinorGCJob|ScavengeJob|Sweeper::|PagedSpaceBase::ContributeToSweepingMain|MemoryReducer)/;

// V8's optimising compiler, on the JS thread too under --single-threaded: functions still tiering
// up inside a window (long after warm-up under valgrind, whose slowness does not slow V8's
// budgets) add tens of M instructions that a later window would not have. Summed apart the same
// way, so that A/B comparisons can read the mutator without it (`jit`, a part of the total that
// does not overlap `gc`).
const JIT_FN = /v8::internal::(Runtime_CompileOptimized|Runtime_CompileLazy|Runtime_InstallBaselineCode|Runtime_CompileBaseline|Compiler::Compile)/;

/**
 * A thread's total, the collector's part and the optimising compiler's part, from a callgrind
 * dump (name-compressed format).
 */
export const splitGc = (text) => {
  const names = new Map();
  const name = (ref) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(ref);
    if (m === null) return ref;
    if (m[2] !== undefined) names.set(m[1], m[2]);
    return names.get(m[1]) ?? "";
  };
  let fn = "";
  let callee = "";
  let pendingCall = false;
  let gc = 0;
  let jit = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("fn=")) fn = name(line.slice(3));
    else if (line.startsWith("cfn=")) callee = name(line.slice(4));
    else if (line.startsWith("calls=")) pendingCall = true;
    else if (pendingCall) {
      pendingCall = false;
      if (GC_FN.test(callee) && !GC_FN.test(fn)) gc += Number(line.trim().split(/\s+/)[1] ?? 0);
      else if (JIT_FN.test(callee) && !JIT_FN.test(fn) && !GC_FN.test(fn)) jit += Number(line.trim().split(/\s+/)[1] ?? 0);
    }
  }
  const m = /^totals:\s*(\d+)/m.exec(text);
  if (m === null) throw new Error("no totals in the dump");
  return { total: Number(m[1]), gc, jit };
};

/**
 * Dumps `pid`'s profile and returns every thread's count ({ thread, file, total, gc }), thread 1
 * being the process's main thread, busiest first after it.
 */
export const dumpThreads = (pid, prefix) => {
  const stem = `${prefix}-${pid}.out`;
  const before = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(stem)));
  callgrind(pid, "-d");
  const files = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(stem) && /\.out\.\d+-\d+$/.test(f) && !before.has(f));
  if (files.length === 0) throw new Error(`callgrind wrote no dump for ${pid}`);
  return files
    .map((f) => {
      const file = path.join(os.tmpdir(), f);
      return { thread: Number(/-(\d+)$/.exec(f)[1]), file, ...splitGc(fs.readFileSync(file, "utf8")) };
    })
    .sort((a, b) => (a.thread === 1 ? -1 : b.thread === 1 ? 1 : b.total - a.total));
};

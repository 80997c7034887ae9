// Process helpers shared by the benchmark scripts that start servers as child processes.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

/** Calls `onLine` with each complete line `stream` (a child's stdout or stderr) delivers, as text. */
export const lines = (stream, onLine) => {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
};

/**
 * Stops a server child started by a bench script: SIGTERM (its graceful shutdown, which prints
 * its counters), SIGKILL if it has not exited 20 s later. Resolves on exit; the caller's own
 * "exit" listeners (which treat an exit as a crash) are removed first.
 */
export const stopChild = (child) =>
  new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", resolve);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 20000).unref();
  });

/** A free loopback TCP port for a server child to listen on (bound, read, released). */
export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/**
 * Spawns a server child (`argv[0]` with the rest as arguments) and resolves once its stdout says
 * "listening on" (to the child); rejects, with the tail of its stderr, if it exits first.
 */
export const spawnListening = async (argv, name) => {
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err = (err + d).slice(-8000)));
  await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => ((out += d), /listening on /.test(out) && resolve()));
    child.once("exit", (code) => reject(new Error(`${name} exited with ${code}\n${err}`)));
  });
  return child;
};

/** CPU nanoseconds so far of every thread of `pid` and of its child processes (schedstat). */
export const treeCpuNs = (pid) => {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const task = `/proc/${pid}/task/${tid}`;
    ns += Number(fs.readFileSync(`${task}/schedstat`, "utf8").split(" ")[0]);
    const kids = fs.readFileSync(`${task}/children`, "utf8").trim();
    for (const kid of kids ? kids.split(" ") : []) ns += treeCpuNs(Number(kid));
  }
  return ns;
};

/**
 * Context switches so far of every thread of `pid` and of its child processes: `vol` (a thread
 * went to sleep: its wake-ups) and `invol` (preempted: its core was wanted by something else).
 */
export const treeSwitches = (pid, out = { vol: 0, invol: 0 }) => {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const task = `/proc/${pid}/task/${tid}`;
    const st = fs.readFileSync(`${task}/status`, "utf8");
    out.vol += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(st)[1]);
    out.invol += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(st)[1]);
    const kids = fs.readFileSync(`${task}/children`, "utf8").trim();
    for (const kid of kids ? kids.split(" ") : []) treeSwitches(Number(kid), out);
  }
  return out;
};

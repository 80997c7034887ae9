// Process helpers shared by the benchmark scripts that start servers as child processes.
import net from "node:net";

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

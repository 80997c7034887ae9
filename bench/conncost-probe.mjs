// conncost-probe.mjs — preloaded into bench/conncost.mjs's servers (`--expose-gc --import`):
// on SIGUSR2, two full GCs, then process.memoryUsage() as one "#mem {json}" line on stderr.
process.on("SIGUSR2", () => {
  globalThis.gc();
  globalThis.gc();
  process.stderr.write(`#mem ${JSON.stringify(process.memoryUsage())}\n`);
});

/**
 * The worker program of `pnpm run echo --workers N`: the demo's echo handler on this worker's
 * share of the port (bin/echo.ts launches it with RinglineWorkers). `data.mode` picks the
 * handler as `--mode` does.
 */
import { Effect } from "effect"
import { echo } from "../internal/echo.js"
import * as RinglineWorkers from "../RinglineWorkers.js"
import { echoHandlers } from "./echoHandlers.js"

export default Effect.flatMap(RinglineWorkers.WorkerContext, (w) => {
  const handler = echoHandlers[(w.data as { mode?: string } | undefined)?.mode ?? "stream"] ?? echo
  return RinglineWorkers.serve((conn) => Effect.ignore(handler(conn)))
})

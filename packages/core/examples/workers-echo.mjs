// The README's RinglineWorkers example (worker program): the same handler serves in both modes.
import { Effect, Stream } from "effect"
import { RinglineWorkers } from "@ringline/core"

export default RinglineWorkers.serve((conn) => conn.stream.pipe(Stream.run(conn.sink), Effect.ignore))

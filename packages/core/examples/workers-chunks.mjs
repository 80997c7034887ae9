// The README's RinglineWorkers.serveChunks example (worker program): an echo served per chunk,
// with no fiber per connection, in both modes (`node examples/workers-main.mjs --chunks`).
import { RinglineWorkers } from "@ringline/core"

export default RinglineWorkers.serveChunks((chunk, conn) => {
  if (chunk.length > 0) conn.unsafeWrite(chunk) // the empty chunk is the end of stream
})

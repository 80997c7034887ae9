/**
 * The demo's echo handlers: `--mode stream|parse`, shared by the single-thread server
 * (bin/echo.ts) and its worker program (bin/echoWorker.ts), and `--mode chunks`' chunk handler.
 */
import { Cause, Effect } from "effect"
import * as Connection from "../Connection.js"
import { echo } from "../internal/echo.js"

// The parser echoes the kernel buffer's bytes straight into the send pool, then says how many it
// consumed; -1 marks end of stream.
const echoParser: Connection.Parser<number> = (bytes) => Connection.done(bytes.length, bytes.length === 0 ? -1 : bytes.length)

// A module-level generator run with the connection as `this` (see ../internal/echo.ts); the
// parser is made per connection since it writes to its connection.
function* parseBody(this: Connection.Connection) {
  const conn = this
  const parse: Connection.Parser<number> = (bytes) => {
    conn.unsafeWrite(bytes)
    return echoParser(bytes)
  }
  while ((yield* conn.read(parse)) >= 0) yield* conn.writable
  yield* conn.shutdownWrite
}

const viaParse = (conn: Connection.Connection) => Effect.gen(conn, parseBody)

export const echoHandlers: Record<string, (conn: Connection.Connection) => Effect.Effect<void, unknown>> = {
  stream: echo,
  parse: viaParse
}

/** `--mode chunks`: each chunk back as it arrives (Listener.serveChunks closes after the peer's FIN). */
export const echoChunk = (chunk: Uint8Array, conn: Connection.Connection): void => {
  if (chunk.length > 0) conn.unsafeWrite(chunk)
}

/**
 * `serve`'s `onFailure` for the echo: resets and vanished clients are routine, so a handler's
 * failure ends its connection quietly; a defect (a bug) is still logged. Given to `serve` rather
 * than wrapping each handler in `Effect.ignore`, whose match frame every idle connection's fiber
 * would keep on its stack (~0.3 KB each).
 */
export const quietFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Cause.isDie(cause) ? Effect.logWarning("ringline: connection handler failed", cause) : Effect.void

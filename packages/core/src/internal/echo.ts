/**
 * The stream echo handler: everything back in order, then a half-close after the peer's EOF.
 * One definition for the demo server (bin/echo.ts) and the tests' echo servers.
 */
import { Effect, Option } from "effect"
import type { Connection } from "../Connection.js"
import type { ConnectionClosed, SocketError, TlsError } from "../RinglineError.js"

// The body is one module-level generator function run with the connection as `this`: a
// generator function made per connection (`Effect.gen(function*() {...})` inside `echo`) would
// cost every idle connection its own function, prototype object and hidden classes (~0.4 KB).
function* echoBody(this: Connection) {
  while (true) {
    const chunk = yield* this.recv
    if (Option.isNone(chunk)) break
    yield* this.write(chunk.value)
  }
  yield* this.shutdownWrite
}

export const echo = (conn: Connection): Effect.Effect<void, SocketError | ConnectionClosed | TlsError> =>
  Effect.gen(conn, echoBody)

/**
 * The stream echo handler: everything back in order, then a half-close after the peer's EOF.
 * One definition for the demo server (bin/echo.ts) and the tests' echo servers.
 */
import { Effect, Option } from "effect"
import type { Connection } from "../Connection.js"
import type { ConnectionClosed, SocketError, TlsError } from "../RinglineError.js"

export const echo = (conn: Connection): Effect.Effect<void, SocketError | ConnectionClosed | TlsError> =>
  Effect.gen(function*() {
    while (true) {
      const chunk = yield* conn.recv
      if (Option.isNone(chunk)) break
      yield* conn.write(chunk.value)
    }
    yield* conn.shutdownWrite
  })

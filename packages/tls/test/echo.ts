/** The stream echo handler of core's demo: everything back in order, then a half-close after EOF. */
import type { Connection } from "@ringline/core"
import type { ConnectionClosed, SocketError, TlsError } from "@ringline/core/RinglineError"
import { Effect, Option } from "effect"

export const echo = (conn: Connection.Connection): Effect.Effect<void, SocketError | ConnectionClosed | TlsError> =>
  Effect.gen(function*() {
    while (true) {
      const chunk = yield* conn.recv
      if (Option.isNone(chunk)) break
      yield* conn.write(chunk.value)
    }
    yield* conn.shutdownWrite
  })

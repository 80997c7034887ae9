// platform-echo-handler.mjs — the Effect echo handler of the two platform servers.
//
// One definition for platform-node-echo.mjs (NodeSocketServer) and platform-ringline-echo.mjs
// (RinglineSocketServer), so the two rows of bench/run.mjs compare the servers, not the code:
// written the way an Effect user would write it against @effect/platform's Socket.
import { Effect } from "effect";

export const echo = (socket) =>
  Effect.gen(function* () {
    const write = yield* socket.writer;
    // Each chunk's write is an Effect; Socket.run forks it, in arrival order.
    yield* socket.run((chunk) => write(chunk));
  }).pipe(
    Effect.scoped,
    // A client closing or resetting its connection ends run with a
    // SocketError; that is the normal end of a benchmark connection.
    Effect.ignore,
  );

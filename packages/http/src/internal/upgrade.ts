/**
 * `request.upgrade` for WebSocket requests, as NodeHttpServer does it: the `ws` package performs the
 * handshake and the framing over a Duplex that reads and writes the ringline connection, and the
 * platform's `Socket.fromWebSocket` turns it into a `Socket` (messages in and out).
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as ServerRequest from "@effect/platform/HttpServerRequest"
import * as Socket from "@effect/platform/Socket"
import type { Connection } from "@ringline/core/Connection"
import { Effect, Exit, Option } from "effect"
import { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import type { Exchange } from "./exchange.js"

/** What the upgrade needs from the HTTP connection. */
export interface UpgradeHost {
  /** Stops HTTP reading on the connection (the pending read is withdrawn) and marks it upgraded. */
  readonly beginUpgrade: Effect.Effect<void>
}

let wss: WebSocketServer | undefined

/** The connection as a Node Duplex, for `ws`. Closing the connection stays with the server. */
class ConnectionDuplex extends Duplex {
  private reading = false
  constructor(private readonly conn: Connection) {
    super({ allowHalfOpen: false })
  }

  override _read(): void {
    if (this.reading) return
    this.reading = true
    const pump = () =>
      Effect.runCallback(this.conn.recv, {
        onExit: (exit) => {
          this.reading = false
          if (Exit.isFailure(exit)) return void this.destroy()
          const chunk = exit.value
          if (Option.isNone(chunk)) return void this.push(null)
          const v = chunk.value
          if (this.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength))) {
            this.reading = true
            pump()
          }
        }
      })
    pump()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (!this.conn.unsafeWrite(chunk)) return cb(new Error("connection closed"))
    if (this.conn.queuedBytes < 1 << 20) return cb()
    Effect.runCallback(this.conn.writable, {
      onExit: (exit) => cb(Exit.isFailure(exit) ? new Error("connection closed") : null)
    })
  }

  override _final(cb: (error?: Error | null) => void): void {
    Effect.runCallback(this.conn.shutdownWrite, { onExit: () => cb() })
  }

  setTimeout(): this {
    return this
  }

  setNoDelay(): this {
    return this
  }
}

/** @internal */
export const upgradeWebSocket = (
  host: UpgradeHost,
  conn: Connection,
  exchange: Exchange,
  request: ServerRequest.HttpServerRequest
): Effect.Effect<Socket.Socket, HttpServerError.RequestError> => {
  if (!exchange.isUpgrade) {
    return Effect.fail(
      new HttpServerError.RequestError({ request, reason: "Decode", description: "not an upgradeable ServerRequest" })
    )
  }
  const acquire = Effect.acquireRelease(
    Effect.zipRight(
      host.beginUpgrade,
      Effect.async<globalThis.WebSocket, Socket.SocketError>((resume) => {
        wss ??= new WebSocketServer({ noServer: true, clientTracking: false })
        const duplex = new ConnectionDuplex(conn)
        let opened = false
        // A refused handshake: ws answers 400 itself and destroys the duplex.
        duplex.on("close", () => {
          if (!opened) resume(Effect.fail(new Socket.SocketGenericError({ reason: "Open", cause: "WebSocket handshake refused" })))
        })
        wss.handleUpgrade(
          { headers: request.headers as Record<string, string>, method: request.method, url: request.url },
          duplex,
          Buffer.alloc(0),
          (ws) => {
            opened = true
            resume(Effect.succeed(ws))
          }
        )
      })
    ),
    (ws) => Effect.sync(() => ws.close())
  )
  return Socket.fromWebSocket(acquire)
}

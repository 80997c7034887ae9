// The part of ws@8 used for upgrades (the same package NodeHttpServer upgrades with; no @types/ws here).
declare module "ws" {
  import type { Duplex } from "node:stream"
  export class WebSocketServer {
    constructor(options: { noServer: true; clientTracking?: boolean; maxPayload?: number })
    handleUpgrade(
      req: { headers: Record<string, string | undefined>; method: string; url: string },
      socket: Duplex,
      head: Buffer,
      cb: (ws: globalThis.WebSocket) => void
    ): void
  }
  /** The client, used by the tests. */
  export class WebSocket {
    constructor(address: string, options?: unknown)
    on(event: "open" | "close", listener: () => void): this
    on(event: "message", listener: (data: Buffer) => void): this
    on(event: "error", listener: (error: Error) => void): this
    send(data: string | Uint8Array): void
    close(): void
  }
}

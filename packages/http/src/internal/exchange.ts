/**
 * One request/response exchange on a connection: the parsed head, the body chunks the reader has
 * received and the handler not yet taken (bounded: the reader stops reading above a high-water
 * mark), and what the response writer needs to know (100-continue sent, close after).
 */
import type * as Error from "@effect/platform/HttpServerError"
import type * as Socket from "@effect/platform/Socket"
import { Effect, Option } from "effect"
import type { Head } from "./parser.js"
import { HeadFlag } from "./parser.js"

/** The body exceeded the server's or the app's limit: answered 413. */
export class BodyTooLarge extends globalThis.Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`)
  }
}

/** The connection ended before the body did. */
export class BodyAborted extends globalThis.Error {
  constructor() {
    super("connection closed before the request body was complete")
  }
}

/** What an exchange needs from its connection. */
export interface ExchangeHost {
  /** The reader may have stopped for this exchange's buffered body: let it continue. */
  readonly wakeReader: () => void
  /** Writes `HTTP/1.1 100 Continue` (once, before the body is first read). */
  readonly sendContinue: () => void
  readonly upgrade: (exchange: Exchange, request: unknown) => Effect.Effect<Socket.Socket, Error.RequestError>
}

const continueLimit = Number.MAX_SAFE_INTEGER

/** @internal */
export class Exchange {
  chunks: Array<Uint8Array> = []
  buffered = 0
  received = 0
  /**
   * The message's end was parsed (all body bytes are in `chunks` or consumed). A message without a
   * body ends in the same parse call as its head, before any handler sees it.
   */
  ended = false
  /** The handler is done with the body: later chunks are dropped. */
  discard = false
  failure: globalThis.Error | undefined = undefined
  continueSent = false
  tooLarge = false
  /** The response must end the connection (HTTP/1.0 stream body, unread body after 100-continue...). */
  closeAfter = false
  responded = false
  waiter: (() => void) | undefined = undefined

  constructor(
    readonly head: Head,
    readonly host: ExchangeHost,
    readonly remoteAddress: string | undefined,
    /** The server-level body limit (bytes). */
    readonly maxBody: number
  ) {}

  get keepAlive(): boolean {
    return (this.head.flags & HeadFlag.KeepAlive) !== 0
  }

  get isUpgrade(): boolean {
    return (this.head.flags & HeadFlag.Upgrade) !== 0
  }

  // ---- fed by the connection's reader ----------------------------------------------------------

  onBody(chunk: Uint8Array): void {
    this.received += chunk.length
    if (this.discard) return
    if (this.received > this.maxBody) {
      this.tooLarge = true
      this.fail(new BodyTooLarge(this.maxBody))
      return
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    this.notify()
  }

  onEnd(): void {
    this.ended = true
    this.notify()
  }

  fail(error: globalThis.Error): void {
    if (this.failure === undefined) this.failure = error
    this.notify()
  }

  private notify(): void {
    const w = this.waiter
    if (w !== undefined) {
      this.waiter = undefined
      w()
    }
  }

  /** Stops keeping body bytes (the response is done): buffered ones are dropped. */
  dropBody(): void {
    this.discard = true
    this.chunks = []
    this.buffered = 0
    this.host.wakeReader()
  }

  private take(): Uint8Array {
    const chunk = this.chunks.shift()!
    this.buffered -= chunk.length
    this.host.wakeReader()
    return chunk
  }

  private beforeWait(): void {
    if (!this.continueSent && (this.head.flags & HeadFlag.ExpectContinue) !== 0) {
      this.continueSent = true
      this.host.sendContinue()
    }
  }

  // Built on first use: most exchanges (body-less GETs) never wait for body data.
  private waitDataEffect: Effect.Effect<void> | undefined = undefined
  private pullEffect: Effect.Effect<Uint8Array, Option.Option<globalThis.Error>> | undefined = undefined

  /** Waits until a chunk, the end or a failure is there (sending 100 Continue first if asked). */
  get waitData(): Effect.Effect<void> {
    return this.waitDataEffect ??= Effect.async<void>((resume) => {
      const wake = () => resume(Effect.void)
      this.waiter = wake
      this.beforeWait()
      this.host.wakeReader()
      return Effect.sync(() => {
        if (this.waiter === wake) this.waiter = undefined
      })
    })
  }

  /** The next body chunk; `None` at the end of the body. */
  get pull(): Effect.Effect<Uint8Array, Option.Option<globalThis.Error>> {
    return this.pullEffect ??= Effect.suspend(() => {
      if (this.chunks.length > 0) return Effect.succeed(this.take())
      if (this.failure !== undefined) return Effect.fail(Option.some(this.failure))
      if (this.ended) return Effect.fail(Option.none())
      return Effect.zipRight(this.waitData, this.pull)
    })
  }

  /**
   * Every chunk received so far, taken at once (for a response that streams this body back
   * without the Stream machinery per chunk); empty when none is buffered.
   */
  takeAll(): Array<Uint8Array> {
    const all = this.chunks
    if (all.length === 0) return all
    this.chunks = []
    this.buffered = 0
    this.host.wakeReader()
    return all
  }

  /** The whole body (at most `limit` bytes) in one array, without an Effect per chunk. */
  readAll(limit: number | undefined): Effect.Effect<Uint8Array, globalThis.Error> {
    const max = limit === undefined ? continueLimit : limit
    if ((this.head.flags & HeadFlag.ContentLength) !== 0 && this.head.contentLength > max) {
      this.tooLarge = true
      return Effect.fail(new BodyTooLarge(max))
    }
    return Effect.async<Uint8Array, globalThis.Error>((resume) => {
      const parts: Array<Uint8Array> = []
      let total = 0
      const step = (): void => {
        while (this.chunks.length > 0) {
          const chunk = this.take()
          total += chunk.length
          if (total > max) {
            this.tooLarge = true
            return resume(Effect.fail(new BodyTooLarge(max)))
          }
          parts.push(chunk)
        }
        if (this.failure !== undefined) return resume(Effect.fail(this.failure))
        if (this.ended) return resume(Effect.succeed(concat(parts, total)))
        this.waiter = step
        this.beforeWait()
        this.host.wakeReader()
      }
      step()
      return Effect.sync(() => {
        if (this.waiter === step) this.waiter = undefined
      })
    })
  }

  upgrade(request: unknown): Effect.Effect<Socket.Socket, Error.RequestError> {
    return this.host.upgrade(this, request)
  }
}

const concat = (parts: Array<Uint8Array>, total: number): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(total)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

/**
 * HTTP/1.1 on one ringline connection: a reader (a child fiber) that parses every received chunk
 * with one native call and queues request heads and body chunks, and a processor (the
 * connection's fiber) that runs the app for each request in order and writes its response
 * straight to the connection's send queue.
 *
 * A request without a body that arrives while the processor is idle is run by the reader itself
 * ("inline"): its bytes are all parsed, so nothing needs reading while the handler runs, and the
 * request costs one fiber wake-up instead of two. A client abort during such a handler is seen
 * through the connection's end-of-receive callback (no read is pending then), which interrupts
 * the reader's fiber as a read's end of stream interrupts the processor's.
 *
 * Memory stays bounded: the reader stops reading while `maxPipelined` requests wait or the body
 * being received has `bodyHighWater` bytes the handler has not taken; the connection then stops
 * receiving at its own high-water mark. A client that stops reading responses blocks the processor
 * in `writable`, so the same bound applies.
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as ServerRequest from "@effect/platform/HttpServerRequest"
import type * as ServerResponse from "@effect/platform/HttpServerResponse"
import type * as Socket from "@effect/platform/Socket"
import { Connection as Conn } from "@ringline/core"
import type { Connection } from "@ringline/core/Connection"
import { Cause, Chunk, Effect, Fiber, Stream } from "effect"
import type { Exchange as ExchangeT } from "./exchange.js"
import { Exchange } from "./exchange.js"
import { type Head, HeadFlag, native, parseInto, type Sink } from "./parser.js"
import { bodyStreams, RinglineServerRequest } from "./request.js"
import { upgradeWebSocket } from "./upgrade.js"
import * as Response from "./response.js"

/** Runs the app for one request on the calling fiber and writes its response (see handled.ts). */
export type Handler = (request: ServerRequest.HttpServerRequest) => Effect.Effect<void>

/** Resolved server options. */
export interface Limits {
  readonly maxHeaderSize: number
  readonly maxHeaders: number
  readonly maxBodySize: number
  readonly maxPipelined: number
  readonly bodyHighWater: number
  readonly headersTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  readonly bodyTimeoutMs: number
}


const EOF = 0
const MORE = 1
const writeHighWater = 65536
const textEncoder = new TextEncoder()

/** @internal */
export class HttpConnection implements Sink {
  readonly parserId: number
  private readonly queue: Array<Exchange> = []
  /** The exchange whose body the parser is in. */
  private receiving: Exchange | undefined = undefined
  /** The exchange whose handler runs. */
  current: Exchange | undefined = undefined
  private failureStatus = 0
  private stopped = false
  private closed = false
  shuttingDown = false
  upgraded = false
  private timedOut = false
  private readerWaiter: (() => void) | undefined = undefined
  private processorWaiter: (() => void) | undefined = undefined
  private processorFiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** The reader is running `current`'s handler itself (see the header comment). */
  private inline = false
  /** An inline exchange ended the connection (close, error): the processor returns. */
  private finished = false
  private lastActivity = Date.now()
  private servedAny = false
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  /** When the armed timer fires (ms since the epoch). */
  private timerDue = 0
  /** When the body being received must be complete; 0 when none is. */
  private bodyDeadline = 0
  private readonly keepAliveLine: string

  constructor(
    readonly conn: Connection,
    readonly limits: Limits,
    readonly remoteAddress: string | undefined
  ) {
    this.parserId = native().httpParserCreate(limits.maxHeaderSize, limits.maxHeaders)
    this.keepAliveLine = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(limits.keepAliveTimeoutMs / 1000)}\r\n`
  }

  // ---- parser sink -----------------------------------------------------------------------------

  head(head: Head): void {
    const ex = new Exchange(head, this, this.remoteAddress, this.limits.maxBodySize)
    this.receiving = ex
    this.queue.push(ex)
    if ((head.flags & HeadFlag.Chunked) !== 0 || head.contentLength > 0) this.startBodyClock()
    // After an upgrade or a last request, the bytes that follow are not HTTP requests.
    if ((head.flags & (HeadFlag.Upgrade)) !== 0 || (head.flags & HeadFlag.KeepAlive) === 0) this.stopped = true
    // A head that waits for a body needs the processor now (the handler runs while the reader
    // receives the body); a complete one may be run inline after this parse call (`dispatch`).
    if ((head.flags & HeadFlag.Chunked) !== 0 || head.contentLength > 0) this.wakeProcessor()
  }

  body(chunk: Uint8Array): void {
    this.receiving?.onBody(chunk)
  }

  end(): void {
    const ex = this.receiving
    this.receiving = undefined
    this.bodyDeadline = 0
    ex?.onEnd()
  }

  error(status: number, _reason: string): void {
    this.failureStatus = status
    this.stopped = true
    this.bodyDeadline = 0
    this.receiving?.fail(new Error(`malformed request body (${_reason})`))
    this.receiving = undefined
    this.wakeProcessor()
  }

  private readonly parse = (view: Uint8Array): Conn.ReadResult<number> => {
    if (view.length === 0) return Conn.done(0, EOF)
    const consumed = parseInto(this.parserId, view, this.limits.maxPipelined, this)
    return consumed === 0 && native().httpRecords[0]! <= 2 ? Conn.needMore() : Conn.done(consumed, MORE)
  }

  /** After the last request: reads only to notice the peer going away. */
  private readonly watch = (view: Uint8Array): Conn.ReadResult<number> =>
    view.length === 0 ? Conn.done(0, EOF) : Conn.needMore(Number.MAX_SAFE_INTEGER)

  // ---- wake-ups ----------------------------------------------------------------------------------

  readonly wakeReader = (): void => {
    const w = this.readerWaiter
    if (w !== undefined && !this.readerMustWait()) {
      this.readerWaiter = undefined
      w()
    }
  }

  private wakeProcessor(): void {
    const w = this.processorWaiter
    if (w !== undefined) {
      this.processorWaiter = undefined
      w()
    }
  }

  private readerMustWait(): boolean {
    if (this.upgraded) return true
    if (this.stopped) return false
    if (this.queue.length >= this.limits.maxPipelined) return true
    const r = this.receiving
    return r !== undefined && !r.discard && r.buffered >= this.limits.bodyHighWater
  }

  private readonly waitReader = Effect.async<void>((resume) => {
    const wake = () => resume(Effect.void)
    this.readerWaiter = wake
    return Effect.sync(() => {
      if (this.readerWaiter === wake) this.readerWaiter = undefined
    })
  })

  private readonly waitProcessor = Effect.async<void>((resume) => {
    const wake = () => resume(Effect.void)
    this.processorWaiter = wake
    return Effect.sync(() => {
      if (this.processorWaiter === wake) this.processorWaiter = undefined
    })
  })

  readonly sendContinue = (): void => {
    this.conn.unsafeWrite(continueBytes)
  }

  upgrade(exchange: ExchangeT, request: unknown): Effect.Effect<Socket.Socket, HttpServerError.RequestError> {
    return upgradeWebSocket(this, this.conn, exchange, request as ServerRequest.HttpServerRequest)
  }

  private readerFiber: Fiber.RuntimeFiber<void> | undefined = undefined

  /** The connection now belongs to an upgraded protocol: the HTTP reader's pending read goes. */
  readonly beginUpgrade: Effect.Effect<void> = Effect.suspend(() => {
    this.upgraded = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    return this.readerFiber === undefined ? Effect.void : Fiber.interrupt(this.readerFiber)
  })

  // ---- the reader --------------------------------------------------------------------------------

  /** Reads until the peer goes away or the connection is done; then ends the exchanges. */
  private makeReader(handler: Handler): Effect.Effect<void> {
    // The steps call each other as functions from inside the continuations they run in: each
    // hop between them would otherwise be an Effect step of its own (an `Effect.suspend`).
    const gone = Effect.sync(() => this.peerGone())
    const parsed = { onFailure: () => gone, onSuccess: (r: number) => r === EOF ? gone : dispatch() }
    const watched = { onFailure: () => gone, onSuccess: (r: number) => r === EOF ? gone : next() }
    // Built once: a read per received chunk costs no new Effect beyond the read's own.
    const parseNext = Effect.matchEffect(this.conn.read(this.parse), parsed)
    const watchNext = Effect.matchEffect(this.conn.read(this.watch), watched)
    const next = (): Effect.Effect<void> => {
      if (this.closed || this.upgraded || this.finished) return Effect.void
      if (this.readerMustWait()) return waitNext
      return this.stopped ? watchNext : parseNext
    }
    const waitNext = Effect.flatMap(this.waitReader, next)
    const afterInline = (): Effect.Effect<void> => {
      const ex = this.current!
      this.inline = false
      this.current = undefined
      this.servedAny = true
      this.lastActivity = Date.now()
      if (!ex.responded) this.conn.unsafeWrite(Response.simple(500))
      if (!ex.responded || !ex.keepAlive || ex.closeAfter || this.shuttingDown || this.closed || this.upgraded) {
        // As the processor's loop returning: the connection is done.
        this.finished = true
        this.wakeProcessor()
        return Effect.void
      }
      return dispatch()
    }
    // After a parse call (or an inline exchange): run the next complete body-less request here
    // while the processor is idle; anything else is the processor's.
    const dispatch = (): Effect.Effect<void> => {
      const ex = this.inlineCandidate()
      if (ex === undefined) {
        if (this.queue.length > 0 || this.stopped) this.wakeProcessor()
        return next()
      }
      this.queue.shift()
      this.current = ex
      this.inline = true
      return Effect.flatMap(handler(new RinglineServerRequest(ex, ex.head.url)), afterInline)
    }
    return Effect.suspend(next)
  }

  /** The queue's first exchange if the reader may run it itself (see the header comment). */
  private inlineCandidate(): Exchange | undefined {
    const ex = this.queue[0]
    if (
      ex === undefined || this.processorWaiter === undefined || this.current !== undefined || this.closed ||
      this.upgraded || this.receiveEnded || this.shuttingDown || this.timedOut || this.failureStatus !== 0
    ) return undefined
    const h = ex.head
    if (!ex.ended || ex.failure !== undefined || (h.flags & (HeadFlag.Upgrade | HeadFlag.ExpectContinue)) !== 0) return undefined
    if ((h.flags & HeadFlag.ContentLength) !== 0 && h.contentLength > 0) return undefined
    return ex
  }

  /** The receive side ended (the connection's callback): needed only while a handler runs inline. */
  private receiveEnded = false
  private readonly onReceiveEnd = (): void => {
    this.receiveEnded = true
    if (this.inline) this.peerGone()
  }

  /** End of stream or a receive error: a running handler is interrupted (client abort). */
  private peerGone(): void {
    if (this.closed || this.upgraded) return
    this.closed = true
    this.receiving?.fail(new Error("connection closed before the request body was complete"))
    const fiber = this.inline ? this.readerFiber : this.processorFiber
    if (this.current !== undefined && fiber !== undefined) {
      fiber.unsafeInterruptAsFork(HttpServerError.clientAbortFiberId)
    }
    this.wakeProcessor()
  }

  // ---- timeouts ----------------------------------------------------------------------------------

  private armTimer(ms: number): void {
    this.timerDue = Date.now() + ms
    this.timer = setTimeout(this.onTimer, ms)
    this.timer.unref()
  }

  /** A body follows the head just parsed: it must be complete within `bodyTimeout`. */
  private startBodyClock(): void {
    this.bodyDeadline = Date.now() + this.limits.bodyTimeoutMs
    if (this.timer !== undefined && this.bodyDeadline < this.timerDue) {
      clearTimeout(this.timer)
      this.armTimer(this.limits.bodyTimeoutMs)
    }
  }

  private readonly onTimer = (): void => {
    this.timer = undefined
    if (this.closed || this.upgraded) return
    if (this.bodyDeadline !== 0) {
      const left = this.bodyDeadline - Date.now()
      if (left <= 0) return this.bodyTimedOut()
      if (left < this.limits.keepAliveTimeoutMs) return this.armTimer(left)
    }
    if (this.current !== undefined || this.queue.length > 0) return this.armTimer(this.limits.keepAliveTimeoutMs)
    const partial = this.conn.bufferedBytes > 0
    const limit = partial || !this.servedAny ? this.limits.headersTimeoutMs : this.limits.keepAliveTimeoutMs
    const idle = Date.now() - this.lastActivity
    if (idle < limit) return this.armTimer(limit - idle)
    // Idle keep-alive: close quietly. A head that never completed (slowloris): 408, as Node does.
    if (partial) this.conn.unsafeWrite(Response.simple(408))
    this.timedOut = true
    this.stopped = true
    this.wakeProcessor()
    this.peerGone()
  }

  /**
   * A body still incomplete at its deadline (a slow or stalled upload): as Node's requestTimeout,
   * 408 if nothing was answered to that request yet, then the connection ends; a handler still
   * running is interrupted as on a client abort, and its body read fails.
   */
  private bodyTimedOut(): void {
    this.bodyDeadline = 0
    const ex = this.receiving
    if (ex !== undefined && !ex.responded) {
      ex.responded = true
      this.conn.unsafeWrite(Response.simple(408))
    }
    this.timedOut = true
    this.stopped = true
    this.wakeProcessor()
    this.peerGone()
  }

  /** Ends the connection at once if it is idle; else after the response in flight. */
  shutdown(): void {
    this.shuttingDown = true
    if (this.current === undefined && this.queue.length === 0) {
      this.stopped = true
      this.closed = true
      this.wakeProcessor()
      this.wakeReaderForce()
    }
  }

  private wakeReaderForce(): void {
    const w = this.readerWaiter
    this.readerWaiter = undefined
    w?.()
  }

  // ---- the processor -----------------------------------------------------------------------------

  /** Serves the connection: runs the reader beside the processor; returns when both are done. */
  serve(handler: Handler): Effect.Effect<void> {
    return Effect.withFiberRuntime<void>((fiber) => {
      this.processorFiber = fiber
      this.armTimer(this.limits.headersTimeoutMs)
      this.conn.unsafeOnReceiveEnd(this.onReceiveEnd)
      return Effect.acquireUseRelease(
        // Forked from the (uninterruptible) acquire: it must be made interruptible itself.
        Effect.forkDaemon(Effect.interruptible(this.makeReader(handler))),
        (readerFiber) => {
          this.readerFiber = readerFiber
          return this.process(handler)
        },
        (readerFiber) =>
          Effect.suspend(() => {
            this.closed = true
            if (this.timer !== undefined) clearTimeout(this.timer)
            native().httpParserFree(this.parserId)
            return Fiber.interrupt(readerFiber)
          })
      )
    })
  }

  private process(handler: Handler): Effect.Effect<void> {
    // As the reader's steps: functions called from the continuations (see makeReader).
    const step = (): Effect.Effect<void> => {
      if (this.closed || this.finished) return Effect.void
      // The reader runs an exchange itself: the next ones wait for it (responses stay in order).
      if (this.inline) return waitNext
      const ex = this.queue.shift()
      if (ex === undefined) {
        if (this.failureStatus !== 0) return this.writeRaw(Response.simple(this.failureStatus))
        if (this.closed || this.stopped || this.shuttingDown || this.timedOut) return Effect.void
        return waitNext
      }
      this.wakeReader()
      this.current = ex
      if ((ex.head.flags & HeadFlag.ContentLength) !== 0 && ex.head.contentLength > this.limits.maxBodySize) {
        return this.writeRaw(Response.simple(413))
      }
      // The handler has answered a failure (500...) itself and drops it, as NodeHttpServer does:
      // the connection goes on.
      return Effect.flatMap(handler(new RinglineServerRequest(ex, ex.head.url)), () => this.afterExchange(ex, step))
    }
    const waitNext = Effect.flatMap(this.waitProcessor, step)
    return Effect.suspend(step)
  }

  private afterExchange(ex: Exchange, step: () => Effect.Effect<void>): Effect.Effect<void> {
    this.current = undefined
    this.servedAny = true
    this.lastActivity = Date.now()
    // The upgraded socket was used by the handler; when it returns, the connection is done.
    if (this.upgraded) return Effect.void
    if (!ex.responded) return this.writeRaw(Response.simple(500))
    if (!ex.keepAlive || ex.closeAfter || this.shuttingDown || this.closed) return Effect.void
    if (!ex.ended) {
      // The client may still be waiting for 100 Continue: it will not send the body, so the next
      // bytes could not be trusted to be a request.
      if ((ex.head.flags & HeadFlag.ExpectContinue) !== 0 && !ex.continueSent) return Effect.void
      ex.dropBody()
    }
    return step()
  }

  private writeRaw(bytes: Uint8Array): Effect.Effect<void> {
    return Effect.sync(() => {
      this.conn.unsafeWrite(bytes)
    })
  }

  // ---- responses ---------------------------------------------------------------------------------

  private connectionLine(ex: Exchange): string {
    return ex.keepAlive && !ex.closeAfter && !this.shuttingDown ? this.keepAliveLine : "Connection: close\r\n"
  }

  /**
   * `respond` done now (called from the handler's continuation): writes what it can at once and
   * returns what is left to run (a stream body, a full send queue to wait for), or `undefined`.
   * Throws `InvalidHeader` for a header that would split the response.
   */
  respondNow(ex: Exchange, response: ServerResponse.HttpServerResponse): Effect.Effect<void, HttpServerError.ResponseError> | undefined {
    if (ex.responded) return undefined
    if (this.upgraded) {
      // The handshake answered the request; what the app returns after the upgrade is not sent.
      ex.responded = true
      return undefined
    }
    if (ex.tooLarge) {
      ex.responded = true
      ex.closeAfter = true
      this.conn.unsafeWrite(Response.simple(413))
      return undefined
    }
    const status = response.status
    const noBody = ex.head.method === "HEAD" || Response.bodyless(status)
    let headers = response.headers as Record<string, string>
    const body = response.body
    switch (body._tag) {
      case "Empty": {
        if (Response.bodyless(status) || headers["content-length"] !== undefined) {
          return this.writeHeadOnly(ex, response, headers, "")
        }
        // What Node's writeHead() + end() sends, so that both servers frame it the same way: an
        // empty chunked body on HTTP/1.1, a zero length on HTTP/1.0.
        return ex.head.version >= 11
          ? this.writeStream(ex, response, headers, Stream.empty, noBody)
          : this.writeHeadOnly(ex, response, headers, "Content-Length: 0\r\n")
      }
      case "Uint8Array":
        return this.writeBytes(ex, response, headers, body.body, noBody)
      case "Raw": {
        const raw = body.body
        if (typeof raw === "string") return this.writeBytes(ex, response, headers, textEncoder.encode(raw), noBody)
        if (raw instanceof Uint8Array) return this.writeBytes(ex, response, headers, raw, noBody)
        if (raw instanceof ArrayBuffer) return this.writeBytes(ex, response, headers, new Uint8Array(raw), noBody)
        if (raw instanceof ReadableStream) {
          return this.writeStream(ex, response, headers, Stream.fromReadableStream(() => raw, (e) => e), noBody)
        }
        if (raw !== null && typeof raw === "object" && Symbol.asyncIterator in raw) {
          return this.writeStream(
            ex,
            response,
            headers,
            Stream.fromAsyncIterable(raw as AsyncIterable<Uint8Array>, (e) => e),
            noBody
          )
        }
        return Effect.die(new Error(`@ringline/http: unsupported Raw response body ${typeof raw}`))
      }
      case "FormData": {
        const web = new globalThis.Response(body.formData)
        headers = { ...headers, ...Object.fromEntries(web.headers) }
        return this.writeStream(
          ex,
          response,
          headers,
          Stream.fromReadableStream(() => web.body!, (e) => e),
          noBody
        )
      }
      case "Stream":
        return this.writeStream(ex, response, headers, body.stream, noBody)
    }
  }

  private writeHeadOnly(
    ex: Exchange,
    response: ServerResponse.HttpServerResponse,
    headers: Record<string, string>,
    extra: string
  ): undefined {
    const head = Response.encodeHead(response, headers) + extra + this.connectionLine(ex) + "\r\n"
    ex.responded = true
    if (!this.conn.unsafeWrite(Response.bytes(head))) ex.closeAfter = true
    return undefined
  }

  private writeBytes(
    ex: Exchange,
    response: ServerResponse.HttpServerResponse,
    headers: Record<string, string>,
    bytes: Uint8Array,
    noBody: boolean
  ): Effect.Effect<void> | undefined {
    const extra = headers["content-length"] !== undefined || Response.bodyless(response.status)
      ? ""
      : `Content-Length: ${bytes.length}\r\n`
    const head = Response.encodeHead(response, headers) + extra + this.connectionLine(ex) + "\r\n"
    ex.responded = true
    const conn = this.conn
    const withBody = !noBody && bytes.length > 0
    const ok = withBody && bytes.length <= Response.coalesceMax
      ? conn.unsafeWrite(Response.headAndBody(head, bytes))
      : conn.unsafeWrite(Response.bytes(head)) && (!withBody || conn.unsafeWrite(bytes))
    if (!ok) {
      ex.closeAfter = true
      return undefined
    }
    return conn.queuedBytes > writeHighWater ? this.drain(ex) : undefined
  }

  private drain(ex: Exchange): Effect.Effect<void> {
    return Effect.catchAll(this.conn.writable, () =>
      Effect.sync(() => {
        ex.closeAfter = true
      }))
  }

  /**
   * The request body `source` streamed back as this response's body: whatever chunks are there go
   * out as one write (one HTTP chunk), then it waits for more; the connection's send queue bounds
   * it as the Stream path is bounded.
   */
  private pumpBody(request: RinglineServerRequest, chunked: boolean): Effect.Effect<void, unknown> {
    const conn = this.conn
    const source = request.exchange
    const loop: Effect.Effect<void, unknown> = Effect.suspend(() => {
      const parts = source.takeAll()
      if (parts.length > 0) {
        if (!conn.unsafeWrite(frame(parts, chunked))) return Effect.fail(new Error("connection closed"))
        return conn.queuedBytes > writeHighWater ? Effect.zipRight(conn.writable, loop) : loop
      }
      if (source.failure !== undefined) return Effect.fail(request.decodeError(source.failure))
      if (source.ended) return Effect.void
      return Effect.zipRight(source.waitData, loop)
    })
    return loop
  }

  private writeStream<E, R>(
    ex: Exchange,
    response: ServerResponse.HttpServerResponse,
    headers: Record<string, string>,
    stream: Stream.Stream<Uint8Array, E, R>,
    noBody: boolean
  ): Effect.Effect<void, HttpServerError.ResponseError, R> {
    return Effect.suspend(() => {
      const hasLength = headers["content-length"] !== undefined
      const chunked = !hasLength && !noBody && ex.head.version >= 11
      // HTTP/1.0 without a length: the body ends when the connection does.
      if (!hasLength && !noBody && !chunked) ex.closeAfter = true
      const head = Response.encodeHead(response, headers) + (chunked ? "Transfer-Encoding: chunked\r\n" : "") +
        this.connectionLine(ex) + "\r\n"
      ex.responded = true
      const conn = this.conn
      if (!conn.unsafeWrite(Response.bytes(head))) {
        ex.closeAfter = true
        return Effect.void
      }
      if (noBody) return Effect.void
      const source = bodyStreams.get(stream)
      const body: Effect.Effect<void, unknown, R> = source !== undefined
        ? this.pumpBody(source, chunked)
        : Stream.runForEachChunk(stream, (chunk) => {
          for (const part of Chunk.toReadonlyArray(chunk)) {
            if (part.length === 0) continue
            const ok = !chunked
              ? conn.unsafeWrite(part)
              : part.length <= Response.coalesceMax
              ? conn.unsafeWrite(frame([part], true))
              : conn.unsafeWrite(Response.chunkHeader(part.length)) && conn.unsafeWrite(part) &&
                conn.unsafeWrite(Response.chunkTrailer)
            if (!ok) return Effect.fail(new Error("connection closed"))
          }
          return conn.queuedBytes > writeHighWater ? conn.writable : Effect.void
        })
      return body.pipe(
        Effect.zipRight(Effect.sync(() => {
          if (chunked) conn.unsafeWrite(Response.chunkedEnd)
        })),
        Effect.catchAllCause((cause) => {
          // The head is out: the only way left to signal the failure is to end the connection.
          ex.closeAfter = true
          return Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause as Cause.Cause<never>)
            : Effect.fail(
              new HttpServerError.ResponseError({
                request: new RinglineServerRequest(ex, ex.head.url),
                response,
                reason: "Decode",
                cause: Cause.squash(cause)
              })
            )
        })
      )
    })
  }
}

const continueBytes = Response.bytes("HTTP/1.1 100 Continue\r\n\r\n")

/** Body parts framed as one HTTP chunk (or as they are) in one buffer, for one write. */
const frame = (parts: ReadonlyArray<Uint8Array>, chunked: boolean): Uint8Array => {
  let total = 0
  for (const p of parts) total += p.length
  if (!chunked && parts.length === 1) return parts[0]!
  const size = chunked ? `${total.toString(16)}\r\n` : ""
  const out = Buffer.allocUnsafe(size.length + total + (chunked ? 2 : 0))
  let off = out.write(size, 0, "latin1")
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  if (chunked) out.write("\r\n", off, "latin1")
  return out
}

const exchangeOf = (request: ServerRequest.HttpServerRequest): RinglineServerRequest => {
  if (!(request instanceof RinglineServerRequest)) {
    throw new Error("@ringline/http: the request is not a RinglineServerRequest")
  }
  return request
}

/** The platform's `handleResponse` for every ringline connection. */
export const handleResponse = (
  request: ServerRequest.HttpServerRequest,
  response: ServerResponse.HttpServerResponse
): Effect.Effect<void, HttpServerError.ResponseError> =>
  Effect.suspend(() => {
    const ex = exchangeOf(request).exchange
    return (ex.host as unknown as HttpConnection).respondNow(ex, response) ?? Effect.void
  })

/** `handleResponse` done now, from the handler's continuation (see handled.ts `RespondNow`). */
export const handleResponseNow = (
  request: ServerRequest.HttpServerRequest,
  response: ServerResponse.HttpServerResponse
): Effect.Effect<void, HttpServerError.ResponseError> | undefined => {
  const ex = exchangeOf(request).exchange
  return (ex.host as unknown as HttpConnection).respondNow(ex, response)
}

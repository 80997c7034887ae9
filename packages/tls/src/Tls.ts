/**
 * TLS 1.2/1.3 servers and clients on the ring, with Node's own OpenSSL. A TLS connection is an
 * ordinary `Connection`: `read(parse)`, `recv`, `stream`, `sink`, `send`, `write`, `sendv`,
 * `chain`, `shutdownWrite` and `close` all work on plaintext, while ciphertext stays in native
 * memory (decrypted from the receive buffers, encrypted into chunks the send queue points at).
 *
 * @since 0.1.0
 */
import { Connection, type Listener, Ringline, Tcp } from "@ringline/core"
import { type ConnectError, ConnectionClosed, type SocketError } from "@ringline/core/RinglineError"
import * as Transport from "@ringline/core/Transport"
import { Data, Deferred, Duration, Effect, Exit, Option, Queue, Scope } from "effect"
import { randomBytes, X509Certificate } from "node:crypto"
import { isIP } from "node:net"
import { rootCertificates } from "node:tls"
import type * as Native from "@ringline/native"
import { native, newSession, TlsTransport } from "./internal/engine.js"

/**
 * A TLS handshake did not complete. `reason` is `Verify` when the peer's certificate was rejected
 * (`detail` is OpenSSL's verifier reason: "hostname mismatch", "unable to get local issuer
 * certificate", "certificate has expired", ...), `Timeout` after `handshakeTimeout`, `Closed` when
 * the peer went away, `Protocol` otherwise (no shared cipher, no ALPN match, garbage...).
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsHandshakeError extends Data.TaggedError("TlsHandshakeError")<{
  readonly reason: "Verify" | "Protocol" | "Timeout" | "Closed"
  readonly detail: string
}> {
  override get message(): string {
    return `TLS handshake failed (${this.reason}): ${this.detail}`
  }
}

/**
 * A TLS option was rejected before anything was sent (bad PEM, key not matching the
 * certificate, an unknown `minVersion`...). `field` names the option.
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsConfigError extends Data.TaggedError("TlsConfigError")<{
  readonly field: string
  readonly detail: string
}> {
  override get message(): string {
    return `invalid TLS option ${this.field}: ${this.detail}`
  }
}

/**
 * PEM text (a string or its bytes).
 *
 * @since 0.1.0
 * @category models
 */
export type Pem = string | Uint8Array

/**
 * @since 0.1.0
 * @category models
 */
export type TlsVersion = "TLSv1.2" | "TLSv1.3"

/**
 * Options shared by servers and clients.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions {
  /** Trusted CA certificates (PEM, one or several per entry). */
  readonly ca?: Pem | ReadonlyArray<Pem>
  /** ALPN protocols in preference order (a server picks the first one the client offers). */
  readonly alpn?: ReadonlyArray<string>
  /** Lowest protocol version accepted; default TLSv1.2. */
  readonly minVersion?: TlsVersion
  /** Highest protocol version offered; default TLSv1.3. */
  readonly maxVersion?: TlsVersion
  /** Time for the whole handshake; default 10 seconds. Then the connection is closed. */
  readonly handshakeTimeout?: Duration.DurationInput
}

/**
 * The certificate side of a server (also used per name for SNI).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerCredentials {
  /** Certificate chain in PEM: the leaf first, then intermediates. */
  readonly cert: Pem
  /** Private key in PEM (unencrypted). */
  readonly key: Pem
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends CommonOptions, ServerCredentials {
  /** Certificates by server name (SNI); "*.example.com" matches one label. Others get `cert`. */
  readonly sni?: Readonly<Record<string, ServerCredentials>>
  /** Ask clients for a certificate, verified against `ca`; clients without one are refused. */
  readonly requestCert?: boolean
  /** Session tickets for resumption; default true. */
  readonly sessionTickets?: boolean
  /**
   * Ticket keys (80 bytes each, e.g. from {@link generateTicketKey}), newest first: tickets are
   * issued with the first and accepted with any. Give the same keys to several listeners (or
   * workers) so that a session resumes on any of them. Without them a random key is made and
   * rotated every `ticketKeyRotation`.
   */
  readonly ticketKeys?: ReadonlyArray<Uint8Array>
  /** How often the generated ticket key is replaced (the previous one stays valid); default 12 hours. */
  readonly ticketKeyRotation?: Duration.DurationInput
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BindOptions {
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** 0 (default) picks a free port. */
  readonly port?: number
  readonly backlog?: number
}

/**
 * Where to listen, and either the server options or a context built by {@link serverContext}.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenOptions = BindOptions & (ServerOptions | { readonly context: ServerContext })

/**
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends CommonOptions {
  /**
   * Name sent as SNI and checked against the certificate; default: the host connected to. An IP
   * literal is checked against the certificate's IP addresses and not sent as SNI. An empty name,
   * or one with a NUL byte, fails with `TlsConfigError` (it would check no name, or a shorter one).
   */
  readonly servername?: string
  /** Verify the server's certificate (Node's root store plus `ca`) and name; default true. */
  readonly rejectUnauthorized?: boolean
  /** A client certificate, for servers that ask for one. */
  readonly cert?: Pem
  readonly key?: Pem
  /**
   * Resume earlier sessions (tickets): `true` (default) per servername and port, a string to
   * share one cache entry between endpoints of a service that share ticket keys, `false` never.
   */
  readonly resume?: boolean | string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions extends ClientOptions {
  /** Timeout of the TCP connect (the handshake has its own, `handshakeTimeout`). */
  readonly timeout?: Duration.DurationInput
}

/**
 * What was negotiated on a TLS connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsInfo {
  /** "TLSv1.3" or "TLSv1.2". */
  readonly protocol: string
  /** IANA name, e.g. "TLS_AES_256_GCM_SHA384". */
  readonly cipher: string
  readonly alpn: string | undefined
  /** The SNI name (as sent by the client). */
  readonly servername: string | undefined
  /** The session was resumed (ticket) rather than fully negotiated. */
  readonly resumed: boolean
  /** The peer's certificate, when it sent one. */
  readonly peerCertificate: X509Certificate | undefined
  /** Why the peer's certificate did not verify (only with `rejectUnauthorized: false`). */
  readonly authorizationError: string | undefined
}

const DEFAULT_HANDSHAKE_TIMEOUT = Duration.seconds(10)
/** Server handshakes in progress at once per listener through `accept` (serve: one per fiber). */
const MAX_HANDSHAKES = 1024
const versions: Record<TlsVersion, number> = { "TLSv1.2": 0x0303, "TLSv1.3": 0x0304 }

const transports = new WeakMap<Connection.Connection, TlsTransport>()

const text = (pem: Pem): string => (typeof pem === "string" ? pem : new TextDecoder().decode(pem))
const list = (ca: Pem | ReadonlyArray<Pem> | undefined): Array<string> =>
  ca === undefined ? [] : (Array.isArray(ca) ? ca as ReadonlyArray<Pem> : [ca as Pem]).map(text)

const version = (field: string, v: TlsVersion | undefined): Effect.Effect<number | undefined, TlsConfigError> =>
  v === undefined
    ? Effect.succeed(undefined)
    : v in versions
    ? Effect.succeed(versions[v])
    : Effect.fail(new TlsConfigError({ field, detail: `must be "TLSv1.2" or "TLSv1.3", got ${String(v)}` }))

const makeContext = (field: string, options: Native.TlsContextOptions) =>
  Effect.try({
    try: () => new (native().TlsContext)(options),
    catch: (e) => new TlsConfigError({ field, detail: String((e as Error)?.message ?? e) })
  })

const checkAlpn = (alpn: ReadonlyArray<string> | undefined) =>
  alpn !== undefined && (!Array.isArray(alpn) || alpn.some((p) => typeof p !== "string" || p.length === 0 || p.length > 255))
    ? Effect.fail(new TlsConfigError({ field: "alpn", detail: "must be an array of 1..255-character protocol names" }))
    : Effect.void

const timeoutOf = (options: CommonOptions): Effect.Effect<Duration.Duration, TlsConfigError> => {
  const d = Duration.decodeUnknown(options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
  return Option.isSome(d) && Duration.toMillis(d.value) > 0
    ? Effect.succeed(d.value)
    : Effect.fail(new TlsConfigError({ field: "handshakeTimeout", detail: "must be a positive duration" }))
}

/** A server context (and one per SNI name); checked once, shared by every connection. */
const serverContextOf = (options: ServerOptions) =>
  Effect.gen(function*() {
    if (options.cert === undefined) return yield* new TlsConfigError({ field: "cert", detail: "is required" })
    if (options.key === undefined) return yield* new TlsConfigError({ field: "key", detail: "is required" })
    yield* checkAlpn(options.alpn)
    const minVersion = yield* version("minVersion", options.minVersion)
    const maxVersion = yield* version("maxVersion", options.maxVersion)
    const base = {
      server: true,
      ca: list(options.ca),
      ...(options.alpn === undefined ? {} : { alpn: options.alpn }),
      ...(minVersion === undefined ? {} : { minVersion }),
      ...(maxVersion === undefined ? {} : { maxVersion }),
      verify: options.requestCert === true ? 2 as const : 0 as const,
      tickets: options.sessionTickets !== false
    }
    const sni: Array<readonly [string, Native.TlsContext]> = []
    for (const [name, creds] of Object.entries(options.sni ?? {})) {
      sni.push([name, yield* makeContext(`sni.${name}`, { ...base, cert: text(creds.cert), key: text(creds.key) })])
    }
    return yield* makeContext("cert", { ...base, cert: text(options.cert), key: text(options.key), sni })
  })

const clientContexts = new Map<string, Native.TlsContext>()

/** Client contexts are cached per option set: building the root store costs a few milliseconds. */
const clientContext = (options: ClientOptions) =>
  Effect.gen(function*() {
    yield* checkAlpn(options.alpn)
    const minVersion = yield* version("minVersion", options.minVersion)
    const maxVersion = yield* version("maxVersion", options.maxVersion)
    const ca = list(options.ca)
    const cert = options.cert === undefined ? undefined : text(options.cert)
    const key = options.key === undefined ? undefined : text(options.key)
    const verify = options.rejectUnauthorized === false ? 0 : 1
    // Looked up before the root store is copied into the options: a cache hit (every connect
    // after the first) costs only this key.
    const cacheKey = JSON.stringify([ca, options.alpn, minVersion, maxVersion, cert, key, verify])
    const cached = clientContexts.get(cacheKey)
    if (cached !== undefined) return cached
    const o: Native.TlsContextOptions = {
      server: false,
      ca: [...rootCertificates, ...ca],
      ...(options.alpn === undefined ? {} : { alpn: options.alpn }),
      ...(minVersion === undefined ? {} : { minVersion }),
      ...(maxVersion === undefined ? {} : { maxVersion }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      verify
    }
    const ctx = yield* makeContext(options.cert !== undefined ? "cert" : "ca", o)
    if (clientContexts.size > 64) clientContexts.clear()
    clientContexts.set(cacheKey, ctx)
    return ctx
  })

/**
 * Puts a TLS session under `connection` and runs the handshake, failing with
 * TlsHandshakeError (after `timeout`, too). The connection is not closed here.
 */
const handshake = (
  connection: Connection.Connection,
  context: Native.TlsContext,
  sessionOptions: { servername?: string; verifyHost?: string; verifyIp?: string; sessionKey?: string } | undefined,
  timeout: Duration.Duration
): Effect.Effect<void, TlsHandshakeError> =>
  Effect.async<void, TlsHandshakeError>((resume) => {
    if (transports.has(connection)) {
      return resume(Effect.fail(new TlsHandshakeError({ reason: "Protocol", detail: "the connection already speaks TLS" })))
    }
    let transport: TlsTransport
    try {
      const session = newSession(context, sessionOptions)
      transport = Transport.attach(connection, (sink) => new TlsTransport(sink, session))
    } catch (e) {
      return resume(Effect.fail(new TlsHandshakeError({ reason: "Protocol", detail: String((e as Error)?.message ?? e) })))
    }
    transports.set(connection, transport)
    // A plain timer rather than Effect.timeout: no extra fiber per handshake (thousands may run).
    const timer = setTimeout(() => {
      resume(Effect.fail(new TlsHandshakeError({ reason: "Timeout", detail: `no handshake within ${Duration.format(timeout)}` })))
    }, Duration.toMillis(timeout))
    transport.onHandshake((failure) => {
      clearTimeout(timer)
      if (failure === undefined) return resume(Effect.void)
      const closed = /closed|failed during/.test(failure.detail)
      resume(Effect.fail(new TlsHandshakeError({ reason: failure.verify ? "Verify" : closed ? "Closed" : "Protocol", detail: failure.detail })))
    })
    if (sessionOptions !== undefined) {
      transport.start()
      Transport.flush(connection)
    }
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * The session options of a client connecting to `host` (`options.servername` instead when
 * given), failing when that name is not a non-empty string without NUL: the native side skips
 * the host check for an empty name (OpenSSL verifies no name that was never set) and reads a C
 * string, so "good.test\0.evil.example" would be verified as "good.test". Either way a
 * certificate for another name would pass.
 */
const clientSession = (host: unknown, port: number | undefined, options: ClientOptions) => {
  const field = options.servername === undefined ? "host" : "servername"
  const name: unknown = options.servername ?? host
  if (typeof name !== "string" || name === "" || name.includes("\0")) {
    return Effect.fail(
      new TlsConfigError({ field, detail: `must be a non-empty host name without NUL bytes, got ${describe(name)}` })
    )
  }
  const ip = isIP(name) !== 0
  const verify = options.rejectUnauthorized !== false
  return Effect.succeed({
    ...(ip ? {} : { servername: name }),
    ...(verify && !ip ? { verifyHost: name } : {}),
    ...(verify && ip ? { verifyIp: name } : {}),
    ...(typeof options.resume === "string"
      ? { sessionKey: options.resume }
      : options.resume === false || port === undefined
      ? {}
      : { sessionKey: `${name}:${port}` })
  })
}

/** A short description of an option value for an error message. */
const describe = (u: unknown): string =>
  typeof u === "string" ? JSON.stringify(u) : u === null ? "null" : typeof u === "object" ? "an object" : String(u)

/** Fails naming `field` unless `options` is an object (from JavaScript it may be anything). */
const optionsObject = (field: string, options: unknown): Effect.Effect<void, TlsConfigError> =>
  typeof options === "object" && options !== null
    ? Effect.void
    : Effect.fail(new TlsConfigError({ field, detail: `must be an object, got ${describe(options)}` }))

/**
 * Brands a {@link ServerContext}.
 *
 * @since 0.1.0
 * @category symbols
 */
export const ServerContextTypeId: unique symbol = Symbol.for("@ringline/tls/ServerContext")

/**
 * A checked, reusable server configuration (certificates, SNI, ALPN, versions, ticket keys,
 * handshake timeout) from {@link serverContext}. Every connection handshaken with it shares one
 * OpenSSL context: certificates and keys are parsed once, and a session issued on one connection
 * resumes on the others (one ticket key).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerContext {
  readonly [ServerContextTypeId]: {
    readonly native: Native.TlsContext
    readonly timeout: Duration.Duration
  }
}

/**
 * Builds a server configuration once, to hand to {@link upgrade} (`{ side: "server", context }`)
 * or {@link listen} (`{ context }`) for any number of connections: building one parses the
 * certificates and keys (and each SNI pair), which costs far more than a handshake, so code that
 * upgrades connections one by one (STARTTLS, a worker's `serve`) should build it once. Without
 * `ticketKeys`, the generated ticket key rotates (`ticketKeyRotation`) until the scope closes;
 * after that the context still works (its last keys stay valid), only the rotation has stopped.
 *
 * @example
 * ```ts
 * const context = yield* Tls.serverContext({ cert, key, alpn: ["echo"] })
 * yield* listener.serve((conn) =>
 *   Effect.zipRight(Tls.upgrade(conn, { side: "server", context }), echo(conn)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const serverContext = (options: ServerOptions): Effect.Effect<ServerContext, TlsConfigError, Scope.Scope> =>
  typeof options !== "object" || options === null
    ? optionsObject("options", options) as Effect.Effect<never, TlsConfigError>
    : Effect.all({ native: serverContextOf(options), timeout: timeoutOf(options) }).pipe(
      Effect.tap(({ native }) => ticketKeys(native, options)),
      Effect.map((c) => ({ [ServerContextTypeId]: c }))
    )

const isServerContext = (u: unknown): u is ServerContext =>
  typeof u === "object" && u !== null && ServerContextTypeId in u

/** What a ServerContext fixes: given next to one, they would be ignored. */
const serverOptionKeys = [
  "cert", "key", "ca", "alpn", "sni", "requestCert", "minVersion", "maxVersion", "handshakeTimeout",
  "sessionTickets", "ticketKeys", "ticketKeyRotation"
] as const

/** The context given, or one built from the options (its rotation, if any, bound to the scope). */
const contextOf = (options: ServerOptions | { readonly context: ServerContext }) => {
  if (typeof options !== "object" || options === null) return optionsObject("options", options) as Effect.Effect<never, TlsConfigError>
  if (!("context" in options) || options.context === undefined) return serverContext(options as ServerOptions)
  if (!isServerContext(options.context)) {
    return Effect.fail(new TlsConfigError({ field: "context", detail: "must come from Tls.serverContext" }))
  }
  const both = serverOptionKeys.find((k) => (options as Record<string, unknown>)[k] !== undefined)
  return both === undefined
    ? Effect.succeed(options.context)
    : Effect.fail(new TlsConfigError({ field: both, detail: "is fixed by the given context (give one or the other)" }))
}

/**
 * A fresh random session-ticket key (16 bytes name, 32 bytes HMAC key, 32 bytes AES key).
 *
 * @since 0.1.0
 * @category constructors
 */
export const generateTicketKey = (): Uint8Array => new Uint8Array(randomBytes(80))

const TICKET_ROTATION = Duration.hours(12)

/** Installs the ticket keys; without given keys, rotates generated ones in the listener's scope. */
const ticketKeys = (context: Native.TlsContext, options: ServerOptions): Effect.Effect<void, TlsConfigError, Scope.Scope> => {
  if (options.sessionTickets === false) return Effect.void
  const install = (keys: ReadonlyArray<Uint8Array>) =>
    Effect.try({
      try: () => {
        const all = new Uint8Array(keys.length * 80)
        keys.forEach((k, i) => {
          if (!(k instanceof Uint8Array) || k.length !== 80) throw new Error("each key must be a Uint8Array of 80 bytes")
          all.set(k, i * 80)
        })
        context.setTicketKeys(all)
      },
      catch: (e) => new TlsConfigError({ field: "ticketKeys", detail: String((e as Error)?.message ?? e) })
    })
  if (options.ticketKeys !== undefined) return install(options.ticketKeys)
  const every = Duration.decodeUnknown(options.ticketKeyRotation ?? TICKET_ROTATION)
  if (Option.isNone(every) || Duration.toMillis(every.value) <= 0) {
    return Effect.fail(new TlsConfigError({ field: "ticketKeyRotation", detail: "must be a positive duration" }))
  }
  let current = generateTicketKey()
  return Effect.zipRight(
    install([current]),
    Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sleep(every.value),
      Effect.suspend(() => {
        const previous = current
        current = generateTicketKey()
        return Effect.orDie(install([current, previous]))
      })
    ))).pipe(Effect.asVoid)
  )
}

/**
 * Runs the server side of the handshake on an accepted connection; on failure the connection is
 * closed (the alert OpenSSL wrote goes out first).
 */
const serverHandshake = (connection: Connection.Connection, context: Native.TlsContext, timeout: Duration.Duration) =>
  Effect.onError(handshake(connection, context, undefined, timeout), () => connection.close)

/**
 * Listens on a TCP port; every connection the listener hands out (`accept`, `serve`) has
 * completed its TLS handshake. Connections whose handshake fails or times out (plaintext or
 * garbage sent to the port, an unknown CA with `requestCert`, ...) are closed and never seen.
 *
 * `serve` runs each handshake in the connection's own fiber; `accept` hands out connections as
 * their handshakes complete (up to 1,024 in progress at once, each bounded by `handshakeTimeout`),
 * so a slow client never holds up the others. `Listener.serveChunks` runs each handshake in a
 * fiber too, then serves the connection's decrypted chunks straight from the completions, like a
 * plain connection's (no fiber while the handler answers synchronously); a shutdown ends
 * handshakes still in progress at once.
 *
 * @example
 * ```ts
 * const listener = yield* Tls.listen({ port: 0, cert, key, alpn: ["echo"] })
 * yield* listener.serve((conn) => conn.stream.pipe(Stream.run(conn.sink)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (
  options: ListenOptions
): Effect.Effect<Listener.Listener, SocketError | TlsConfigError, Ringline.Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    const { native: context, timeout } = (yield* contextOf(options))[ServerContextTypeId]
    const inner = yield* Tcp.listen({
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.backlog === undefined ? {} : { backlog: options.backlog })
    })
    return yield* over(inner, context, timeout, options.backlog ?? 128)
  })

/**
 * TLS over a listener you already have (a worker's `RinglineWorkers.listen`, a `Unix.listen`):
 * the returned listener's connections have completed their handshake, exactly as with
 * {@link listen} (`accept`, `serve`, and `Listener.serveChunks` served from the completions).
 * It closes with the scope; `listener` stays its caller's.
 *
 * @example
 * ```ts
 * const context = yield* Tls.serverContext({ cert, key })
 * const listener = yield* Tls.secure(yield* RinglineWorkers.listen, { context })
 * yield* Listener.serveChunks(listener, (chunk, conn) => {
 *   if (chunk.length > 0) conn.unsafeWrite(chunk)
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const secure = (
  listener: Listener.Listener,
  options: ServerOptions | { readonly context: ServerContext }
): Effect.Effect<Listener.Listener, TlsConfigError, Scope.Scope> =>
  typeof listener !== "object" || listener === null || typeof listener.serve !== "function" ||
    !Effect.isEffect(listener.accept)
    ? Effect.fail(new TlsConfigError({ field: "listener", detail: `must be a ringline Listener, got ${describe(listener)}` }))
    : Effect.flatMap(contextOf(options), (c) => {
      const { native: context, timeout } = c[ServerContextTypeId]
      return over(listener, context, timeout, 128)
    })

/** The TLS listener over `inner` (listen, secure): handshakes before anything is handed out. */
const over = (inner: Listener.Listener, context: Native.TlsContext, timeout: Duration.Duration, backlog: number) =>
  Effect.gen(function*() {
    let accepted = 0
    // accept: one acceptor fiber (started by the first accept) hands every accepted connection
    // to its own handshake fiber; finished handshakes queue up for accept. So a slow or silent
    // client holds up nobody (each is bounded by handshakeTimeout), and at most
    // MAX_HANDSHAKES handshakes run at once.
    const listenerScope = yield* Effect.scope
    const ready = yield* Queue.bounded<{ readonly conn: Connection.Connection; readonly scope: Scope.CloseableScope }>(backlog)
    const closed = yield* Deferred.make<void>()
    const permits = yield* Effect.makeSemaphore(MAX_HANDSHAKES)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Deferred.succeed(closed, undefined)
        // Handshaken connections nobody accepted: close them.
        for (const r of yield* Queue.takeAll(ready)) yield* Scope.close(r.scope, Exit.void)
      })
    )
    const acceptLoop = Effect.forever(
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          yield* permits.take(1)
          const scope = yield* Scope.make()
          const conn = yield* restore(Scope.extend(inner.accept, scope)).pipe(
            Effect.onError(() => Effect.zipRight(Scope.close(scope, Exit.void), permits.release(1)))
          )
          // (Forked from an uninterruptible region: made interruptible again so that its timeout
          // and the listener's close can stop it.)
          yield* Effect.forkIn(
            Effect.interruptible(serverHandshake(conn, context, timeout)).pipe(
              Effect.zipRight(Queue.offer(ready, { conn, scope })),
              Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, Exit.void)),
              Effect.ensuring(permits.release(1)),
              Effect.catchAll((e) => Effect.logDebug("ringline tls: handshake failed", e))
            ),
            listenerScope
          )
        })
      )
    ).pipe(Effect.catchAll(() => Effect.void))
    let acceptor: Effect.Effect<void> | undefined
    const startAcceptor = Effect.suspend(() => {
      if (acceptor !== undefined) return Effect.void
      acceptor = Effect.void
      return Effect.asVoid(Effect.forkIn(acceptLoop, listenerScope))
    })
    const accept: Listener.Listener["accept"] = Effect.gen(function*() {
      yield* startAcceptor
      const next = yield* Effect.raceFirst(
        Effect.map(Queue.take(ready), Option.some),
        Effect.as(Deferred.await(closed), Option.none())
      )
      if (Option.isNone(next)) return yield* new ConnectionClosed({ operation: "accept" })
      accepted++
      yield* Effect.addFinalizer(() => Scope.close(next.value.scope, Exit.void))
      return next.value.conn
    })
    const serve: Listener.Listener["serve"] = (handler, options) =>
      inner.serve((c) =>
        serverHandshake(c, context, timeout).pipe(
          Effect.matchEffect({
            onFailure: (e) => Effect.logDebug("ringline tls: handshake failed", e),
            onSuccess: () => {
              accepted++
              return handler(c)
            }
          })
        ),
        options
      )
    const listener: Listener.Listener = {
      address: inner.address,
      accept,
      serve,
      get accepted() {
        return accepted
      }
    }
    // Listener.serveChunks: each connection's handshake in a fiber, then its chunks served from
    // the completions that decrypted them, like a plain connection's.
    Transport.serveChunksAfter(listener, inner, (c) =>
      serverHandshake(c, context, timeout).pipe(
        Effect.tapBoth({
          onFailure: (e) => Effect.logDebug("ringline tls: handshake failed", e),
          onSuccess: () => Effect.sync(() => accepted++)
        })
      ))
    return listener
  })

/**
 * Connects to `target` over TCP and runs the TLS client handshake. By default the server's
 * certificate must chain to Node's root store (`tls.rootCertificates`) or `ca`, and match the
 * host name (or IP address) connected to, else this fails with `TlsHandshakeError` (reason
 * `Verify`). The connection closes with the scope.
 *
 * @example
 * ```ts
 * const conn = yield* Tls.connect("127.0.0.1:8443", { ca: caPem, servername: "localhost" })
 * yield* conn.send(new TextEncoder().encode("hello"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  target: string | { readonly host: string; readonly port: number },
  options: ConnectOptions = {}
): Effect.Effect<Connection.Connection, ConnectError | TlsHandshakeError | TlsConfigError, Ringline.Ringline | Scope.Scope> =>
  Effect.gen(function*() {
    yield* optionsObject("options", options)
    const context = yield* clientContext(options)
    const timeout = yield* timeoutOf(options)
    // (From JavaScript the target may be anything: without a host it fails here, naming it.)
    const { host, port } = typeof target === "string"
      ? splitTarget(target)
      : (target ?? {}) as { readonly host?: unknown; readonly port?: number }
    const session = yield* clientSession(host, port, options)
    const connection = yield* Tcp.connect(target, options.timeout === undefined ? undefined : { timeout: options.timeout })
    yield* Effect.onError(handshake(connection, context, session, timeout), () => connection.close)
    return connection
  })

const splitTarget = (target: string): { host: string; port: number | undefined } => {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(target) ?? /^([^:]+):(\d+)$/.exec(target)
  return m === null ? { host: target, port: undefined } : { host: m[1]!, port: Number(m[2]) }
}

/**
 * Options of {@link upgrade}: the client side (`host` is what the certificate must match) or the
 * server side.
 *
 * @since 0.1.0
 * @category models
 */
export type UpgradeOptions =
  | ({ readonly side: "client"; readonly host: string } & ClientOptions)
  | ({ readonly side: "server" } & ServerOptions)
  | { readonly side: "server"; readonly context: ServerContext }

/**
 * STARTTLS: turns an open plaintext connection into a TLS one (after, e.g., an SMTP `STARTTLS`
 * exchange). Bytes the peer sent after its last plaintext message (its ClientHello) may already
 * be buffered: they go through TLS. From then on the same `Connection` reads and writes
 * plaintext over TLS. On any failure (bad options included: the peer has already been told to
 * start TLS) the connection is closed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const upgrade = (
  connection: Connection.Connection,
  options: UpgradeOptions
): Effect.Effect<void, TlsHandshakeError | TlsConfigError> =>
  // Any failure closes it, bad options too: the peer has already been told to start TLS, so the
  // connection cannot go on as plaintext.
  Effect.onError(
    upgradeWith(connection, options),
    () => Connection.isConnection(connection) ? connection.close : Effect.void
  )

const upgradeWith = (
  connection: Connection.Connection,
  options: UpgradeOptions
): Effect.Effect<void, TlsHandshakeError | TlsConfigError> =>
  typeof options !== "object" || options === null
    ? optionsObject("options", options) as Effect.Effect<never, TlsConfigError>
    : options.side === "server"
    // Built from options, the context serves one connection: its ticket key need not rotate (the
    // scope ends the rotation fiber at once). Many upgrades should share a `serverContext`.
    ? Effect.flatMap(Effect.scoped(contextOf(options)), (c) => {
      const { native: context, timeout } = c[ServerContextTypeId]
      return handshake(connection, context, undefined, timeout)
    })
    : Effect.gen(function*() {
      const context = yield* clientContext(options)
      const timeout = yield* timeoutOf(options)
      const session = yield* clientSession(options.host, undefined, options)
      yield* handshake(connection, context, session, timeout)
    })

/**
 * What the handshake negotiated, or `None` for a connection without TLS.
 *
 * @since 0.1.0
 * @category accessors
 */
export const info = (connection: Connection.Connection): Option.Option<TlsInfo> => {
  const t = transports.get(connection)
  if (t === undefined || !t.handshakeDone) return Option.none()
  const i = t.session.info()
  return Option.some({
    protocol: i.protocol,
    cipher: i.cipher ?? "",
    alpn: i.alpn,
    servername: i.servername,
    resumed: i.resumed,
    peerCertificate: i.peerCertificate === undefined ? undefined : new X509Certificate(i.peerCertificate),
    authorizationError: i.verifyError ?? undefined
  })
}

/**
 * Sends a TLS 1.3 KeyUpdate now (new traffic keys for what this side sends); with
 * `requestPeer` the peer is asked to update its keys too.
 *
 * @since 0.1.0
 * @category operations
 */
export const keyUpdate = (connection: Connection.Connection, requestPeer = false): Effect.Effect<void, TlsConfigError> =>
  Effect.suspend(() => {
    const t = transports.get(connection)
    if (t === undefined || !t.handshakeDone) {
      return Effect.fail(new TlsConfigError({ field: "connection", detail: "has no established TLS session" }))
    }
    return Effect.try({
      try: () => {
        t.keyUpdate(requestPeer)
        Transport.flush(connection)
      },
      catch: (e) => new TlsConfigError({ field: "connection", detail: String((e as Error)?.message ?? e) })
    })
  })

/**
 * Whether `connection` runs over TLS.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTls = (connection: Connection.Connection): boolean => transports.has(connection)

// Re-exported so that users can match on it without importing @ringline/core's error module.
export { TlsError } from "@ringline/core/RinglineError"

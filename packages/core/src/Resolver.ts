/**
 * Host name resolution as an Effect service.
 *
 * The system resolver is `node:dns` `lookup` with `all: true`: the platform's `getaddrinfo`
 * (honouring `/etc/hosts`, `nsswitch.conf` and `resolv.conf`, like every other program on the
 * machine), run on libuv's thread pool, so a slow DNS server never stalls the thread that drives
 * the ring. Numeric addresses are answered at once, without a lookup.
 *
 * `Tcp.connect("host:port")` resolves through the `Resolver` service when the caller's context
 * provides one, through the system resolver otherwise.
 *
 * @since 0.1.0
 */
import { Context, Data, Duration, Effect, Layer, Option } from "effect"
import type { Array as Arr } from "effect"
import { lookup as dnsLookup } from "node:dns/promises"
import { isIPv4, isIPv6 } from "node:net"
import * as Addr from "./Address.js"
import { RinglineConfigError } from "./RinglineError.js"

/**
 * One address of a host: a numeric IPv4 or IPv6 address and its family, the shape of
 * `node:dns` `lookup` results. There is no port: pair it with one through {@link toTcpAddress}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/**
 * Why a resolution failed:
 *
 * - `NotFound`: the name does not exist or has no address (`ENOTFOUND`, `EAI_NONAME`,
 *   `EAI_NODATA`, `ENODATA`): retrying will not help;
 * - `Unavailable`: the resolver could not answer now (`EAI_AGAIN`, `EAI_FAIL`, `ESERVFAIL`,
 *   `ETIMEOUT`, `ECONNREFUSED`, or the `timeout` of {@link make} elapsed): worth retrying;
 * - `Other`: anything else (`EBADNAME`, an empty host name, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export type ResolveFailure = "NotFound" | "Unavailable" | "Other"

/**
 * A host name could not be resolved.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResolveError extends Data.TaggedError("ResolveError")<{
  readonly reason: ResolveFailure
  readonly host: string
  /** The resolver's error code, e.g. `ENOTFOUND`, `EAI_AGAIN`, `ETIMEOUT`. */
  readonly code: string
}> {
  override get message(): string {
    return this.reason === "NotFound"
      ? `cannot resolve ${JSON.stringify(this.host)}: no such host (${this.code})`
      : this.reason === "Unavailable"
      ? `cannot resolve ${JSON.stringify(this.host)}: the resolver is unavailable (${this.code}); try again later`
      : `cannot resolve ${JSON.stringify(this.host)}: ${this.code}`
  }
}

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolverService {
  /**
   * Every address of `host` (IPv4 and IPv6, in the order the system resolver prefers, which is
   * the order `Tcp.connect` tries them in: it uses the first). A numeric address (`127.0.0.1`,
   * `::1`, `[::1]`) resolves to itself without a lookup. Interrupting stops the wait; a lookup
   * already running on libuv's pool cannot be withdrawn and finishes there unobserved.
   */
  readonly resolve: (host: string) => Effect.Effect<Arr.NonEmptyReadonlyArray<ResolvedAddress>, ResolveError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Resolver extends Context.Tag("@ringline/core/Resolver")<Resolver, ResolverService>() {}

/**
 * A `lookup` with the contract of `node:dns/promises` `lookup(host, { all: true })`: resolves
 * with the addresses, rejects with an error whose `code` says why.
 *
 * @since 0.1.0
 * @category models
 */
export type LookupFunction = (host: string) => Promise<ReadonlyArray<{ readonly address: string; readonly family: number }>>

/**
 * Options of {@link make} / {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolverOptions {
  /**
   * Fail with `Unavailable` (code `ETIMEOUT`) when a lookup takes longer than this. Default: no
   * limit of ringline's own (the system resolver's timeouts and attempts from `resolv.conf` apply).
   */
  readonly timeout?: Duration.DurationInput
  /** The lookup to use instead of `node:dns` `lookup(host, { all: true })` (a cache, a stub in tests). */
  readonly lookup?: LookupFunction
}

const NOT_FOUND = new Set(["ENOTFOUND", "EAI_NONAME", "EAI_NODATA", "ENODATA", "ENONAME", "NXDOMAIN"])
const UNAVAILABLE = new Set(["EAI_AGAIN", "EAI_FAIL", "ESERVFAIL", "ETIMEOUT", "ETIMEDOUT", "ECONNREFUSED", "EREFUSED"])

/**
 * Which {@link ResolveFailure} an error `code` of `node:dns` (or `getaddrinfo`) means.
 *
 * @since 0.1.0
 * @category errors
 */
export const classify = (code: string): ResolveFailure =>
  NOT_FOUND.has(code) ? "NotFound" : UNAVAILABLE.has(code) ? "Unavailable" : "Other"

/**
 * `host` as a numeric address (brackets around IPv6 removed), or `undefined` for a name.
 *
 * @since 0.1.0
 * @category utils
 */
export const numeric = (host: string): ResolvedAddress | undefined => {
  const h = host.length > 1 && host[0] === "[" && host[host.length - 1] === "]" ? host.slice(1, -1) : host
  return isIPv4(h) ? { address: h, family: 4 } : isIPv6(h) ? { address: h, family: 6 } : undefined
}

const systemLookup: LookupFunction = (host) => dnsLookup(host, { all: true })

const resolveWith = (lookup: LookupFunction, timeoutMs: number | undefined) =>
(host: string): Effect.Effect<Arr.NonEmptyReadonlyArray<ResolvedAddress>, ResolveError> =>
  Effect.suspend(() => {
    const n = typeof host === "string" ? numeric(host) : undefined
    if (n !== undefined) return Effect.succeed([n] as const)
    // A NUL would cut the name short in getaddrinfo ("localhost\0.evil" resolving as localhost).
    if (host === "" || typeof host !== "string" || host.includes("\0")) {
      return Effect.fail(new ResolveError({ reason: "Other", host, code: "EBADNAME" }))
    }
    const run = Effect.tryPromise({
      try: () => lookup(host),
      catch: (e: any) => {
        const code = String(e?.code ?? "ENOTFOUND")
        return new ResolveError({ reason: classify(code), host, code })
      }
    }).pipe(
      Effect.flatMap((all) => {
        const out: Array<ResolvedAddress> = []
        for (const a of all) {
          const family = a.family === 6 || isIPv6(a.address) ? 6 : 4
          if (!out.some((o) => o.address === a.address)) out.push({ address: a.address, family })
        }
        return out.length === 0
          ? Effect.fail(new ResolveError({ reason: "NotFound", host, code: "ENODATA" }))
          : Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<ResolvedAddress>)
      })
    )
    return timeoutMs === undefined ? run : Effect.timeoutFail(run, {
      duration: timeoutMs,
      onTimeout: () => new ResolveError({ reason: "Unavailable", host, code: "ETIMEOUT" })
    })
  }).pipe(Effect.withSpan("ringline.resolve", { attributes: { host } }))

/**
 * The system resolver: `node:dns` `lookup(host, { all: true })`, no timeout of its own.
 *
 * @since 0.1.0
 * @category constructors
 */
export const system: ResolverService = { resolve: resolveWith(systemLookup, undefined) }

/**
 * A resolver with options. Fails with `RinglineConfigError` (field `resolver.timeout`) for a
 * timeout that is not a positive duration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: ResolverOptions): Effect.Effect<ResolverService, RinglineConfigError> =>
  Effect.suspend(() => {
    let timeoutMs: number | undefined
    if (options?.timeout !== undefined) {
      const d = Duration.decodeUnknown(options.timeout)
      const ms = Option.isSome(d) ? Duration.toMillis(d.value) : Number.NaN
      if (!(ms > 0)) {
        return Effect.fail(
          new RinglineConfigError({ field: "resolver.timeout", detail: `must be a positive duration, got ${String(options.timeout)}` })
        )
      }
      timeoutMs = Number.isFinite(ms) ? ms : undefined
    }
    return Effect.succeed({ resolve: resolveWith(options?.lookup ?? systemLookup, timeoutMs) })
  })

/**
 * The resolver as a Layer. Providing it also makes `Tcp.connect("host:port")` resolve through it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Resolver } from "@ringline/core"
 *
 * const program = Effect.gen(function*() {
 *   const addresses = yield* Resolver.resolve("localhost")
 *   console.log(addresses) // [ { address: "127.0.0.1", family: 4 }, ... ]
 * })
 * Effect.runPromise(program.pipe(Effect.provide(Resolver.layer({ timeout: "2 seconds" }))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: ResolverOptions): Layer.Layer<Resolver, RinglineConfigError> => Layer.effect(Resolver, make(options))

/**
 * Every address of `host`, through the {@link Resolver} service.
 *
 * @since 0.1.0
 * @category accessors
 */
export const resolve = (host: string): Effect.Effect<Arr.NonEmptyReadonlyArray<ResolvedAddress>, ResolveError, Resolver> =>
  Effect.flatMap(Resolver, (r) => r.resolve(host))

/**
 * Every address of `host`, through the {@link Resolver} service if the context has one, the
 * {@link system} resolver otherwise. This is what `Tcp.connect` uses.
 *
 * @since 0.1.0
 * @category accessors
 */
export const resolveCurrent = (host: string): Effect.Effect<Arr.NonEmptyReadonlyArray<ResolvedAddress>, ResolveError> =>
  Effect.flatMap(Effect.serviceOption(Resolver), (r) => (Option.isSome(r) ? r.value : system).resolve(host))

/**
 * A resolved address with a port, as ringline's `Address.TcpAddress`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toTcpAddress = (resolved: ResolvedAddress, port: number): Addr.TcpAddress => Addr.tcp(resolved.address, port, resolved.family)

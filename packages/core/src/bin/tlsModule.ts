/**
 * The demo's way to @ringline/tls: that package depends on this one, so the demo (single-thread
 * and worker programs alike) loads it from the workspace at run time rather than importing it.
 */
import { Effect } from "effect"

/** The `Tls` module of @ringline/tls (untyped: this package cannot name the other's types). */
export const loadTls: Effect.Effect<any> = Effect.promise(() =>
  import(new URL("../../../tls/dist/index.js", import.meta.url).href)
).pipe(Effect.map((m) => m.Tls))

/** What `--tls-cert/--tls-key/--alpn` give a TLS server: PEM text, and ALPN protocols. */
export interface DemoTlsOptions {
  readonly cert: string
  readonly key: string
  readonly alpn?: ReadonlyArray<string>
  /** Session-ticket keys shared by every worker, so that a session resumes on any of them. */
  readonly ticketKeys?: ReadonlyArray<Uint8Array>
}

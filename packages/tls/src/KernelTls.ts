/**
 * Kernel TLS detection: whether records could be handed to the kernel (KTLS) instead of being
 * encrypted in user space. Two things must hold, and the probe names every one that does not:
 * the kernel has the `tls` TCP upper-layer protocol, and the OpenSSL ringline runs on (Node's own)
 * was built with KTLS support. Until both hold, TLS connections encrypt in user space (the
 * engine in packages/native/src/tls.cc); nothing falls back silently, the probe says why.
 *
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import { readFile } from "node:fs/promises"
import { native } from "./internal/engine.js"

/**
 * The kernel-TLS path is not available: `reason` says what is missing and how to get it (several
 * reasons are joined with "; ").
 *
 * @since 0.1.0
 * @category errors
 */
export class KernelTlsUnavailable extends Data.TaggedError("KernelTlsUnavailable")<{ readonly reason: string }> {
  override get message(): string {
    return `kernel TLS is unavailable: ${this.reason}`
  }
}

const ULP_FILE = "/proc/sys/net/ipv4/tcp_available_ulp"

/** Why the kernel side is missing, or undefined. */
const kernelSide: Effect.Effect<string | undefined> = Effect.tryPromise(() => readFile(ULP_FILE, "utf8")).pipe(
  Effect.map((ulps) =>
    ulps.split(/\s+/).includes("tls")
      ? undefined
      : `the "tls" ULP is not registered (available: "${ulps.trim()}"); load it with \`modprobe tls\` (CONFIG_TLS)`
  ),
  Effect.orElseSucceed(() => `${ULP_FILE} is not readable (is /proc mounted?)`)
)

/** Why the OpenSSL side is missing, or undefined. */
const opensslSide: Effect.Effect<string | undefined> = Effect.try(() => {
  const addon = native()
  return addon.tlsOpensslKtls
    ? undefined
    : `Node's OpenSSL (${addon.tlsOpensslVersion}) is built without KTLS (OPENSSL_NO_KTLS); ` +
      "it needs a Node built against an OpenSSL configured with enable-ktls"
}).pipe(Effect.orElseSucceed(() => "the ringline addon (@ringline/native) could not be loaded"))

/**
 * Succeeds when the kernel-TLS path could be used: the kernel's `tls` ULP is registered (module
 * `tls` loaded or built in) and Node's OpenSSL was built with KTLS. Fails with every missing piece.
 *
 * @example
 * ```ts
 * const offload = yield* Effect.either(KernelTls.probe)
 * if (offload._tag === "Left") console.log(`TLS in user space: ${offload.left.reason}`)
 * ```
 *
 * @since 0.1.0
 * @category probes
 */
export const probe: Effect.Effect<void, KernelTlsUnavailable> = Effect.flatMap(
  Effect.all([kernelSide, opensslSide]),
  (reasons) => {
    const missing = reasons.filter((r): r is string => r !== undefined)
    return missing.length === 0 ? Effect.void : Effect.fail(new KernelTlsUnavailable({ reason: missing.join("; ") }))
  }
)

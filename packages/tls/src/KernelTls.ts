/**
 * Kernel TLS detection.
 *
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import { readFile } from "node:fs/promises"

/**
 * The kernel cannot offload TLS records: `reason` says what is missing and how to get it.
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

/**
 * Succeeds when the `tls` TCP upper-layer protocol is registered (module `tls` loaded or built in).
 *
 * @since 0.1.0
 * @category probes
 */
export const probe: Effect.Effect<void, KernelTlsUnavailable> = Effect.tryPromise({
  try: () => readFile(ULP_FILE, "utf8"),
  catch: () => new KernelTlsUnavailable({ reason: `${ULP_FILE} is not readable (is /proc mounted?)` })
}).pipe(
  Effect.flatMap((ulps) =>
    ulps.split(/\s+/).includes("tls")
      ? Effect.void
      : Effect.fail(
        new KernelTlsUnavailable({
          reason: `the "tls" ULP is not registered (available: "${ulps.trim()}"); load it with \`modprobe tls\` (CONFIG_TLS)`
        })
      )
  )
)

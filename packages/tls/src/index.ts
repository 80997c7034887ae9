/**
 * @ringline/tls — TLS 1.2/1.3 over ringline connections with Node's own OpenSSL (`Tls`), and the
 * kernel-TLS probe (`KernelTls`) for the offload path.
 *
 * @since 0.1.0
 */
/** @since 0.1.0 */
export * as KernelTls from "./KernelTls.js"
/** @since 0.1.0 */
export * as Tls from "./Tls.js"
/** @since 0.1.0 */
export * as TlsSocketServer from "./TlsSocketServer.js"

/**
 * @ringline/tls — TLS over ringline connections. This first module answers whether the kernel can
 * take over record encryption (kernel TLS, the `tls` upper-layer protocol), which decides between
 * the kTLS path and user-space records over the ring.
 *
 * @since 0.1.0
 */
export * as KernelTls from "./KernelTls.js"

/**
 * @ringline/storage — files on the ring. This first module probes which file opcodes the kernel
 * offers, so each storage feature can fail with a precise message where it is missing.
 *
 * @since 0.1.0
 */
export * as StorageSupport from "./StorageSupport.js"

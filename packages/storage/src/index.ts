/**
 * @ringline/storage — files on the ring: single-SQE file and path operations (`File`), and a probe
 * of which file opcodes the kernel offers, so each storage feature can fail with a precise message
 * where it is missing.
 *
 * @since 0.1.0
 */
export * as DirectFile from "./DirectFile.js"
export * as File from "./File.js"
export * as Nvme from "./Nvme.js"
export * as RinglineFileSystem from "./RinglineFileSystem.js"
export * as StorageSupport from "./StorageSupport.js"

/**
 * @ringline/storage — files on the ring: single-SQE file and path operations (`File`), O_DIRECT
 * files on registered buffers (`DirectFile`), NVMe passthrough (`Nvme`), an @effect/platform
 * `FileSystem` (`RinglineFileSystem`), and a probe of which file opcodes the kernel offers
 * (`StorageSupport`), so each feature fails with a precise message where it is missing.
 *
 * @since 0.1.0
 */
export * as DirectFile from "./DirectFile.js"
export * as File from "./File.js"
export * as Nvme from "./Nvme.js"
export * as RinglineFileSystem from "./RinglineFileSystem.js"
export * as StorageSupport from "./StorageSupport.js"

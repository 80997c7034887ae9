/**
 * NVMe passthrough over io_uring (IORING_OP_URING_CMD on an NVMe generic char device
 * `/dev/ngXnY`, kernel 5.19+): the byte encoding of `struct nvme_uring_cmd`, the 128-byte SQE
 * that carries it, decoding of NVMe completion statuses, device detection, and {@link open},
 * which submits Identify / Read / Write / Flush on a ring of its own.
 *
 * Passthrough needs IORING_SETUP_SQE128 | IORING_SETUP_CQE32, which ringline's main ring (64-byte
 * SQEs) does not use, so {@link open} sets up a small dedicated ring (`Ring.makeWide`) for
 * the lifetime of its scope, driven by the same event loop. Without a device, or on an older
 * kernel, {@link open} fails with {@link NvmeUnavailable} saying what is missing.
 *
 * @since 0.1.0
 */

export {
  CMD_BYTES,
  cmdOp,
  type Command,
  encode,
  flush,
  identifyNamespace,
  NVME_URING_CMD_ADMIN,
  NVME_URING_CMD_IO,
  Opcode,
  read,
  type RwOptions,
  SQE_CMD_OFFSET,
  sqe128,
  write
} from "./internal/nvme/command.js"
export { type Device, makeDevice, NvmeArgumentError, type NvmeError } from "./internal/nvme/device.js"
export { type NamespaceInfo, namespaceId, parseIdentifyNamespace } from "./internal/nvme/identify.js"
export {
  devices,
  kernelAtLeast,
  NvmeUnavailable,
  open,
  type OpenOptions,
  type UnavailableReason
} from "./internal/nvme/open.js"
export {
  checkResult,
  decodeStatus,
  NvmeCommandError,
  NvmeStatusError,
  type Status,
  type StatusCodeType
} from "./internal/nvme/status.js"

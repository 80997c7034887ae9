/**
 * Typed errors of ringline. Each one says which operation failed, with the errno and its name
 * where the kernel gave one, in a message that reads as a sentence.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import { format, type UdpAddress } from "./Address.js"
import { errnoName } from "./internal/errno.js"

/**
 * Why io_uring cannot be used here.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnavailableReason =
  | "KernelTooOld"
  | "Disabled"
  | "MemoryLimit"
  | "MissingOpcode"
  | "NativeAddon"
  | "NotAvailable"
  | "Other"

/**
 * io_uring is not usable on this machine or in this process. The message names the cause and
 * the fix (kernel version, `kernel.io_uring_disabled`, seccomp, memlock limit, missing opcode).
 *
 * @since 0.1.0
 * @category errors
 */
export class RinglineUnavailable extends Data.TaggedError("RinglineUnavailable")<{
  readonly reason: UnavailableReason
  readonly errno?: number
  readonly detail: string
  /** With reason `NotAvailable`: the capability this Ringline implementation cannot offer. */
  readonly capability?: string
}> {
  override get message(): string {
    return `io_uring is unavailable (${this.reason}): ${this.detail}`
  }
}

/**
 * `capability` (`Udp`, `RinglineClock`, `Process`, `Ring`, ...) needs a kernel io_uring ring,
 * and the `Ringline` service in context (its `mode`, e.g. `"test"` for `RinglineTest.layer`) has
 * none: a {@link RinglineUnavailable} with reason `NotAvailable` naming the capability.
 *
 * @since 0.1.0
 * @category constructors
 */
export const notAvailable = (capability: string, mode: string): RinglineUnavailable =>
  new RinglineUnavailable({
    reason: "NotAvailable",
    capability,
    detail: mode === "test"
      ? `${capability} is not available in the test Layer (RinglineTest's in-memory network has no io_uring ring); run this part on Ringline.layer()`
      : `${capability} needs the io_uring driver; this Ringline implementation ("${mode}") has none`
  })

/**
 * A configuration value broke its rule. `field` is the config key, e.g. `recvBuffer.ringSize`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RinglineConfigError extends Data.TaggedError("RinglineConfigError")<{
  readonly field: string
  readonly detail: string
}> {
  override get message(): string {
    return `invalid ringline config: ${this.field}: ${this.detail}`
  }
}

/**
 * A socket operation failed in the kernel (`res < 0` in its CQE) or could not be set up.
 *
 * @since 0.1.0
 * @category errors
 */
export class SocketError extends Data.TaggedError("SocketError")<{
  readonly operation: string
  readonly errno: number
  readonly code: string
  readonly address?: string
  /** The argument that was rejected before anything was submitted (`port`, `host`, `path`, ...). */
  readonly argument?: string
  /** What is wrong, in words, when the errno alone does not say it. */
  readonly detail?: string
}> {
  override get message(): string {
    const where = this.address === undefined ? "" : ` (${this.address})`
    return `${this.operation} failed: ${this.code} (errno ${this.errno})${where}${explain(this.argument, this.detail)}`
  }
}

const explain = (argument: string | undefined, detail: string | undefined): string =>
  detail === undefined ? "" : argument === undefined ? `: ${detail}` : `: ${argument} ${detail}`

/**
 * A bad argument, rejected before anything was submitted: a {@link SocketError} with `EINVAL`
 * naming the argument, e.g. `listen failed: EINVAL (errno 22): port must be an integer from 0
 * to 65535, got 70000`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalidArgument = (operation: string, argument: string, detail: string, address?: string): SocketError =>
  new SocketError({
    operation,
    errno: EINVAL,
    code: "EINVAL",
    argument,
    detail,
    ...(address === undefined ? {} : { address })
  })

const EINVAL = 22
const ESHUTDOWN = 108

/**
 * The operation was started after the `Ringline` layer (or the scope of `Ringline.make`) was
 * released: an `ESHUTDOWN` {@link SocketError}, failed at once, nothing submitted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const released = (operation: string): SocketError =>
  new SocketError({ operation, errno: ESHUTDOWN, code: "ESHUTDOWN", detail: RELEASED })

/** @internal */
export const RELEASED = "the Ringline layer was released (its scope is closed); build a new one"

/**
 * Builds a {@link SocketError} from a negative CQE result or a positive errno.
 *
 * @since 0.1.0
 * @category constructors
 */
export const socketError = (operation: string, errno: number, address?: string): SocketError =>
  new SocketError({ operation, errno: Math.abs(errno), code: errnoName(errno), ...(address === undefined ? {} : { address }) })

/**
 * How a connect failed.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectFailure = "Refused" | "Unreachable" | "Timeout" | "NotFound" | "InvalidArgument" | "Other"

/**
 * `Tcp.connect` / `Unix.connect` failed: refused, unreachable, timed out, name not found, a bad
 * argument (`InvalidArgument`, nothing was submitted; `argument` names it), or another errno.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly reason: ConnectFailure
  readonly address: string
  readonly errno: number
  readonly code: string
  /** The rejected argument (`port`, `host`, `path`, `target`) when `reason` is `InvalidArgument`. */
  readonly argument?: string
  /** What is wrong, in words, when the errno alone does not say it. */
  readonly detail?: string
}> {
  override get message(): string {
    return this.reason === "Timeout"
      ? `connect to ${this.address} timed out`
      : `connect to ${this.address} failed (${this.reason}): ${this.code} (errno ${this.errno})${
        explain(this.argument, this.detail)
      }`
  }
}

/**
 * A connect argument rejected before anything was submitted (reason `InvalidArgument`, `EINVAL`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalidConnect = (address: string, argument: string, detail: string): ConnectError =>
  new ConnectError({ reason: "InvalidArgument", address, errno: EINVAL, code: "EINVAL", argument, detail })

/**
 * The peer ended the stream before `read`'s parser produced a value. `leftover` holds the bytes
 * that were buffered but not consumed (empty when the stream ended cleanly between messages).
 *
 * @since 0.1.0
 * @category errors
 */
export class EndOfStream extends Data.TaggedError("EndOfStream")<{
  readonly leftover: Uint8Array
}> {
  override get message(): string {
    return this.leftover.length === 0
      ? "end of stream"
      : `end of stream with ${this.leftover.length} unconsumed bytes`
  }
}

/**
 * An operation was attempted on a UDP socket that is closing or closed (its scope closed).
 *
 * @since 0.1.0
 * @category errors
 */
export class SocketClosed extends Data.TaggedError("SocketClosed")<{
  readonly operation: string
}> {
  override get message(): string {
    return `${this.operation} on a closed UDP socket`
  }
}

/**
 * An operation was attempted on a connection that is closing or closed, or whose write side
 * was shut down.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly operation: string
}> {
  override get message(): string {
    return `${this.operation} on a closed connection`
  }
}

/**
 * Starting, waiting for, signalling or talking to a child process failed. `errno`/`code` come from
 * the kernel: `ENOENT` for a program that does not exist (or a missing `cwd`, then `syscall` is
 * `chdir`), `EACCES` for one that is not executable, `EPIPE` when writing to a child that closed
 * its stdin, `EBUSY` when a stream is read by two fibers at once.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProcessError extends Data.TaggedError("ProcessError")<{
  /** `spawn`, `wait`, `kill`, `read stdout`, `read stderr` or `write stdin`. */
  readonly operation: string
  /** The program, as given. */
  readonly command: string
  readonly errno: number
  readonly code: string
  /** The failing system call when known (`execve`, `chdir`, `clone3`, ...). */
  readonly syscall?: string
  /** The argument rejected before anything started (`command`, `args[1]`, `cwd`, `env.PATH`). */
  readonly argument?: string
  /** What is wrong, in words, when the errno alone does not say it. */
  readonly detail?: string
}> {
  override get message(): string {
    const where = this.syscall === undefined ? "" : ` in ${this.syscall}`
    return `${this.operation} ${this.command} failed: ${this.code} (errno ${this.errno})${where}${
      explain(this.argument, this.detail)
    }`
  }
}

/**
 * A UDP datagram was larger than the room for it in a receive buffer
 * (`recvBuffer.bufferSize` minus 44 bytes of header and address). The datagram is consumed:
 * `data` holds the bytes that fitted (an owned copy), `length` the datagram's real size. The
 * socket keeps receiving; the next `recvFrom` returns the next datagram.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatagramTruncated extends Data.TaggedError("DatagramTruncated")<{
  /** The sender. */
  readonly address: UdpAddress
  /** The datagram's real size in bytes. */
  readonly length: number
  /** The first `data.length` bytes of the datagram. */
  readonly data: Uint8Array
}> {
  override get message(): string {
    return `datagram of ${this.length} bytes from ${format(this.address)} truncated to ${this.data.length} bytes (raise recvBuffer.bufferSize)`
  }
}

/**
 * The TLS layer of a connection failed after its handshake: `Truncated` when the peer closed TCP
 * without a close_notify alert (the data may have been cut short by an attacker), `Protocol` for a
 * fatal alert, a bad record or a decryption failure. `detail` is OpenSSL's reason.
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsError extends Data.TaggedError("TlsError")<{
  readonly reason: "Truncated" | "Protocol"
  readonly operation: string
  readonly detail: string
}> {
  override get message(): string {
    return `TLS ${this.operation} failed (${this.reason}): ${this.detail}`
  }
}

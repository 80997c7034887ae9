/**
 * An open NVMe namespace: the {@link Device} handle, argument checks and the split of large
 * transfers into commands on the passthrough ring.
 */
import { Ring } from "@ringline/core"
import { Data, Effect } from "effect"
import { type Command, flush, Opcode, read, sqe128, write } from "./command.js"
import type { NamespaceInfo } from "./identify.js"
import { checkResult, NvmeCommandError, type NvmeStatusError } from "./status.js"

/**
 * An argument of a device operation is out of range; `field` names it and `rule` states the rule.
 *
 * @since 0.1.0
 * @category errors
 */
export class NvmeArgumentError extends Data.TaggedError("NvmeArgumentError")<{
  readonly operation: "open" | "read" | "write"
  readonly field: string
  readonly value: unknown
  readonly rule: string
}> {
  override get message(): string {
    return `invalid ${this.field} for NVMe ${this.operation}: ${String(this.value)} (${this.rule})`
  }
}

/**
 * What a device operation can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type NvmeError = NvmeStatusError | NvmeCommandError | NvmeArgumentError

/**
 * An open NVMe namespace. Operations go through the passthrough ring of the scope that opened
 * it; blocks are `blockSize` bytes, logical block addresses run from 0 to `blocks - 1`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Device {
  readonly path: string
  readonly nsid: number
  readonly blockSize: number
  readonly blocks: number
  /** Opened O_RDONLY (O_RDWR was refused): writes fail with EBADF. */
  readonly readOnly: boolean
  /** Largest transfer of one command (the queue's max_hw_sectors_kb, else 128 KiB). */
  readonly maxTransferBytes: number
  /** ring setup mode of the passthrough ring ("defer-taskrun", "coop-taskrun" or "plain"). */
  readonly ringMode: string
  /** The namespace's Identify data as read at open. */
  readonly namespace: NamespaceInfo
  /** Reads `blockCount` (1..65536) blocks starting at `lba`. */
  read(lba: number | bigint, blockCount: number): Effect.Effect<Uint8Array, NvmeError>
  /** Writes `data` (a non-empty multiple of blockSize, at most 65536 blocks) starting at `lba`. */
  write(lba: number | bigint, data: Uint8Array): Effect.Effect<void, NvmeError>
  /** NVM Flush: makes completed writes durable. */
  readonly flush: Effect.Effect<void, NvmeError>
}

const EBADF = 9
const PAGE = 4096
const MAX_BLOCKS = 65536

/** A page-aligned view of `bytes` bytes (device DMA is then never bounced); `raw` must stay alive. */
export const alignedBuffer = (bytes: number) => {
  const raw = new Uint8Array(bytes + PAGE)
  const base = Ring.addressOf(raw)
  const pad = (PAGE - (base % PAGE)) % PAGE
  return { raw, view: raw.subarray(pad, pad + bytes), address: base + pad }
}

/** Submits one passthrough command and checks its CQE result. */
export const execute = (
  ring: Ring.WideRing,
  fd: number,
  cmd: Command,
  hold: Ring.Hold
): Effect.Effect<Ring.Completion, NvmeStatusError | NvmeCommandError> =>
  ring.submit(sqe128(cmd, { fd }), hold).pipe(
    // The ring's scope is over: the device is closed, as a read(2) on a closed fd would say.
    Effect.catchTag("WideRingClosed", () => Effect.fail(new NvmeCommandError({ opcode: cmd.opcode, errno: EBADF }))),
    Effect.tap((c) => checkResult(cmd.opcode, c.res))
  )

/**
 * Builds the {@link Device} handle over an fd already open on a namespace whose Identify data is
 * known, submitting through `ring`. {@link open} uses it after detection and Identify; exported
 * for tests (which drive it over /dev/null, whose URING_CMD handler completes every command with 0).
 *
 * @since 0.1.0
 * @category internal
 */
export const makeDevice = (options: {
  readonly ring: Ring.WideRing
  readonly fd: number
  readonly path: string
  readonly nsid: number
  readonly readOnly: boolean
  readonly namespace: NamespaceInfo
  readonly maxTransferBytes: number
}): Device => {
  const { fd, namespace, nsid, readOnly, ring } = options
  const devicePath = options.path
  const { blockSize, blocks } = namespace
  const maxTransferBytes = Math.max(blockSize, Math.min(options.maxTransferBytes, MAX_BLOCKS * blockSize))
  const chunkBlocks = Math.max(1, Math.floor(maxTransferBytes / blockSize))

  const checkRange = (operation: "read" | "write", lba: number | bigint, count: number, countField: string) => {
    if (typeof lba === "number" ? !Number.isSafeInteger(lba) || lba < 0 : typeof lba !== "bigint" || lba < 0n) {
      return Effect.fail(new NvmeArgumentError({ operation, field: "lba", value: lba, rule: "a non-negative integer" }))
    }
    if (!Number.isInteger(count) || count < 1 || count > MAX_BLOCKS) {
      return Effect.fail(
        new NvmeArgumentError({ operation, field: countField, value: count, rule: `1..${MAX_BLOCKS} blocks of ${blockSize} bytes` })
      )
    }
    const start = BigInt(lba)
    if (start + BigInt(count) > BigInt(blocks)) {
      return Effect.fail(
        new NvmeArgumentError({ operation, field: "lba", value: lba, rule: `lba + ${count} blocks must not exceed the namespace's ${blocks} blocks` })
      )
    }
    return Effect.succeed(start)
  }

  // Splits [start, start + count) into commands of at most chunkBlocks blocks.
  const transfer = (op: typeof read, start: bigint, count: number, buf: ReturnType<typeof alignedBuffer>) => {
    const parts: Array<number> = []
    for (let first = 0; first < count; first += chunkBlocks) parts.push(first)
    return Effect.forEach(
      parts,
      (first) => {
        const n = Math.min(chunkBlocks, count - first)
        return execute(
          ring,
          fd,
          op({ nsid, slba: start + BigInt(first), blocks: n, addr: buf.address + first * blockSize, dataLen: n * blockSize }),
          buf.raw
        )
      },
      { concurrency: 4, discard: true }
    )
  }

  const device: Device = {
    path: devicePath,
    nsid,
    blockSize,
    blocks,
    readOnly,
    maxTransferBytes,
    ringMode: ring.mode,
    namespace,
    read: (lba, blockCount) =>
      Effect.suspend(() =>
        Effect.flatMap(checkRange("read", lba, blockCount, "blockCount"), (start) => {
          const buf = alignedBuffer(blockCount * blockSize)
          return transfer(read, start, blockCount, buf).pipe(Effect.as(buf.view))
        })
      ),
    write: (lba, data) =>
      Effect.suspend(() => {
        if (!(data instanceof Uint8Array) || data.byteLength === 0 || data.byteLength % blockSize !== 0) {
          return Effect.fail(
            new NvmeArgumentError({
              operation: "write",
              field: "data",
              value: data instanceof Uint8Array ? `${data.byteLength} bytes` : typeof data,
              rule: `a non-empty Uint8Array whose length is a multiple of the block size ${blockSize}`
            })
          )
        }
        // Root may pass writes through a read-only fd; refuse as write(2) would.
        if (readOnly) return Effect.fail(new NvmeCommandError({ opcode: Opcode.WRITE, errno: EBADF }))
        const count = data.byteLength / blockSize
        return Effect.flatMap(checkRange("write", lba, count, "data"), (start) => {
          const buf = alignedBuffer(data.byteLength)
          buf.view.set(data)
          return transfer(write, start, count, buf)
        })
      }),
    flush: Effect.suspend(() => execute(ring, fd, flush({ nsid }), undefined)).pipe(Effect.asVoid)
  }
  return device
}

/** Options of a native ring. All sizes are validated by @ringline/core before they reach here. */
export interface RingOptions {
  readonly sqEntries: number
  readonly cqEntries: number
  readonly bufferCount: number
  readonly bufferSize: number
  readonly files: number
  readonly sendPoolBytes: number
  readonly argBytes: number
  readonly sqpoll: boolean
  readonly sqpollIdleMs: number
}

/** Memory shared between JS and the ring (see packages/native/src/ring.h). */
export interface RingRegions {
  readonly ctl: ArrayBuffer
  readonly stage: ArrayBuffer
  readonly cqes: ArrayBuffer
  readonly recycle: ArrayBuffer
  readonly recvBuffers: ArrayBuffer
  readonly sendPool: ArrayBuffer
  readonly args: ArrayBuffer
  readonly sendPoolBase: number
  readonly argsBase: number
  readonly recvBuffersBase: number
}

export interface RingInfo {
  readonly mode: "defer-taskrun" | "coop-taskrun" | "sqpoll" | "plain"
  readonly setupFlags: number
  readonly features: number
  readonly sqEntries: number
  readonly cqEntries: number
  readonly files: number
  readonly regions: RingRegions
  /** opcodes[op] === 1 when the kernel supports that IORING_OP_*. */
  readonly opcodes: Uint8Array
}

export declare class Ring {
  constructor(options: RingOptions, onCompletions: (count: number) => void)
  /** Copies staged SQEs into the SQ and submits now (normally done once per loop turn). */
  flush(): void
  ref(): void
  unref(): void
  close(): void
  info(): RingInfo
  bufferStatus(): { head: number; tail: number; available: number }
  /** The ring closes `fd` when it is torn down (e.g. worker termination) unless disowned first. */
  own(fd: number): void
  disown(fd: number): void
}

export declare function listen(sockaddr: Uint8Array, backlog: number, reusePort: boolean, type?: number, noDelay?: boolean): number
export declare function sockName(fd: number, peer: boolean): Uint8Array
export declare function getIntOpt(fd: number, level: number, name: number): number
export declare function closeFd(fd: number): void
export declare function addressOf(view: Uint8Array): number

/**
 * The typed errors of the public `Ring` module for failed CQEs: `RingOpError` (an op's errno and
 * name) and `@effect/platform` SystemErrors mapped as `@effect/platform-node` maps them; both
 * count the failure in the ring's error statistics. `Ring.ts` documents them.
 */
import { SystemError } from "@effect/platform/Error"
import { Data } from "effect"
import { errnoName } from "../errno.js"
import { reasonOf } from "../systemError.js"
import type { RingHandle } from "./handle.js"

/** An op failed in the kernel (`res < 0` in its CQE). */
export class RingOpError extends Data.TaggedError("RingOpError")<{
  readonly operation: string
  readonly errno: number
  readonly code: string
}> {
  override get message(): string {
    return `${this.operation} failed: ${this.code} (errno ${this.errno})`
  }
}

/** A RingOpError for a negative CQE result (or a positive errno), counted in the ring's stats. */
export const opError = (ring: RingHandle | undefined, operation: string, res: number): RingOpError => {
  const code = errnoName(res)
  ring?.countError(code)
  return new RingOpError({ operation, errno: Math.abs(res), code })
}

/** A SystemError for a negative CQE result, mapped as `@effect/platform-node` maps errno codes. */
export const systemError = (
  ring: RingHandle | undefined,
  options: {
    readonly res: number
    readonly module: SystemError["module"]
    readonly method: string
    readonly syscall: string
    readonly pathOrDescriptor: string | number
  }
): SystemError => {
  const code = errnoName(options.res)
  ring?.countError(code)
  return new SystemError({
    reason: reasonOf(code),
    module: options.module,
    method: options.method,
    pathOrDescriptor: options.pathOrDescriptor,
    syscall: options.syscall,
    description: `${code}: ${options.syscall} '${options.pathOrDescriptor}' failed (errno ${Math.abs(options.res)})`
  })
}

/**
 * The timed re-arm of an accept that failed with ENFILE/EMFILE, shared by listeners and the
 * workers' acceptor: a full process or system file table may stay full for a while, and
 * re-arming at once would spin every loop turn. Delays double from 10 ms up to 1 s and start
 * over once an accept succeeds.
 */
export class AcceptBackoff {
  private delay = 0
  private timer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(private readonly run: () => void) {}

  private readonly fire = () => {
    this.timer = undefined
    this.run()
  }

  /** Runs `run` after the next delay (10 ms, 20 ms, … 1 s). */
  schedule(): void {
    clearTimeout(this.timer)
    this.delay = Math.min(this.delay === 0 ? 10 : this.delay * 2, 1000)
    this.timer = setTimeout(this.fire, this.delay)
  }

  /** Drops a scheduled run. */
  cancel(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** An accept succeeded: the next failure waits 10 ms again. */
  reset(): void {
    this.delay = 0
  }
}

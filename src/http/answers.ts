import type { ServerResponse } from 'node:http';
// From node:timers, not the global: a merchant's test suite that fakes timers (jest, vitest,
// sinon patch the global) must still get its answers.
import { setImmediate } from 'node:timers';
import type { Outcome } from '../pipeline';
import { respond } from './respond';

/**
 * The answers of one router, written together once per turn of the event loop.
 *
 * Under load, one turn's poll phase reads many sockets. Writing each answer as soon as its
 * request is done interleaves a `writev` (and the kernel's wake-up of the peer) between every
 * read; on a 2-core machine that nearly doubled the CPU each request cost (bench/README.md,
 * "Answers written once per turn"). Queued here, the answers of a turn go out back to back in
 * the check phase, right after the poll phase, so no answer waits for more than the rest of
 * the turn it was made in. A request alone is answered in the same turn, as before.
 */
export class AnswerQueue {
  /** res, outcome, res, outcome, …: one flat array, no object per answer. */
  private queued: (ServerResponse | Outcome)[] = [];
  private waiters: (() => void)[] = [];

  /** @param onWriteError - told when writing an answer threw (a bug); the socket is destroyed so the client does not hang */
  constructor(private readonly onWriteError: (error: unknown) => void) {}

  /** Queues an answer; the first of a turn schedules the flush. */
  push(res: ServerResponse, outcome: Outcome): void {
    if (this.queued.push(res, outcome) === 2) setImmediate(this.flush);
  }

  /** Settles once every answer queued so far has been written (at once if none is queued). */
  drained(): Promise<void> {
    return this.queued.length === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  private readonly flush = (): void => {
    const queued = this.queued;
    const waiters = this.waiters;
    this.queued = [];
    this.waiters = [];
    for (let i = 0; i < queued.length; i += 2) {
      const res = queued[i] as ServerResponse;
      try {
        respond(res, queued[i + 1] as Outcome);
      } catch (error) {
        // One answer that cannot be written must not keep the others (or the process) waiting.
        res.destroy();
        this.onWriteError(error);
      }
    }
    for (const wake of waiters) wake();
  };
}

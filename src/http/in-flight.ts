/**
 * The requests a router is handling, as a count: `close()` waits until none are left. A count,
 * not a set of promises, because it costs each request no extra promise and no hashing.
 */
export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  /** One more request. */
  start(): void {
    this.count++;
  }

  /** One request done (bound, so it can be passed as a callback). */
  readonly end = (): void => {
    if (--this.count > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  };

  /** Settles once no request is in flight (at once if none is). */
  idle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

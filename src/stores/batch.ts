/**
 * Group commit for the durable stores. Under load, many requests claim (and later complete) keys
 * at once, and each commit is what costs a database most: a WAL write (and, on PostgreSQL, a
 * round trip and a backend's turn on the CPU). A Batcher gathers the items added during one turn
 * of the event loop, and while `maxInFlight` batches are running it keeps gathering, so the
 * next batch takes everything that arrived meanwhile. One request alone still goes out at once
 * (on the same turn), as a batch of one.
 */

/** Options for a {@link Batcher}. */
export interface BatchOptions {
  /** The most items one batch takes. */
  maxSize: number;
  /** How many batches may run at once (connections a pool lends the store for them). */
  maxInFlight: number;
}

/**
 * A time limit for every item of a {@link Batcher}, counted from `add()`: the item fails with
 * `error()` once it is up, whether it is still queued behind busy batches or in a batch whose call
 * has not come back. One timer per batch (and one for the queue) keeps this, instead of a timer
 * and a promise per item, which under load cost 1–2 µs of the app's CPU per event.
 */
export interface BatchDeadline<I, O> {
  /** Milliseconds from `add()`; `0` (or not finite) sets no limit. */
  timeoutMs: number;
  /** The error an item fails with when its time is up. */
  error: (item: I) => Error;
  /** A result that arrives for an item after it failed on time (a late claim to give back). */
  onLate?: (item: I, result: O) => void;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
  /** `performance.now()` by which the item must settle (Infinity without a deadline). */
  deadline: number;
  settled: boolean;
}

/**
 * A timer is due up to a millisecond early (its start is the event loop's cached time): an item
 * this close to its deadline counts as due, rather than being re-armed for a sub-millisecond wait.
 */
const TIMER_SLACK_MS = 1;

/**
 * Queues items and hands them to `run` in batches. `run` gets the items in the order they were
 * added and returns one result per item, in the same order; if it throws, every item of the
 * batch fails with that error (a batch is one statement or transaction: all of it happened or
 * none did). With a {@link BatchDeadline}, an item fails once its time is up, and a batch whose
 * items have all failed so frees its slot, so a call that never settles cannot hold it for good.
 */
export class Batcher<I, O> {
  private queue: Waiting<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private queueTimer: NodeJS.Timeout | undefined;
  private readonly flush = (): void => this.drain();
  private readonly timeoutMs: number;

  constructor(
    private readonly run: (items: I[]) => Promise<O[]> | O[],
    private readonly options: BatchOptions,
    private readonly deadline?: BatchDeadline<I, O>,
  ) {
    const ms = deadline?.timeoutMs ?? 0;
    this.timeoutMs = ms > 0 && Number.isFinite(ms) ? ms : 0;
  }

  /** Resolves with the item's result once its batch has run; rejects once its time is up. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const deadline = this.timeoutMs > 0 ? performance.now() + this.timeoutMs : Infinity;
      this.queue.push({ item, resolve, reject, deadline, settled: false });
      this.schedule();
      if (this.timeoutMs > 0 && this.queueTimer === undefined) this.armQueueTimer();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the check phase comes after the poll phase has read every
    // socket that was ready, so one batch takes all the requests of that turn.
    setImmediate(this.flush);
  }

  private drain(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const batch = this.queue.length <= this.options.maxSize ? this.queue : this.queue.slice(0, this.options.maxSize);
      this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
      this.inFlight++;
      void this.start(batch);
    }
  }

  /**
   * Fails the queued items whose time is up: they waited behind batches that did not come back.
   * Items are queued in `add()` order, which is deadline order, so they are a prefix.
   */
  private armQueueTimer(): void {
    const head = this.queue[0];
    if (head === undefined) return;
    this.queueTimer = setTimeout(
      () => {
        this.queueTimer = undefined;
        const now = performance.now();
        let expired = 0;
        while (expired < this.queue.length && this.queue[expired]!.deadline - now <= TIMER_SLACK_MS) expired++;
        if (expired > 0) {
          const failed = this.queue.slice(0, expired);
          this.queue = this.queue.slice(expired);
          for (const waiting of failed) this.reject(waiting, this.deadline!.error(waiting.item));
        }
        this.armQueueTimer();
      },
      Math.max(1, Math.ceil(head.deadline - performance.now())),
    );
    // The batches in flight hold the process open while they run; this timer alone must not.
    this.queueTimer.unref();
  }

  /** Hands a late result on; a hook that throws must not fail the batch's other items, which succeeded. */
  private late(onLate: (item: I, result: O) => void, item: I, result: O): void {
    try {
      onLate(item, result);
    } catch {
      // Nothing to fail: the item already failed on time, and the rest of the batch is fine.
    }
  }

  private resolve(waiting: Waiting<I, O>, value: O): void {
    if (waiting.settled) return;
    waiting.settled = true;
    waiting.resolve(value);
  }

  private reject(waiting: Waiting<I, O>, error: unknown): void {
    if (waiting.settled) return;
    waiting.settled = true;
    waiting.reject(error);
  }

  private async start(batch: Waiting<I, O>[]): Promise<void> {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.inFlight--;
      this.schedule();
    };
    // The batch's items are in deadline order: fail them as their time comes, and free the slot
    // once none is left waiting, even if the call never settles.
    let timer: NodeJS.Timeout | undefined;
    let next = 0;
    const expire = (): void => {
      const now = performance.now();
      while (next < batch.length && batch[next]!.deadline - now <= TIMER_SLACK_MS) {
        this.reject(batch[next]!, this.deadline!.error(batch[next]!.item));
        next++;
      }
      if (next === batch.length) release();
      else timer = setTimeout(expire, Math.max(1, Math.ceil(batch[next]!.deadline - now)));
    };
    if (this.timeoutMs > 0) timer = setTimeout(expire, Math.max(1, Math.ceil(batch[0]!.deadline - performance.now())));
    try {
      const results = await this.run(batch.map((waiting) => waiting.item));
      if (results.length !== batch.length) throw new Error(`Batcher: ${results.length} results for ${batch.length} items`);
      const onLate = this.deadline?.onLate;
      for (let i = 0; i < batch.length; i++) {
        const waiting = batch[i]!;
        if (!waiting.settled) this.resolve(waiting, results[i]!);
        else if (onLate !== undefined) this.late(onLate, waiting.item, results[i]!);
      }
    } catch (error) {
      for (const waiting of batch) this.reject(waiting, error);
    } finally {
      clearTimeout(timer);
      release();
    }
  }
}

/** Reads a store's `batch` option: `null` for `false` (no batching), else the sizes; numbers must be positive integers. */
export function batchOptions(
  store: string,
  value: false | Partial<BatchOptions> | undefined,
  defaults: BatchOptions,
): BatchOptions | null {
  if (value === undefined) return defaults;
  if (value === false) return null;
  if (value === null || typeof value !== 'object') throw new TypeError(`${store}: batch must be false or { maxSize?, maxInFlight? }`);
  const positive = (name: keyof BatchOptions): number => {
    const n = value[name];
    if (n === undefined) return defaults[name];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
      throw new TypeError(`${store}: batch.${name} must be an integer of at least 1, got ${String(n)}`);
    }
    return n;
  };
  return { maxSize: positive('maxSize'), maxInFlight: positive('maxInFlight') };
}

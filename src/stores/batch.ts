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

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Queues items and hands them to `run` in batches. `run` gets the items in the order they were
 * added and returns one result per item, in the same order; if it throws, every item of the
 * batch fails with that error (a batch is one statement or transaction: all of it happened or
 * none did).
 */
export class Batcher<I, O> {
  private queue: Waiting<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly flush = (): void => this.drain();

  constructor(
    private readonly run: (items: I[]) => Promise<O[]> | O[],
    private readonly options: BatchOptions,
  ) {}

  /** Resolves with the item's result once its batch has run. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
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

  private async start(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const results = await this.run(batch.map((waiting) => waiting.item));
      if (results.length !== batch.length) throw new Error(`Batcher: ${results.length} results for ${batch.length} items`);
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    } finally {
      this.inFlight--;
      this.schedule();
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

import { Batcher, batchOptions } from '../../src/stores/batch';

/** A batch runner that records each batch and answers when the test says so. */
function controlledRunner() {
  const batches: { items: number[]; finish: (results?: string[]) => void; fail: (error: Error) => void }[] = [];
  const run = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      batches.push({ items, finish: (results) => resolve(results ?? items.map((i) => `r${i}`)), fail: reject });
    });
  return { run, batches };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('sends the items added in one turn as one batch, in order, and gives each its own result', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 });
    const results = [1, 2, 3].map((i) => batcher.add(i));
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1, 2, 3]]);
    batches[0]!.finish();
    expect(await Promise.all(results)).toEqual(['r1', 'r2', 'r3']);
  });

  it('sends an item alone on the turn it was added when nothing is running', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 });
    const result = batcher.add(7);
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[7]]);
    batches[0]!.finish();
    expect(await result).toBe('r7');
  });

  it('gathers what arrives while maxInFlight batches run, and sends it when one finishes', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 2 });
    const first = batcher.add(1);
    await turn();
    const second = batcher.add(2);
    await turn();
    const waiting = [3, 4, 5].map((i) => batcher.add(i));
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1], [2]]);
    batches[1]!.finish();
    await second;
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1], [2], [3, 4, 5]]);
    batches[0]!.finish();
    batches[2]!.finish();
    expect(await Promise.all([first, ...waiting])).toEqual(['r1', 'r3', 'r4', 'r5']);
  });

  it('splits a queue longer than maxSize into batches of at most maxSize, never more than maxInFlight at once', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 2, maxInFlight: 2 });
    const results = [1, 2, 3, 4, 5].map((i) => batcher.add(i));
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1, 2], [3, 4]]);
    batches[0]!.finish();
    await results[0];
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1, 2], [3, 4], [5]]);
    batches[1]!.finish();
    batches[2]!.finish();
    expect(await Promise.all(results)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('fails every item of a failed batch with its error, and only those', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 2, maxInFlight: 2 });
    const results = [1, 2, 3].map((i) => batcher.add(i));
    await turn();
    batches[0]!.fail(new Error('statement timeout'));
    batches[1]!.finish();
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual(['statement timeout', 'statement timeout', 'r3']);
    // The batcher goes on after a failure.
    const later = batcher.add(4);
    await turn();
    batches[2]!.finish();
    expect(await later).toBe('r4');
  });

  it('fails the batch when the runner returns a result count that does not match', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 });
    const results = [1, 2].map((i) => batcher.add(i));
    await turn();
    batches[0]!.finish(['only one']);
    for (const result of results) await expect(result).rejects.toThrow('Batcher: 1 results for 2 items');
  });

  it('takes a synchronous runner (SQLite runs its transaction in place)', async () => {
    const seen: number[][] = [];
    const batcher = new Batcher((items: number[]) => (seen.push(items), items.map((i) => i * 10)), { maxSize: 10, maxInFlight: 1 });
    expect(await Promise.all([1, 2].map((i) => batcher.add(i)))).toEqual([10, 20]);
    expect(seen).toEqual([[1, 2]]);
  });
});

describe('Batcher deadline', () => {
  const deadline = (timeoutMs: number, late: [number, string][] = []) => ({
    timeoutMs,
    error: (item: number) => new Error(`item ${item} timed out`),
    onLate: (item: number, result: string) => void late.push([item, result]),
  });
  const reason = (s: PromiseSettledResult<string>) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message);

  it('fails the items of a batch whose call has not come back by their deadline, and frees its slot', async () => {
    const { run, batches } = controlledRunner();
    const late: [number, string][] = [];
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(40, late));
    const stuck = [1, 2].map((i) => batcher.add(i));
    await turn();
    const started = performance.now();
    const settled = await Promise.allSettled(stuck);
    expect(settled.map(reason)).toEqual(['item 1 timed out', 'item 2 timed out']);
    expect(performance.now() - started).toBeLessThan(1_000);
    // The slot is free: the next item goes out although the first call never settled.
    const next = batcher.add(3);
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1, 2], [3]]);
    batches[1]!.finish();
    expect(await next).toBe('r3');
    // The stuck call comes back at last: its results go to onLate, not to the failed promises.
    batches[0]!.finish();
    await turn();
    expect(late).toEqual([
      [1, 'r1'],
      [2, 'r2'],
    ]);
  });

  it('fails items still queued behind a batch that does not come back, without ever sending them', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 1, maxInFlight: 1 }, deadline(40));
    const results = [1, 2, 3].map((i) => batcher.add(i));
    const started = performance.now();
    expect((await Promise.allSettled(results)).map(reason)).toEqual(['item 1 timed out', 'item 2 timed out', 'item 3 timed out']);
    expect(performance.now() - started).toBeLessThan(1_000);
    await turn();
    // Items 2 and 3 ran out of time in the queue: they were never sent, so nothing of them can land late.
    expect(batches.map((b) => b.items)).toEqual([[1]]);
  });

  it('sends a queued item once the stuck batch ahead of it has timed out, and fails it at its own deadline', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(60));
    const first = batcher.add(1);
    await turn();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const queued = batcher.add(2);
    const order: string[] = [];
    void first.catch(() => order.push('first'));
    void queued.catch(() => order.push('queued'));
    await expect(first).rejects.toThrow('item 1 timed out');
    await turn();
    expect(order).toEqual(['first']);
    expect(batches.map((b) => b.items)).toEqual([[1], [2]]);
    await expect(queued).rejects.toThrow('item 2 timed out');
    expect(order).toEqual(['first', 'queued']);
  });

  it('fails the items of one batch each at its own deadline, and frees the slot after the last', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(80));
    const blocker = batcher.add(0);
    await turn();
    const a = batcher.add(1);
    await new Promise((resolve) => setTimeout(resolve, 40));
    const b = batcher.add(2);
    // The blocker's call comes back: items 1 and 2 go out together, 40 ms apart in age.
    batches[0]!.finish();
    await blocker;
    await turn();
    expect(batches.map((x) => x.items)).toEqual([[0], [1, 2]]);
    const settledAt: Record<string, number> = {};
    const t0 = performance.now();
    await Promise.allSettled([a.catch(() => (settledAt.a = performance.now() - t0)), b.catch(() => (settledAt.b = performance.now() - t0))]);
    expect(settledAt.b! - settledAt.a!).toBeGreaterThanOrEqual(25);
    await expect(a).rejects.toThrow('item 1 timed out');
    await expect(b).rejects.toThrow('item 2 timed out');
  });

  it('resolves every item of a batch that comes back in time, and sets no limit with timeoutMs 0', async () => {
    const { run, batches } = controlledRunner();
    const late: [number, string][] = [];
    const timed = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(5_000, late));
    const results = [1, 2].map((i) => timed.add(i));
    await turn();
    batches[0]!.finish();
    expect(await Promise.all(results)).toEqual(['r1', 'r2']);
    const unlimited = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(0, late));
    const slow = unlimited.add(3);
    await new Promise((resolve) => setTimeout(resolve, 50));
    batches[1]!.finish();
    expect(await slow).toBe('r3');
    expect(late).toEqual([]);
  });

  it('resolves the items still waiting in a batch even when onLate throws for one that timed out', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, {
      ...deadline(200),
      onLate: () => {
        throw new Error('hook failed');
      },
    });
    const blocker = batcher.add(0);
    await turn();
    const early = batcher.add(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = batcher.add(2);
    batches[0]!.finish();
    expect(await blocker).toBe('r0');
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[0], [1, 2]]);
    // Item 1 runs out of time while item 2 still has about 100 ms.
    await expect(early).rejects.toThrow('item 1 timed out');
    batches[1]!.finish();
    // onLate throws for item 1; item 2's result still reaches it.
    expect(await late).toBe('r2');
  });

  it('fails a batch that errors with its error, not a timeout', async () => {
    const { run, batches } = controlledRunner();
    const batcher = new Batcher(run, { maxSize: 10, maxInFlight: 1 }, deadline(5_000));
    const results = [1, 2].map((i) => batcher.add(i));
    await turn();
    batches[0]!.fail(new Error('connection reset'));
    expect((await Promise.allSettled(results)).map(reason)).toEqual(['connection reset', 'connection reset']);
  });
});

describe('batchOptions', () => {
  const defaults = { maxSize: 100, maxInFlight: 4 };
  it('gives the defaults, null for false, and fills what is left out', () => {
    expect(batchOptions('S', undefined, defaults)).toEqual(defaults);
    expect(batchOptions('S', false, defaults)).toBeNull();
    expect(batchOptions('S', { maxSize: 5 }, defaults)).toEqual({ maxSize: 5, maxInFlight: 4 });
  });

  it('refuses what is not false or positive integers', () => {
    expect(() => batchOptions('S', 'yes' as never, defaults)).toThrow('S: batch must be false or { maxSize?, maxInFlight? }');
    expect(() => batchOptions('S', { maxInFlight: 0 }, defaults)).toThrow('S: batch.maxInFlight must be an integer of at least 1, got 0');
    expect(() => batchOptions('S', { maxSize: Number.NaN }, defaults)).toThrow('S: batch.maxSize must be an integer of at least 1, got NaN');
  });
});

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

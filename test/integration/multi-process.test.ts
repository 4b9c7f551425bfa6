/**
 * Two app processes share one store. 200 distinct events, each delivered 5 times, spread over
 * both processes concurrently, must run the handler exactly 200 times: counted in the database by
 * the handler itself, not in any process's memory.
 */
import { postgresBackend, redisBackend, sqliteBackend, type Backend } from './backends';
import { deliver, eventBody, eventKeyOf, pool, shuffled, startApp, type AppProcess, type Delivery } from './app-process';

const EVENTS = 200;
const COPIES = 5;

describe.each<[string, () => Backend]>([
  ['redis', redisBackend],
  ['postgres', postgresBackend],
  ['sqlite', sqliteBackend],
])('two app processes sharing one %s store', (tag, makeBackend) => {
  const backend = makeBackend();
  let apps: AppProcess[] = [];

  beforeAll(async () => {
    await backend.setup();
    apps = await Promise.all([startApp(backend.env(0)), startApp(backend.env(1))]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    await backend.teardown();
  });

  it(`runs the handler exactly ${EVENTS} times for ${EVENTS} events sent ${COPIES} times each, with no 5xx`, async () => {
    // The copies of each event sit close together (shuffled within blocks of 40) so that with 32
    // requests in flight they race each other across the two processes.
    const order = Array.from({ length: EVENTS * COPIES }, (_, n) => ({ event: Math.floor(n / COPIES), copy: n % COPIES }));
    const blocks = Array.from({ length: order.length / 40 }, (_, b) => shuffled(order.slice(b * 40, b * 40 + 40), b + 1));
    const deliveries = blocks.flat().map(({ event, copy }) => () => deliver(apps[(event + copy) % 2]!.url, eventBody(event, tag)));
    const results: Delivery[] = await pool(deliveries, 32);

    const statuses = new Map<number, number>();
    for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    // 200 for the first copy and completed duplicates; 409 + Retry-After while a copy is being handled.
    expect([...statuses.keys()].filter((s) => s !== 200 && s !== 409)).toEqual([]);
    expect(results.filter((r) => r.status === 409).every((r) => r.retryAfter !== null)).toBe(true);
    expect(statuses.get(200)! >= EVENTS).toBe(true);

    const started = await backend.runs('start');
    const done = await backend.runs('done');
    expect(started).toHaveLength(EVENTS);
    expect(done).toHaveLength(EVENTS);
    const expectedKeys = Array.from({ length: EVENTS }, (_, i) => eventKeyOf(i)).sort();
    expect([...new Set(done.map((r) => r.key))].sort()).toEqual(expectedKeys);
    // Both processes did part of the work.
    expect(new Set(done.map((r) => r.pid)).size).toBe(2);
    // Nothing the router logged: no store operation failed (a failed completion still answers 200).
    expect(apps.map((app) => app.stderr())).toEqual(['', '']);

    // Every event is now done in the shared store: each redelivery is a duplicate, on either process.
    const again = await pool(
      Array.from({ length: EVENTS }, (_, i) => () => deliver(apps[i % 2]!.url, eventBody(i, tag))),
      16,
    );
    expect(again.map((r) => r.status).filter((status) => status !== 200)).toEqual([]);
    expect(await backend.runs('start')).toHaveLength(EVENTS);
    const store = backend.store();
    expect(await store.claim(eventKeyOf(7), { leaseMs: 1_000 })).toEqual({ status: 'done' });
    expect(apps.map((app) => app.stderr())).toEqual(['', '']);
  }, 120_000);
});

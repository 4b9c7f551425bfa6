/**
 * Two deferred-mode app processes share one store. 500 distinct events, each delivered at least
 * once (a fifth of them twice, to the other process), are run by a handler that fails 30% of the
 * time at random, before recording its effect (and always for every 100th event, so some are
 * sure to die). In the end every event is handled exactly once (counted in the database by the
 * handler) or dead after maxAttempts; handled + dead = 500.
 */
import { postgresBackend, redisBackend, sqliteBackend, type Backend } from './backends';
import { deliver, eventBody, eventKeyOf, pool, shuffled, sleep, startApp, type AppProcess } from './app-process';

const EVENTS = 500;
const MAX_ATTEMPTS = 5;
const DEFERRED = { MODE: 'deferred', FAIL_RATE: '0.3', MAX_ATTEMPTS: String(MAX_ATTEMPTS), BACKOFF_MS: '10', POLL_MS: '30', CONCURRENCY: '8', DELAY_MS: '5', POISON_EVERY: '100' };
const POISONED = Array.from({ length: EVENTS / 100 }, (_, n) => eventKeyOf(n * 100 + 99));

function countBy(rows: { key: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { key } of rows) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

describe.each<[string, () => Backend]>([
  ['postgres', postgresBackend],
  ['redis', redisBackend],
  ['sqlite', sqliteBackend],
])('two deferred-mode processes sharing one %s store, a handler failing 30%% of the time', (tag, makeBackend) => {
  const backend = makeBackend();
  let apps: AppProcess[] = [];

  beforeAll(async () => {
    await backend.setup();
    apps = await Promise.all([startApp({ ...backend.env(0), ...DEFERRED }), startApp({ ...backend.env(1), ...DEFERRED })]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    await backend.teardown();
  });

  it(`handles each of ${EVENTS} events exactly once or leaves it dead after ${MAX_ATTEMPTS} attempts; nothing lost`, async () => {
    const sends = Array.from({ length: EVENTS }, (_, i) => ({ event: i, app: i % 2 }));
    for (let i = 0; i < EVENTS; i += 5) sends.push({ event: i, app: (i + 1) % 2 });
    const results = await pool(
      shuffled(sends, 7).map(({ event, app }) => () => deliver(apps[app]!.url, eventBody(event, `deferred-${tag}`))),
      32,
    );
    // Every delivery is acknowledged once the event is in the inbox (or already was): no 5xx, no 409.
    expect([...new Set(results.map((r) => r.status))]).toEqual([200]);

    const store = backend.store();
    const deadline = Date.now() + 90_000;
    while ((await store.list('pending', { limit: 1 })).length > 0 && Date.now() < deadline) await sleep(100);
    expect(await store.list('pending', { limit: 1000 })).toEqual([]);

    const done = await backend.runs('done');
    const failed = await backend.runs('fail');
    const started = await backend.runs('start');
    const dead = await store.list('dead', { limit: 1000 });
    const doneCounts = countBy(done);
    const failCounts = countBy(failed);
    const deadKeys = new Set(dead.map((r) => r.key));

    // Exactly once: no key handled twice; handled + dead = every event, and no event is both.
    expect([...doneCounts.values()].every((n) => n === 1)).toBe(true);
    expect(doneCounts.size + deadKeys.size).toBe(EVENTS);
    expect([...deadKeys].filter((key) => doneCounts.has(key))).toEqual([]);
    expect([...doneCounts.keys(), ...deadKeys].sort()).toEqual(Array.from({ length: EVENTS }, (_, i) => eventKeyOf(i)).sort());
    // Every run ended in the effect or a recorded failure; the dead ran exactly maxAttempts times.
    expect(started.length).toBe(done.length + failed.length);
    expect(dead.every((r) => r.attempts === MAX_ATTEMPTS && failCounts.get(r.key) === MAX_ATTEMPTS && /random failure/.test(r.lastError ?? ''))).toBe(true);
    expect([...doneCounts.keys()].every((key) => (failCounts.get(key) ?? 0) < MAX_ATTEMPTS)).toBe(true);
    expect(POISONED.every((key) => deadKeys.has(key))).toBe(true);
    // The failures were real (about 0.3 × runs) and both processes did part of the work.
    expect(failed.length > 100).toBe(true);
    expect(new Set(done.map((r) => r.pid)).size).toBe(2);

    // Redelivering everything now is a duplicate on either process, dead events included.
    const again = await pool(Array.from({ length: EVENTS }, (_, i) => () => deliver(apps[(i + 1) % 2]!.url, eventBody(i, `deferred-${tag}`))), 16);
    expect(again.every((r) => r.status === 200)).toBe(true);
    await sleep(300);
    expect(await backend.runs('start')).toHaveLength(started.length);
    expect(apps.map((app) => app.stderr())).toEqual(['', '']);
  }, 150_000);
});

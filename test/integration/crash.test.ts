/**
 * A handler process is SIGKILLed mid-handler. Its claim stays until the lease expires: until
 * then redeliveries get 409 + Retry-After; after it, a redelivery to the surviving process runs
 * the handler, completes, and the event ends up done exactly once.
 */
import { postgresBackend, redisBackend, sqliteBackend, type Backend } from './backends';
import { deliver, eventBody, eventKeyOf, sleep, startApp, type AppProcess } from './app-process';

const LEASE_MS = 1_500;

describe.each<[string, () => Backend]>([
  ['redis', redisBackend],
  ['postgres', postgresBackend],
  ['sqlite', sqliteBackend],
])('a %s-backed app killed mid-handler', (tag, makeBackend) => {
  const backend = makeBackend();
  let doomed: AppProcess;
  let survivor: AppProcess;

  beforeAll(async () => {
    await backend.setup();
    [doomed, survivor] = await Promise.all([
      startApp({ ...backend.env(0), HANG: '1', LEASE_MS: String(LEASE_MS) }),
      startApp({ ...backend.env(1), LEASE_MS: String(LEASE_MS) }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([doomed.kill(), survivor.kill()]);
    await backend.teardown();
  });

  it('is redelivered after the lease expires, runs once more and is marked done once', async () => {
    const body = eventBody(1, `crash-${tag}`);
    const key = eventKeyOf(1);
    const first = deliver(doomed.url, body).catch((error: unknown) => error);

    // Wait until the handler has started in the doomed process, then kill it there.
    const deadline = Date.now() + 10_000;
    while ((await backend.runs('start')).length === 0 && Date.now() < deadline) await sleep(20);
    const claimedAt = Date.now();
    await doomed.kill();
    // The connection died with the process: no answer, only a network error.
    expect(String(await first)).toMatch(/fetch failed/);
    expect(await backend.runs('start')).toEqual([{ key, pid: doomed.child.pid }]);
    expect(await backend.runs('done')).toEqual([]);

    // The dead process's lease still holds: the survivor must not run the handler yet.
    const early = await deliver(survivor.url, body);
    expect(early.status).toBe(409);
    expect(early.retryAfter).not.toBeNull();

    // Redeliver as Caibo would until the lease has expired and the survivor takes over.
    const answers: number[] = [];
    let last = early;
    while (last.status !== 200 && Date.now() - claimedAt < LEASE_MS + 5_000) {
      await sleep(150);
      last = await deliver(survivor.url, body);
      answers.push(last.status);
    }
    expect(last.status).toBe(200);
    expect(answers.slice(0, -1).every((s) => s === 409)).toBe(true);
    expect(Date.now() - claimedAt >= LEASE_MS - 200).toBe(true);

    expect(await backend.runs('start')).toEqual(
      expect.arrayContaining([
        { key, pid: doomed.child.pid },
        { key, pid: survivor.child.pid },
      ]),
    );
    expect(await backend.runs('start')).toHaveLength(2);
    expect(await backend.runs('done')).toEqual([{ key, pid: survivor.child.pid }]);

    // Done in the store: a further redelivery is a duplicate and runs nothing.
    expect(await deliver(survivor.url, body)).toMatchObject({ status: 200 });
    expect(await backend.runs('done')).toHaveLength(1);
    expect(await backend.store().claim(key, { leaseMs: 1_000 })).toEqual({ status: 'done' });
  }, 60_000);
});

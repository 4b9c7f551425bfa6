/**
 * Deferred mode survives a crash: an app answers 200 (the event is in the durable inbox), starts
 * the handler and is SIGKILLed before the handler finishes. A new process on the same store takes
 * the record over once the dead process's lease has expired and runs it to completion; the
 * handler's effect (a row it writes in the store's own database) is recorded exactly once.
 */
import { postgresBackend, redisBackend, sqliteBackend, type Backend } from './backends';
import { deliver, eventBody, eventKeyOf, sleep, startApp, type AppProcess } from './app-process';

const LEASE_MS = 1_000;
const DEFERRED = { MODE: 'deferred', LEASE_MS: String(LEASE_MS), POLL_MS: '50', BACKOFF_MS: '20' };

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe.each<[string, () => Backend]>([
  ['sqlite', sqliteBackend],
  ['postgres', postgresBackend],
  ['redis', redisBackend],
])('a deferred-mode app on %s killed after the 200, mid-handler', (tag, makeBackend) => {
  const backend = makeBackend();
  const apps: AppProcess[] = [];

  beforeAll(() => backend.setup(), 30_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    await backend.teardown();
  });

  it('is run to completion by the next process on the same store, its effect recorded once', async () => {
    const body = eventBody(1, `deferred-crash-${tag}`);
    const key = eventKeyOf(1);
    const doomed = await startApp({ ...backend.env(0), ...DEFERRED, HANG: '1' });
    apps.push(doomed);

    // The 200 comes once the event is in the inbox, before the handler has run. The lease cannot
    // start before the delivery: no takeover can happen before sentAt + LEASE_MS.
    const sentAt = Date.now();
    expect((await deliver(doomed.url, body)).status).toBe(200);
    await waitFor(async () => (await backend.runs('start')).length === 1, 10_000);
    const store = backend.store();
    expect((await store.list('pending', { limit: 10 })).map((r) => [r.key, r.state, r.attempts])).toEqual([[key, 'running', 1]]);
    await doomed.kill();
    expect(await backend.runs('done')).toEqual([]);

    const successor = await startApp({ ...backend.env(1), ...DEFERRED });
    apps.push(successor);
    await waitFor(async () => (await backend.runs('done')).length === 1, 15_000);
    // Not before the dead process's lease ran out: until then the record was still its.
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(LEASE_MS);

    const started = await backend.runs('start');
    expect(started).toHaveLength(2);
    expect(started).toEqual(expect.arrayContaining([{ key, pid: doomed.child.pid }, { key, pid: successor.child.pid }]));
    expect(await backend.runs('done')).toEqual([{ key, pid: successor.child.pid }]);
    await waitFor(async () => (await store.list('pending', { limit: 10 })).length === 0, 5_000);
    expect(await store.list('dead', { limit: 10 })).toEqual([]);

    // Caibo's redelivery of the same event, to the new process: a duplicate, nothing runs.
    expect((await deliver(successor.url, body)).status).toBe(200);
    await sleep(200);
    expect(await backend.runs('start')).toHaveLength(2);
    expect(await backend.runs('done')).toHaveLength(1);
    expect(successor.stderr()).toBe('');
  }, 60_000);
});

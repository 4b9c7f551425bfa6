import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { RedisStore } from '../../src/stores/redis';
import { runStoreConformance } from '../../src/testing';

const URL = 'redis://127.0.0.1:6379';
const prefix = `test:redis-store:${randomUUID()}:`;
const ioredis = new Redis(URL, { lazyConnect: true });
const nodeRedis = createClient({ url: URL });
nodeRedis.on('error', () => undefined);

beforeAll(async () => {
  await ioredis.connect();
  await nodeRedis.connect();
});

afterAll(async () => {
  // Expiry would clear these anyway; delete them so the shared Redis stays tidy.
  const keys = await ioredis.keys(`${prefix}*`);
  if (keys.length > 0) await ioredis.del(...keys);
  ioredis.disconnect();
  await nodeRedis.quit();
});

const timing = { leaseMs: 200, retentionMs: 200, slackMs: 60 };
// A prefix per store: the inbox checks need an inbox of their own in each test.
let stores = 0;

runStoreConformance({
  name: 'RedisStore (ioredis)',
  describe,
  it,
  expect,
  createStore: () => new RedisStore({ client: ioredis, prefix: `${prefix}io:${++stores}:` }),
  timing,
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

runStoreConformance({
  name: 'RedisStore (node-redis)',
  describe,
  it,
  expect,
  createStore: () => new RedisStore({ client: nodeRedis, prefix: `${prefix}node:${++stores}:` }),
  timing,
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

runStoreConformance({
  name: 'RedisStore (ioredis, batch: false)',
  describe,
  it,
  expect,
  createStore: () => new RedisStore({ client: ioredis, prefix: `${prefix}unbatched:${++stores}:`, batch: false }),
  timing,
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

/** The commands the client sent (not those a script ran) that name a key under `keyPrefix`, in order. */
async function watchCommands(keyPrefix: string): Promise<{ seen: string[][]; stop: () => Promise<void> }> {
  const monitor = await ioredis.monitor();
  const seen: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && args.some((a) => a.startsWith(keyPrefix))) seen.push(args);
  });
  return {
    seen,
    stop: async () => {
      // MONITOR reports asynchronously: let the last lines arrive.
      await new Promise((resolve) => setTimeout(resolve, 100));
      monitor.disconnect();
    },
  };
}

const paid = (key: string) => ({ key, paymentStatus: '4', transactionStatus: '1', receivedAt: '2026-12-07T19:00:00.000Z' });

describe('RedisStore batching', () => {
  it('sends concurrent claims as one script call and concurrent completions as another, each event keeping its own outcome', async () => {
    const base = `${prefix}batch:`;
    const store = new RedisStore({ client: ioredis, prefix: base });
    await store.init();
    const keys = Array.from({ length: 20 }, (_, i) => `evt-${i}`);
    await ioredis.set(`${base}evt-9`, 'D');
    const claimsWatch = await watchCommands(base);
    const claims = await Promise.all([...keys, 'evt-3', 'evt-7'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    await claimsWatch.stop();
    expect(claimsWatch.seen.map((args) => args[0]!.toUpperCase())).toEqual(['EVALSHA']);
    expect(claimsWatch.seen[0]!.slice(3, 3 + 22)).toEqual([...keys, 'evt-3', 'evt-7'].map((k) => base + k));
    // evt-9 was done already; the second copies of evt-3 and evt-7 find the first copies' leases.
    expect(claims.map((c) => c.status)).toEqual([...keys.map((k) => (k === 'evt-9' ? 'done' : 'claimed')), 'in_flight', 'in_flight']);
    const leaseTtl = await ioredis.pttl(`${base}evt-0`);
    expect(leaseTtl > 55_000 && leaseTtl <= 60_000).toBe(true);

    const token = (i: number) => (claims[i] as { token: string }).token;
    const completesWatch = await watchCommands(base);
    await Promise.all(
      keys.map((key, i) => {
        if (key === 'evt-9') return undefined;
        return i % 2 === 0
          ? store.completeWithState(key, token(i), `pr-${i}`, paid(key), { retentionMs: 600_000 })
          : store.complete(key, i === 5 ? 'stale-token' : token(i), { retentionMs: 600_000 });
      }),
    );
    await completesWatch.stop();
    expect(completesWatch.seen.map((args) => args[0]!.toUpperCase())).toEqual(['EVALSHA']);
    const values = await ioredis.mget(...keys.map((k) => base + k));
    expect(values.map((v, i) => (i === 5 ? v === `L:${token(5)}` : v === 'D'))).toEqual(keys.map(() => true));
    const retentionTtl = await ioredis.pttl(`${base}evt-0`);
    expect(retentionTtl > 590_000 && retentionTtl <= 600_000).toBe(true);
    for (let i = 0; i < keys.length; i += 2) expect(await store.getPaymentState(`pr-${i}`)).toEqual(paid(keys[i]!));
    expect(await store.getPaymentState('pr-1')).toBeNull();
    expect(await store.claim('evt-5', { leaseMs: 60_000 })).toEqual({ status: 'in_flight' });
    expect(await store.claim('evt-4', { leaseMs: 60_000 })).toEqual({ status: 'done' });
  });

  it('keeps the later of two final states for one payment request in a batch, as two calls in turn would', async () => {
    const store = new RedisStore({ client: ioredis, prefix: `${prefix}batch-order:` });
    const [a, b] = await Promise.all(['a', 'b'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    const watch = await watchCommands(`${prefix}batch-order:`);
    await Promise.all([
      store.completeWithState('a', (a as { token: string }).token, 'pr', paid('a'), { retentionMs: 60_000 }),
      store.completeWithState('b', (b as { token: string }).token, 'pr', paid('b'), { retentionMs: 60_000 }),
    ]);
    await watch.stop();
    expect(watch.seen).toHaveLength(1);
    expect(await store.getPaymentState('pr')).toEqual(paid('b'));
  });

  it('sends one script call per operation with batch: false, and on an ioredis Cluster client for all but the inbox', async () => {
    const asCluster = { isCluster: true as const, call: ioredis.call.bind(ioredis), evalsha: ioredis.evalsha.bind(ioredis) };
    for (const [tag, store] of [
      ['unbatched', new RedisStore({ client: ioredis, prefix: `${prefix}one-by-one:`, batch: false })],
      ['cluster', new RedisStore({ client: asCluster, prefix: `${prefix}one-by-one-cluster:` })],
    ] as const) {
      const watch = await watchCommands(store.prefix);
      const claims = await Promise.all(['x', 'y', 'z', 'x'].map((key) => store.claim(key, { leaseMs: 60_000 })));
      await watch.stop();
      expect({ tag, sent: watch.seen.map((args) => args[0]!.toUpperCase()) }).toEqual({ tag, sent: ['EVALSHA', 'EVALSHA', 'EVALSHA', 'EVALSHA'] });
      expect(claims.map((c) => c.status)).toEqual(['claimed', 'claimed', 'claimed', 'in_flight']);
      // The inbox's keys share one hash tag, so a Cluster client still batches its enqueues.
      const inboxWatch = await watchCommands(store.prefix);
      expect(await Promise.all(['x', 'y', 'z', 'x'].map((key) => store.enqueue(key, 'p')))).toEqual(['enqueued', 'enqueued', 'enqueued', 'duplicate']);
      await inboxWatch.stop();
      expect({ tag, calls: inboxWatch.seen.length }).toEqual({ tag, calls: tag === 'cluster' ? 1 : 4 });
    }
  });

  it('gives back the keys of a claim that lands after operationTimeoutMs, batched or not', async () => {
    // The real Redis, reached through a client that answers 150 ms late.
    const slow = {
      call: (command: string, ...args: (string | number)[]) =>
        new Promise((resolve) => setTimeout(resolve, 150)).then(() => ioredis.call(command, ...args)),
      evalsha: ioredis.evalsha.bind(ioredis),
    };
    for (const batch of [undefined, false] as const) {
      const store = new RedisStore({ client: slow, prefix: `${prefix}late-${String(batch)}:`, operationTimeoutMs: 50, batch });
      const outcomes = await Promise.allSettled(['p', 'q'].map((key) => store.claim(key, { leaseMs: 60_000 })));
      expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : o.status))).toEqual(['StoreTimeoutError', 'StoreTimeoutError']);
      // The claims land at about 150 ms, their releases about 150 ms after that.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await ioredis.mget(`${store.prefix}p`, `${store.prefix}q`)).toEqual([null, null]);
    }
  });

  it('batches the inbox: concurrent enqueues as one script call, concurrent acks as another, each keeping its own outcome', async () => {
    const base = `${prefix}inbox-batch:`;
    const store = new RedisStore({ client: ioredis, prefix: base });
    await store.init();
    const keys = Array.from({ length: 10 }, (_, i) => `e${i}`);
    const enqueues = await watchCommands(base);
    const results = await Promise.all([...keys, 'e4'].map((key) => store.enqueue(key, `payload-${key}`)));
    await enqueues.stop();
    expect(enqueues.seen.map((args) => args[0]!.toUpperCase())).toEqual(['EVALSHA']);
    expect(results).toEqual([...keys.map(() => 'enqueued'), 'duplicate']);
    // The order of the batch is the enqueue order, and the duplicate kept the first payload.
    expect((await store.list('pending', { limit: 20 })).map((r) => [r.key, r.payload])).toEqual(keys.map((k) => [k, `payload-${k}`]));

    const leased = await store.lease({ limit: 20, leaseMs: 60_000 });
    expect(leased.map((r) => r.key).sort()).toEqual([...keys].sort());
    const acks = await watchCommands(base);
    await Promise.all(leased.map((r) => store.ack(r.key, r.key === 'e7' ? 'stale-token' : r.token, { retentionMs: 600_000 })));
    await acks.stop();
    expect(acks.seen.map((args) => args[0]!.toUpperCase())).toEqual(['EVALSHA']);
    const states = await Promise.all(keys.map((k) => ioredis.hget(`${base}{inbox}:r:${k}`, 'state')));
    expect(states).toEqual(keys.map((k) => (k === 'e7' ? 'running' : 'done')));
    expect(await ioredis.zrange(`${base}{inbox}:due`, 0, -1)).toEqual(['e7']);
    const ttl = await ioredis.pttl(`${base}{inbox}:r:e0`);
    expect(ttl > 590_000 && ttl <= 600_000).toBe(true);
    expect(await ioredis.hget(`${base}{inbox}:r:e0`, 'payload')).toBe('');
  });

  it('records payment states alone in the completions batch, with their retention', async () => {
    const base = `${prefix}state-batch:`;
    const store = new RedisStore({ client: ioredis, prefix: base });
    const claim = await store.claim('k', { leaseMs: 60_000 });
    const watch = await watchCommands(base);
    await Promise.all([
      store.setPaymentState('pr1', paid('a'), { retentionMs: 600_000 }),
      store.complete('k', (claim as { token: string }).token, { retentionMs: 600_000 }),
      store.setPaymentState('pr2', paid('b'), { retentionMs: 600_000 }),
      store.setPaymentState('pr1', paid('c'), { retentionMs: 600_000 }),
    ]);
    await watch.stop();
    expect(watch.seen.map((args) => args[0]!.toUpperCase())).toEqual(['EVALSHA']);
    expect(await store.getPaymentState('pr1')).toEqual(paid('c'));
    expect(await store.getPaymentState('pr2')).toEqual(paid('b'));
    expect(await ioredis.get(`${base}k`)).toBe('D');
    const ttl = await ioredis.pttl(`${base}state:pr2`);
    expect(ttl > 590_000 && ttl <= 600_000).toBe(true);
  });

  it('frees the batch slot of a call that never settles, so the store works again once Redis answers', async () => {
    // The real Redis, through a client whose calls hang while `hang` is set (a stalled connection).
    let hang = true;
    const stalling = {
      call: (command: string, ...args: (string | number)[]) => (hang ? new Promise<never>(() => undefined) : ioredis.call(command, ...args)),
      evalsha: ioredis.evalsha.bind(ioredis),
    };
    const store = new RedisStore({ client: stalling, prefix: `${prefix}stall:`, operationTimeoutMs: 50, batch: { maxInFlight: 1 } });
    await expect(store.claim('a', { leaseMs: 60_000 })).rejects.toMatchObject({ name: 'StoreTimeoutError', operation: 'claim' });
    await expect(store.enqueue('a', 'p')).rejects.toMatchObject({ name: 'StoreTimeoutError', operation: 'enqueue' });
    hang = false;
    expect((await store.claim('b', { leaseMs: 60_000 })).status).toBe('claimed');
    expect(await store.enqueue('b', 'p')).toBe('enqueued');
  });

  it('refuses a malformed batch option', () => {
    expect(() => new RedisStore({ client: ioredis, batch: { maxSize: 0 } })).toThrow(/batch\.maxSize/);
    expect(() => new RedisStore({ client: ioredis, batch: true as never })).toThrow(/batch must be false/);
  });
});

describe('RedisStore', () => {
  it('shares state between an ioredis and a node-redis client on one prefix', async () => {
    const a = new RedisStore({ client: ioredis, prefix: `${prefix}shared:` });
    const b = new RedisStore({ client: nodeRedis, prefix: `${prefix}shared:` });
    const claim = await a.claim('k1', { leaseMs: 10_000 });
    expect(claim.status).toBe('claimed');
    expect(await b.claim('k1', { leaseMs: 10_000 })).toEqual({ status: 'in_flight' });
    if (claim.status === 'claimed') await a.complete('k1', claim.token, { retentionMs: 10_000 });
    expect(await b.claim('k1', { leaseMs: 10_000 })).toEqual({ status: 'done' });
  });

  it('stores one key per event under the prefix, expiring with the lease and then the retention', async () => {
    const store = new RedisStore({ client: ioredis, prefix: `${prefix}layout:` });
    const claim = await store.claim('evt', { leaseMs: 5_000 });
    const key = `${prefix}layout:evt`;
    expect(claim.status).toBe('claimed');
    expect(await ioredis.get(key)).toBe(claim.status === 'claimed' ? `L:${claim.token}` : null);
    const leaseTtl = await ioredis.pttl(key);
    expect(leaseTtl > 4_000 && leaseTtl <= 5_000).toBe(true);
    if (claim.status === 'claimed') await store.complete('evt', claim.token, { retentionMs: 86_400_000 });
    expect(await ioredis.get(key)).toBe('D');
    const retentionTtl = await ioredis.pttl(key);
    expect(retentionTtl > 86_000_000).toBe(true);
  });

  it('runs each operation as a single EVALSHA once the scripts are loaded', async () => {
    const monitor = await ioredis.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      // Commands a script runs show up with source "lua"; only what the client sent counts.
      if (source !== 'lua' && args.some((a) => a.startsWith(`${prefix}rt:`))) seen.push(String(args[0]).toUpperCase());
    });
    try {
      const store = new RedisStore({ client: ioredis, prefix: `${prefix}rt:` });
      await store.init();
      const claim = await store.claim('x', { leaseMs: 10_000 });
      if (claim.status === 'claimed') await store.complete('x', claim.token, { retentionMs: 10_000 });
      await store.release('x', 'stale');
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      monitor.disconnect();
    }
    expect(seen).toEqual(['EVALSHA', 'EVALSHA', 'EVALSHA']);
  });

  it('completes a key and records its state in one EVALSHA; on an ioredis Cluster client, in two commands', async () => {
    const state = { key: 'pay', paymentStatus: '4', transactionStatus: '1', receivedAt: '2026-12-07T15:00:00.000Z' };
    const sent = async (client: Redis | { isCluster: true; call: Redis['call']; evalsha: Redis['evalsha'] }, tag: string) => {
      const monitor = await ioredis.monitor();
      const seen: string[] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source !== 'lua' && args.some((a) => a.startsWith(`${prefix}${tag}:`))) seen.push(String(args[0]).toUpperCase());
      });
      try {
        const store = new RedisStore({ client, prefix: `${prefix}${tag}:` });
        await store.init();
        const claim = await store.claim('pay', { leaseMs: 10_000 });
        if (claim.status !== 'claimed') throw new Error('not claimed');
        // MONITOR reports asynchronously: let the claim's line arrive before counting.
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen.length = 0;
        await store.completeWithState('pay', claim.token, 'pr1', state, { retentionMs: 10_000 });
        await new Promise((resolve) => setTimeout(resolve, 100));
        const forCompleteWithState = [...seen];
        expect(await store.claim('pay', { leaseMs: 10_000 })).toEqual({ status: 'done' });
        expect(await store.getPaymentState('pr1')).toEqual(state);
        // The state is recorded even when the token no longer holds the key.
        await store.completeWithState('other', 'stale', 'pr2', state, { retentionMs: 10_000 });
        expect(await store.getPaymentState('pr2')).toEqual(state);
        expect((await store.claim('other', { leaseMs: 10_000 })).status).toBe('claimed');
        return forCompleteWithState;
      } finally {
        monitor.disconnect();
      }
    };
    expect(await sent(ioredis, 'cws')).toEqual(['EVALSHA']);
    // Same connection, seen as a Cluster client: the two keys may be in different slots there.
    const asCluster = { isCluster: true as const, call: ioredis.call.bind(ioredis), evalsha: ioredis.evalsha.bind(ioredis) };
    expect((await sent(asCluster, 'cws-cluster')).sort()).toEqual(['EVALSHA', 'SET']);
  });

  it('keeps the inbox under <prefix>{inbox}: a hash per record and a due set; a done record drops its payload and expires', async () => {
    const store = new RedisStore({ client: nodeRedis, prefix: `${prefix}inbox-layout:` });
    const base = `${prefix}inbox-layout:{inbox}:`;
    expect(store.durable).toBe(true);
    expect(await store.enqueue('evt', 'sealed-payload')).toBe('enqueued');
    expect(await ioredis.hgetall(`${base}r:evt`)).toMatchObject({ payload: 'sealed-payload', state: 'pending', attempts: '0', seq: '1' });
    expect(await ioredis.zrange(`${base}due`, 0, -1)).toEqual(['evt']);
    expect(await ioredis.pttl(`${base}r:evt`)).toBe(-1);
    const [leased] = await store.lease({ limit: 5, leaseMs: 10_000 });
    const dueAt = Number(await ioredis.zscore(`${base}due`, 'evt'));
    expect(dueAt - Date.now() > 9_000 && dueAt - Date.now() <= 10_000 + 50).toBe(true);
    await store.ack('evt', leased!.token, { retentionMs: 86_400_000 });
    const done = await ioredis.hgetall(`${base}r:evt`);
    expect([done.state, done.payload, done.token]).toEqual(['done', '', undefined]);
    expect(await ioredis.pttl(`${base}r:evt`)).toBeGreaterThan(86_000_000);
    expect(await ioredis.zcard(`${base}due`)).toBe(0);
    expect(await ioredis.zcard(`${base}queue`)).toBe(0);
  });

  it('runs each inbox operation as a single EVALSHA', async () => {
    const monitor = await ioredis.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((a) => a.startsWith(`${prefix}inbox-rt:`))) seen.push(String(args[0]).toUpperCase());
    });
    try {
      const store = new RedisStore({ client: ioredis, prefix: `${prefix}inbox-rt:` });
      await store.init();
      await store.enqueue('x', 'p');
      const [leased] = await store.lease({ limit: 10, leaseMs: 10_000 });
      await store.fail('x', leased!.token, { error: 'e', retryAt: null });
      await store.list('dead', { limit: 10 });
      await store.replay('x');
      const [again] = await store.lease({ limit: 10, leaseMs: 10_000 });
      await store.ack('x', again!.token, { retentionMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      monitor.disconnect();
    }
    expect(seen).toEqual(Array.from({ length: 7 }, () => 'EVALSHA'));
  });

  it('refuses something that is not a Redis client, naming both accepted clients', () => {
    expect(() => new RedisStore({ client: {} as never })).toThrow(/ioredis.*node-redis/);
    expect(() => new RedisStore({ client: ioredis, operationTimeoutMs: -1 })).toThrow(/operationTimeoutMs/);
  });
});

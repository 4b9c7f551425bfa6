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

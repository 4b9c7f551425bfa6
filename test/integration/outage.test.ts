/**
 * The store's server goes away mid-run: deliveries get 503 + Retry-After and the handler is not
 * called; when it is back, the next delivery succeeds, with no restart of the app. Redis runs as
 * our own redis-server on a spare port (killed and paused at will); PostgreSQL is reached through
 * a TCP proxy we cut and stall. The shared servers are never touched.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { createClient } from 'redis';
import { caiboCallbacks } from '../../src';
import type { CaiboEvent } from '../../src/core/events';
import { PostgresStore } from '../../src/stores/postgres';
import { RedisStore } from '../../src/stores/redis';
import type { CallbackStore } from '../../src/stores/types';
import { PrivateRedis } from '../helpers/private-redis';
import { TcpProxy } from '../helpers/tcp-proxy';
import { SECRET, deliver, eventBody, eventKeyOf, sleep, type Delivery } from './app-process';
import { PG_URL } from './backends';

const OP_TIMEOUT_MS = 300;

interface App {
  url: string;
  handled: CaiboEvent[];
  close(): Promise<void>;
}

async function startApp(store: CallbackStore): Promise<App> {
  const handled: CaiboEvent[] = [];
  const app = express();
  const router = caiboCallbacks({
    secret: SECRET,
    allowIps: ['127.0.0.1', '::1'],
    store,
    orderingGuard: false,
    retryAfterSeconds: 7,
    onStatus: (event) => {
      handled.push(event);
    },
  });
  app.use('/callbacks', router);
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handled,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await router.close({ timeoutMs: 1_000 });
    },
  };
}

async function until(what: string, predicate: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function expectUnavailable(answer: Delivery): void {
  expect(answer.status).toBe(503);
  expect(answer.retryAfter).toBe('7');
  expect(answer.body).toBe('Service Unavailable');
}

const handledIds = (app: App): string[] => app.handled.map((e) => e.key);

/**
 * Redelivers event `i` as Caibo would until it is answered 200, within 5 s (far less than the
 * 30 s lease): a claim that reached the server late may hold the key for a moment (409) until the
 * store gives it back, but never 5xx once the server is back, and never a second handler run.
 */
async function redeliverUntilHandled(app: App, i: number, tag: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  const answers: number[] = [];
  for (;;) {
    const { status } = await deliver(app.url, eventBody(i, tag));
    answers.push(status);
    if (status === 200 || Date.now() > deadline) break;
    await sleep(50);
  }
  expect(answers.at(-1)).toBe(200);
  expect(answers.slice(0, -1).every((s) => s === 409)).toBe(true);
  expect(handledIds(app).filter((k) => k === eventKeyOf(i))).toHaveLength(1);
}

type RedisClientCase = {
  name: string;
  connect(url: string): Promise<{ client: ConstructorParameters<typeof RedisStore>[0]['client']; ready(): boolean; quit(): Promise<void> }>;
};

const redisClients: RedisClientCase[] = [
  {
    name: 'ioredis',
    connect: async (url) => {
      const client = new Redis(url, { retryStrategy: () => 100 });
      client.on('error', () => undefined);
      await once(client, 'ready');
      return { client, ready: () => client.status === 'ready', quit: async () => client.disconnect() };
    },
  },
  {
    name: 'node-redis',
    connect: async (url) => {
      const client = createClient({ url, socket: { reconnectStrategy: () => 100 } });
      client.on('error', () => undefined);
      await client.connect();
      return { client, ready: () => client.isReady, quit: async () => void client.destroy() };
    },
  },
];

describe.each(redisClients)('RedisStore ($name) when Redis goes away', ({ connect }) => {
  let redis: PrivateRedis;
  let conn: Awaited<ReturnType<RedisClientCase['connect']>>;
  let app: App;
  const prefix = 'outage:';

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    conn = await connect(redis.url);
    app = await startApp(new RedisStore({ client: conn.client, prefix, operationTimeoutMs: OP_TIMEOUT_MS }));
  }, 30_000);

  afterAll(async () => {
    await app.close();
    await conn.quit();
    await redis.stop();
  });

  it('answers 503 while Redis is down and succeeds on the next delivery once it is back', async () => {
    expect((await deliver(app.url, eventBody(1, 'r'))).status).toBe(200);

    await redis.stop();
    expectUnavailable(await deliver(app.url, eventBody(2, 'r')));
    expectUnavailable(await deliver(app.url, eventBody(2, 'r')));
    expect(handledIds(app)).toEqual([eventKeyOf(1)]);

    // Back, empty (no persistence, script cache gone): EVALSHA falls back to EVAL.
    await redis.start();
    await until('the client to reconnect', conn.ready);
    await redeliverUntilHandled(app, 2, 'r');
    expect((await deliver(app.url, eventBody(3, 'r'))).status).toBe(200);
    expect((await deliver(app.url, eventBody(3, 'r'))).status).toBe(200);
    expect(handledIds(app)).toEqual([eventKeyOf(1), eventKeyOf(2), eventKeyOf(3)]);
  }, 30_000);

  it('answers 503 within the operation timeout while Redis hangs, and recovers when it answers again', async () => {
    redis.pause();
    try {
      const started = Date.now();
      expectUnavailable(await deliver(app.url, eventBody(4, 'r')));
      // Bounded by operationTimeoutMs, not by the hang (generous margin for a loaded machine).
      expect(Date.now() - started < OP_TIMEOUT_MS + 2_000).toBe(true);
      expect(handledIds(app)).not.toContain(eventKeyOf(4));
    } finally {
      redis.resume();
    }
    // The claim Redis ran after waking is given back, so the redelivery runs the handler now.
    await redeliverUntilHandled(app, 4, 'r');
    expect(handledIds(app).filter((k) => k === eventKeyOf(4))).toHaveLength(1);
  }, 30_000);
});

describe('PostgresStore when PostgreSQL goes away', () => {
  const schema = `test_outage_${Date.now()}_${process.pid}`;
  const admin = new Pool({ connectionString: PG_URL, max: 2 });
  const proxy = new TcpProxy(5432);
  let pool: Pool;
  let app: App;

  beforeAll(async () => {
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await proxy.start();
    pool = new Pool({ host: '127.0.0.1', port: proxy.port, user: 'postgres', database: 'test', max: 4 });
    pool.on('error', () => undefined);
    const store = new PostgresStore({ pool, schema, operationTimeoutMs: OP_TIMEOUT_MS });
    app = await startApp(store);
  }, 30_000);

  afterAll(async () => {
    await app.close();
    await proxy.close();
    await pool.end();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  });

  it('answers 503 while the server is unreachable and succeeds on the next delivery once it is back', async () => {
    expect((await deliver(app.url, eventBody(1, 'p'))).status).toBe(200);

    await proxy.cut();
    expectUnavailable(await deliver(app.url, eventBody(2, 'p')));
    expectUnavailable(await deliver(app.url, eventBody(2, 'p')));
    expect(handledIds(app)).toEqual([eventKeyOf(1)]);

    await proxy.restore();
    expect((await deliver(app.url, eventBody(2, 'p'))).status).toBe(200);
    expect((await deliver(app.url, eventBody(1, 'p'))).status).toBe(200); // still a duplicate
    expect(handledIds(app)).toEqual([eventKeyOf(1), eventKeyOf(2)]);
  }, 30_000);

  it('answers 503 within the operation timeout while the network hangs, and recovers after', async () => {
    proxy.stall();
    try {
      const started = Date.now();
      expectUnavailable(await deliver(app.url, eventBody(3, 'p')));
      expect(Date.now() - started < OP_TIMEOUT_MS + 2_000).toBe(true);
      expectUnavailable(await deliver(app.url, eventBody(3, 'p')));
      expect(handledIds(app)).not.toContain(eventKeyOf(3));
    } finally {
      proxy.unstall();
    }
    // The claims held in the stalled connection reach the server once it flows again; the store
    // waits for their outcome and gives the key back, so the redelivery runs the handler within
    // moments, not after the 30 s lease.
    await redeliverUntilHandled(app, 3, 'p');
    expect((await deliver(app.url, eventBody(3, 'p'))).status).toBe(200);
    expect(handledIds(app).filter((k) => k === eventKeyOf(3))).toHaveLength(1);
    const { rows } = await admin.query(`SELECT key, done FROM "${schema}".caibo_callbacks ORDER BY key`);
    expect(rows).toEqual([1, 2, 3].map((i) => ({ key: eventKeyOf(i), done: true })));
  }, 30_000);
});

describe('a claim that reaches the server after its operation timeout', () => {
  /** Claims `key` until it is `claimed`; a late claim would hold it for the whole 30 s lease. */
  async function claimableWithin(store: CallbackStore, key: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const result = await store.claim(key, { leaseMs: 30_000 }).catch(() => null);
      if (result?.status === 'claimed') return true;
      await sleep(50);
    }
    return false;
  }

  it('is given back by RedisStore, so the key is free long before the lease ends', async () => {
    const redis = await PrivateRedis.start();
    const client = new Redis(redis.url, { retryStrategy: () => 100 });
    client.on('error', () => undefined);
    try {
      const store = new RedisStore({ client, prefix: 'late:', operationTimeoutMs: OP_TIMEOUT_MS });
      redis.pause();
      await expect(store.claim('evt', { leaseMs: 30_000 })).rejects.toThrow(`did not finish within ${OP_TIMEOUT_MS} ms`);
      redis.resume();
      // Redis runs the queued claim on waking; without the give-back the key stays leased for 30 s.
      expect(await claimableWithin(store, 'evt', 3_000)).toBe(true);
    } finally {
      client.disconnect();
      await redis.stop();
    }
  }, 30_000);

  it('is given back by PostgresStore, so the key is free long before the lease ends', async () => {
    const proxy = new TcpProxy(5432);
    await proxy.start();
    const pool = new Pool({ host: '127.0.0.1', port: proxy.port, user: 'postgres', database: 'test', max: 4 });
    pool.on('error', () => undefined);
    const table = `late_${Date.now()}_${process.pid}`;
    const store = new PostgresStore({ pool, table, operationTimeoutMs: OP_TIMEOUT_MS });
    try {
      await store.init();
      proxy.stall();
      await expect(store.claim('evt', { leaseMs: 30_000 })).rejects.toThrow(`did not finish within ${OP_TIMEOUT_MS} ms`);
      proxy.unstall();
      expect(await claimableWithin(store, 'evt', 3_000)).toBe(true);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_states", "${table}_inbox"`);
      await store.close();
      await pool.end();
      await proxy.close();
    }
  }, 30_000);
});

describe('a store that is down when the app starts', () => {
  it('answers 503 until PostgreSQL is reachable, then initialises and handles the next delivery', async () => {
    const proxy = new TcpProxy(5432);
    await proxy.start();
    await proxy.cut(); // the port is reserved but refuses connections: the database is "down"
    const pool = new Pool({ host: '127.0.0.1', port: proxy.port, user: 'postgres', database: 'test', max: 4 });
    pool.on('error', () => undefined);
    const table = `boot_${Date.now()}_${process.pid}`;
    const app = await startApp(new PostgresStore({ pool, table, operationTimeoutMs: OP_TIMEOUT_MS }));
    try {
      expectUnavailable(await deliver(app.url, eventBody(1, 'boot')));
      expectUnavailable(await deliver(app.url, eventBody(1, 'boot')));
      expect(app.handled).toEqual([]);

      await proxy.restore();
      // init() is tried again by this delivery: it creates the table, and the event is handled.
      expect((await deliver(app.url, eventBody(1, 'boot'))).status).toBe(200);
      expect((await deliver(app.url, eventBody(1, 'boot'))).status).toBe(200);
      expect(handledIds(app)).toEqual([eventKeyOf(1)]);
    } finally {
      await app.close();
      await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_states", "${table}_inbox"`);
      await pool.end();
      await proxy.close();
    }
  }, 30_000);
});

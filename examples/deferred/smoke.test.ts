import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' (the package's own name); in tests jest maps it to src/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => {
    app: import('express').Express;
    router: { close(o?: { timeoutMs?: number }): Promise<void>; pending(): Promise<unknown[]>; dead(): Promise<unknown[]> };
    init(): Promise<unknown>;
  };
};

const secret = 'example-secret';
const suffix = `${Date.now()}_${process.pid}`;
const dir = mkdtempSync(path.join(tmpdir(), 'caibo-example-deferred-'));
const pool = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 4 });
pool.on('error', () => undefined);
const storeTable = `example_deferred_${suffix}`;
const ordersTable = `example_deferred_orders_${suffix}`;

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await pool.query(`DROP TABLE IF EXISTS ${storeTable}, ${storeTable}_states, ${storeTable}_inbox, ${ordersTable}`);
  await pool.end();
});

const until = async (check: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe.each<[string, () => object]>([
  ['SQLite', () => ({ path: path.join(dir, 'callbacks.sqlite') })],
  ['PostgreSQL', () => ({ pool, storeTable, ordersTable })],
])('examples/deferred on %s', (_name, backend) => {
  const options = { secret, allowIps: ['127.0.0.1', '::1'], inboxKeys: [randomBytes(32).toString('base64')], pollIntervalMs: 20, ...backend() };

  /** Starts the app, runs `fn` against it, then shuts it down the way the SIGTERM recipe does. */
  async function withApp(fn: (url: string, router: ReturnType<typeof createApp>['router']) => Promise<void>, timeoutMs = 5_000): Promise<void> {
    const { app, router, init } = createApp(options);
    await init();
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, router);
    } finally {
      server.closeAllConnections();
      server.close();
      await router.close({ timeoutMs });
    }
  }

  const send = (url: string, reference: string, signatureSecret = secret) => {
    const body = formBody(sampleNotification({ referenceId: reference, transactionId: String(400000 + reference.length) }));
    return fetch(`${url}/callbacks/caibo`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signPayload(body, signatureSecret) },
      body,
    });
  };
  const order = async (url: string, reference: string) => {
    const res = await fetch(`${url}/orders/${reference}`);
    return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : null;
  };

  it('acknowledges at once, then updates the order once in the background; a duplicate changes nothing', async () => {
    await withApp(async (url, router) => {
      expect((await send(url, 'order-42')).status).toBe(200);
      await until(async () => (await order(url, 'order-42')) !== null);
      expect((await send(url, 'order-42')).status).toBe(200);
      expect((await send(url, 'order-42', 'wrong')).status).toBe(401);
      await until(async () => (await router.pending()).length === 0);
      expect(await order(url, 'order-42')).toEqual({ status: 'paid', amount: '10', currency: 'USD', updates: 1 });
      expect(await router.dead()).toEqual([]);
    });
  });

  it('an event acknowledged just before shutdown is handled once, by this process or the next one', async () => {
    // Closed right after the 200: the handler either finishes within close()'s deadline or stays
    // in the inbox for the next start. Either way the order is updated exactly once.
    await withApp(async (url) => {
      expect((await send(url, 'order-sigterm')).status).toBe(200);
    });
    await withApp(async (url, router) => {
      await until(async () => (await router.pending()).length === 0 && (await order(url, 'order-sigterm')) !== null);
      expect((await send(url, 'order-sigterm')).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await order(url, 'order-sigterm')).toEqual({ status: 'paid', amount: '10', currency: 'USD', updates: 1 });
      expect(await order(url, 'order-42')).toEqual({ status: 'paid', amount: '10', currency: 'USD', updates: 1 });
    });
  });
});

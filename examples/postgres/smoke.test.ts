import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Pool } from 'pg';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' (the package's own name), which resolves to dist/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('express').Express; router: { close(): Promise<void> }; init(): Promise<void> };
};

const secret = 'example-secret';
const suffix = `${Date.now()}_${process.pid}`;
const storeTable = `example_callbacks_${suffix}`;
const ordersTable = `example_orders_${suffix}`;

describe('examples/postgres', () => {
  const pool = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 4 });

  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS ${storeTable}, ${storeTable}_states, ${storeTable}_inbox, ${ordersTable}`);
    await pool.end();
  });

  it('updates the order once for a callback and its duplicate, and refuses a bad signature', async () => {
    const { app, router, init } = createApp({ secret, allowIps: ['127.0.0.1', '::1'], pool, storeTable, ordersTable });
    await init();
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const body = formBody(sampleNotification({ referenceId: 'order-42' }));
      const send = (signature = signPayload(body, secret)) =>
        fetch(`${url}/callbacks/caibo`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signature },
          body,
        });
      expect((await send()).status).toBe(200);
      expect((await send()).status).toBe(200);
      expect((await send(signPayload(body, 'wrong'))).status).toBe(401);

      const order = await fetch(`${url}/orders/order-42`);
      expect(await order.json()).toEqual({ status: 'paid', amount: '10', currency: 'USD', updates: 1 });
      const { rows } = await pool.query(`SELECT done FROM ${storeTable}`);
      expect(rows).toEqual([{ done: true }]);
    } finally {
      server.close();
      await router.close();
    }
  });
});

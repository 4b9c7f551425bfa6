import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' (the package's own name), which resolves to dist/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('express').Express; router: { close(): Promise<void> } };
};

const secret = 'example-secret';
const prefix = `test:example-redis:${randomUUID()}:`;

describe('examples/redis', () => {
  const clients: Redis[] = [];
  const servers: Server[] = [];
  const routers: { close(): Promise<void> }[] = [];

  /** Starts one instance with its own Redis connection, as a separate server would have. */
  async function instance(): Promise<string> {
    const redis = new Redis('redis://127.0.0.1:6379');
    clients.push(redis);
    const { app, router } = createApp({ secret, allowIps: ['127.0.0.1', '::1'], redis, prefix });
    routers.push(router);
    const server = app.listen(0, '127.0.0.1');
    servers.push(server);
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  afterAll(async () => {
    for (const server of servers) server.close();
    await Promise.all(routers.map((r) => r.close()));
    const keys = await clients[0]!.keys(`${prefix}*`);
    if (keys.length > 0) await clients[0]!.del(...keys);
    for (const client of clients) client.disconnect();
  });

  it('runs the handler once for a callback and its duplicate sent to two instances', async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    const body = formBody(sampleNotification({ referenceId: 'order-42' }));
    const send = (url: string, signature = signPayload(body, secret)) =>
      fetch(`${url}/callbacks/caibo`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signature },
        body,
      });

    expect((await send(a)).status).toBe(200);
    expect((await send(b)).status).toBe(200); // the duplicate, on the other instance
    expect(await clients[0]!.lrange(`${prefix}orders:order-42:events`, 0, -1)).toHaveLength(1);

    const order = await fetch(`${b}/orders/order-42`);
    expect(await order.json()).toEqual({ status: 'paid', amount: '10', currency: 'USD' });
    expect((await send(b, signPayload(body, 'wrong'))).status).toBe(401);
  });
});

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' (the package's own name), which resolves to dist/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('express').Express; router: { close(): Promise<void> } };
};

const secret = 'example-secret';

describe('examples/sqlite', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'caibo-example-sqlite-'));
  const file = path.join(dir, 'callbacks.sqlite');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts the app on the file, runs `fn` against its URL, then shuts it down (closing the file). */
  async function withApp(fn: (url: string) => Promise<void>): Promise<void> {
    const { app, router } = createApp({ secret, allowIps: ['127.0.0.1', '::1'], path: file });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    } finally {
      server.close();
      await router.close();
    }
  }

  const body = formBody(sampleNotification({ referenceId: 'order-42' }));
  const send = (url: string, signature = signPayload(body, secret)) =>
    fetch(`${url}/callbacks/caibo`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signature },
      body,
    });

  it('updates the order once for a callback and its duplicate, even across a restart', async () => {
    await withApp(async (url) => {
      expect((await send(url)).status).toBe(200);
      expect((await send(url)).status).toBe(200);
      expect((await send(url, signPayload(body, 'wrong'))).status).toBe(401);
    });
    // A restart: a memory store would forget the event and run the handler again.
    await withApp(async (url) => {
      expect((await send(url)).status).toBe(200);
      const order = await fetch(`${url}/orders/order-42`);
      expect(await order.json()).toEqual({ status: 'paid', amount: '10', currency: 'USD', updates: 1 });
    });
  });
});

import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caiboCallbacks } from '../../src';
import type { CaiboEvent } from '../../src/core/events';
import { ensureBuilt, runCli } from './run-cli';

const { createApp } = require('../../examples/basic/app.js') as {
  createApp: (o: object) => { app: RequestListener };
};

const SECRET = 'caibo_test_sk_send_0123456789';

/** The example's order book, counting every write: the basic example writes once per handler run. */
class CountingOrders extends Map<string, unknown> {
  writes = 0;
  override set(key: string, value: unknown): this {
    if (this.writes !== undefined) this.writes++;
    return super.set(key, value);
  }
}

async function serve(app: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

beforeAll(ensureBuilt, 120_000);

describe('caibo-callbacks send', () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server) await stop(server);
    server = undefined;
  });

  it('sends 1,000 notifications (200 events x --repeat 5 --concurrency 20) at examples/basic: 200 handled + 800 duplicates', async () => {
    const orders = new CountingOrders();
    const started = await serve(createApp({ secret: SECRET, allowIps: ['127.0.0.1'], orders }).app);
    server = started.server;

    const r = await runCli(['send', `${started.url}/callbacks`, '--events', '200', '--repeat', '5', '--concurrency', '20'], {
      env: { CAIBO_SECRET: SECRET },
    });

    expect(r.stderr).toBe(''); // no progress bar: stderr is not a terminal
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/callbacks\/caibo$/m);
    expect(r.stdout).toMatch(/^200 handled\s+200\s+[\d.]+\s+[\d.]+$/m);
    expect(r.stdout).toMatch(/^200 duplicate\s+800\s+[\d.]+\s+[\d.]+$/m);
    expect(r.stdout).toMatch(/^total\s+1000\s+[\d.]+\s+[\d.]+$/m);
    expect(r.stdout).toMatch(/1000 requests in [\d.]+ s \(\d+\/s\): 200 handled, 800 duplicate, 0 failed/);
    // The example's own count agrees: one write per handler run, one order per event.
    expect(orders.writes).toBe(200);
    expect(orders.size).toBe(200);
    expect(orders.get('12345-1')).toMatchObject({ status: 'paid', paymentRequestId: '16772761082427695' });
    expect(orders.get('12345-200')).toMatchObject({ status: 'paid', paymentRequestId: '16772761082427894' });
  });

  describe('against a router that records what it handled', () => {
    let handled: CaiboEvent[];
    let url: string;
    const start = async (options: { testEndpoints?: boolean } = {}) => {
      handled = [];
      const router = caiboCallbacks({
        secret: SECRET,
        ...options,
        onStatus: (event) => {
          handled.push(event);
        },
      });
      const started = await serve((req, res) => router(req, res));
      server = started.server;
      url = started.url;
    };

    it('builds a notification from flags, and --json reports it', async () => {
      await start();
      const r = await runCli(
        [
          'send', url, '--route', 'caibowh', '--status', 'declined', '--id', '00000000000000042', '--transaction-id', '777',
          '--amount', '12.50', '--currency', 'EUR', '--reference', 'order-9', '--field', 'notes=gift', '--format', 'json', '--json',
        ],
        { env: { CAIBO_SECRET: SECRET } },
      );
      expect(r.code).toBe(0);
      const summary = JSON.parse(r.stdout);
      expect(summary).toMatchObject({ method: 'POST', requests: 1, handled: 1, duplicate: 0, failed: 0, statuses: { 200: 1 } });
      expect(summary.url).toBe(`${url}/caibowh`);
      expect(handled).toHaveLength(1);
      expect(handled[0]).toMatchObject({
        provider: 'caibowh',
        paymentRequestId: '00000000000000042',
        transactionId: '777',
        paymentStatus: 'unpaid',
        transactionStatus: 'declined',
        grossAmount: '12.50',
        netAmount: '12.50',
        fee: '0',
        currency: 'EUR',
        referenceId: 'order-9',
        notes: 'gift',
        failure: { message: 'Stolen Card', code: '008' },
      });
    });

    it('sends a file: a JSON notification whose 17-digit ids are bare numbers keeps them exact', async () => {
      await start();
      const dir = mkdtempSync(join(tmpdir(), 'caibo-send-'));
      try {
        const file = join(dir, 'n.json');
        writeFileSync(file, '{"id": 16772761082427695, "transactionId": 1, "transactionStatusId": 1, "paymentRequestStatusId": 3, "grossAmount": 10.10}');
        const r = await runCli(['send', `${url}/caibo`, '--file', file], { env: { CAIBO_SECRET: SECRET } });
        expect(r.code).toBe(0);
        expect(handled[0]).toMatchObject({ paymentRequestId: '16772761082427695', paymentStatus: 'cancelled', grossAmount: '10.10' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('sends GET with the fields in the signed query string', async () => {
      await start();
      const r = await runCli(['send', url, '--route', 'caibo-gateway', '--method', 'GET', '--status', 'unpaid'], { env: { CAIBO_SECRET: SECRET } });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^GET http.*\/caibo-gateway$/m);
      expect(handled).toHaveLength(1);
      expect(handled[0]).toMatchObject({ provider: 'caibo-gateway', paymentStatus: 'unpaid', transactionStatus: 'waiting', failure: null });
    });

    it('exits 1 and lists the refusals when the signature is wrong', async () => {
      await start();
      const r = await runCli(['send', url, '--events', '3', '--concurrency', '3'], { env: { CAIBO_SECRET: 'caibo_test_sk_wrong' } });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^401 Unauthorized\s+3\s/m);
      expect(r.stdout).toMatch(/0 handled, 0 duplicate, 3 failed/);
      expect(handled).toHaveLength(0);
    });

    it('reports copies that overlap their first delivery as 409 in flight, and exits 1', async () => {
      handled = [];
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const router = caiboCallbacks({ secret: SECRET, testEndpoints: true, onStatus: () => gate });
      const started = await serve((req, res) => router(req, res));
      server = started.server;
      const pending = runCli(['send', started.url, '--repeat', '3', '--concurrency', '3', '--timeout', '5000'], { env: { CAIBO_SECRET: SECRET } });
      // Both copies are refused while the first holds its claim; then let it finish.
      const deadline = Date.now() + 10_000;
      while (router.metrics().rejected < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      release();
      const r = await pending;
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^200 handled\s+1\s/m);
      // The row is the status and the router's short 409 body.
      expect(r.stdout).toMatch(/^409 \S.*\S\s+2\s+[\d.]+\s+[\d.]+$/m);
      expect(router.metrics().reasons['event.in_flight']).toBe(2);
    });

    it('without the outcome header (test endpoints off) lists 200 OK and still exits 0', async () => {
      await start({ testEndpoints: false });
      const r = await runCli(['send', url, '--events', '2', '--repeat', '2'], { env: { CAIBO_SECRET: SECRET } });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^200 OK\s+4\s/m);
      expect(r.stdout).toMatch(/0 handled, 0 duplicate, 4 ok \(outcome not reported/);
      expect(handled).toHaveLength(2);
    });
  });

  it('exits 1 with the network error when nothing listens', async () => {
    const { server: s, url } = await serve(() => undefined);
    await stop(s); // the port is now closed
    const r = await runCli(['send', url, '--events', '2'], { env: { CAIBO_SECRET: SECRET } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ERR ECONNREFUSED\s+2\s/m);
  });
});

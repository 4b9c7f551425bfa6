import { caiboCallbacks, CaiboClient, MemoryStore, type CaiboEvent } from '../../src';
import { fakeStatusApi, statusBody } from './status-api';
import { postSigned, SECRET, serve, until } from './support';

const ID = '16772761082427695';

async function setup(script: Parameters<typeof fakeStatusApi>[0], extra: { reconcileEvery?: number } = {}) {
  const api = await fakeStatusApi(script);
  const handled: CaiboEvent[] = [];
  const router = caiboCallbacks({
    secret: SECRET,
    store: new MemoryStore(),
    client: new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, backoff: { initialMs: 5, maxMs: 20 } }),
    onStatus: (event) => {
      handled.push(event);
    },
    ...extra,
  });
  const server = await serve((req, res) => router(req, res));
  return {
    api,
    handled,
    router,
    server,
    async close() {
      await server.close();
      await api.close();
      await router.close();
    },
  };
}

describe('router.reconcile', () => {
  it('reconcile then callback: the state reaches the handler once', async () => {
    const t = await setup([{ status: 200, body: statusBody() }]);
    try {
      const [result] = await t.router.reconcile([ID]);
      expect(result).toMatchObject({ id: ID, outcome: 'handled' });
      expect(t.handled).toHaveLength(1);
      expect(t.handled[0]).toMatchObject({ provider: 'status-api', key: `${ID}:265111:1:1`, paymentStatus: 'paid', grossAmount: '10.50' });
      const callback = await postSigned(t.server.url);
      expect(callback.status).toBe(200);
      expect(t.handled).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it('callback then reconcile: the poll is a duplicate', async () => {
    const t = await setup([{ status: 200, body: statusBody() }]);
    try {
      expect((await postSigned(t.server.url)).status).toBe(200);
      const [result] = await t.router.reconcile([ID]);
      expect(result!.outcome).toBe('duplicate');
      expect(t.handled.map((e) => e.provider)).toEqual(['caibo']);
    } finally {
      await t.close();
    }
  });

  it('a polled non-final state after a paid callback is stale, not delivered', async () => {
    const t = await setup([{ status: 200, body: statusBody({ paymentRequestStatusId: 2, transactionId: '265110', transactionStatusId: 3 }) }]);
    try {
      await postSigned(t.server.url);
      const [result] = await t.router.reconcile([ID]);
      expect(result!.outcome).toBe('stale');
      expect(t.handled).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it('reports API failures per id without calling the handler', async () => {
    const t = await setup([{ status: 404 }]);
    try {
      const [result] = await t.router.reconcile([ID]);
      expect(result!.outcome).toBe('failed');
      expect(result!.error?.type).toBe('api.not_found');
      expect(t.handled).toHaveLength(0);
    } finally {
      await t.close();
    }
  });

  it('reconcileEvery follows a non-final payment until the poll finds it final', async () => {
    const t = await setup([{ status: 200, body: statusBody() }], { reconcileEvery: 100 });
    try {
      const pending = { transactionId: '265111', transactionStatusId: '3', paymentRequestStatusId: '2' };
      expect((await postSigned(t.server.url, pending)).status).toBe(200);
      await until(() => t.handled.length === 2, 3_000);
      expect(t.handled.map((e) => [e.provider, e.kind === 'payment' && e.paymentStatus])).toEqual([
        ['caibo', 'unpaid'],
        ['status-api', 'paid'],
      ]);
      const polls = t.api.seen.length;
      await new Promise((resolve) => setTimeout(resolve, 350));
      // Final now: it is no longer polled.
      expect(t.api.seen.length).toBe(polls);
    } finally {
      await t.close();
    }
  });

  it('needs a client', async () => {
    const router = caiboCallbacks({ secret: SECRET, onStatus: () => undefined });
    await expect(router.reconcile([ID])).rejects.toThrow(/client/);
    expect(() => caiboCallbacks({ secret: SECRET, onStatus: () => undefined, reconcileEvery: 1000 })).toThrow(/client/);
    await router.close();
  });
});

import { caiboCallbacks, MemoryStore, type CaiboEvent } from '../../src';
import type { CallbackError } from '../../src/errors';
import { deferred, postSigned, SECRET, serve, until } from '../inline/support';

function setup(options: Partial<Parameters<typeof caiboCallbacks>[0]> & { onStatus: (event: CaiboEvent) => unknown }) {
  const store = new MemoryStore();
  const warnings: string[] = [];
  const router = caiboCallbacks({
    secret: SECRET,
    store,
    mode: 'deferred',
    pollIntervalMs: 20,
    backoff: { initialMs: 10, maxMs: 40 },
    logger: { info() {}, warn: (o: Record<string, unknown>) => warnings.push(String(o.code ?? o.outcome ?? '')), error() {} },
    ...options,
  });
  return { store, router, warnings };
}

describe("mode: 'deferred' (memory inbox)", () => {
  it('acknowledges before the handler runs, then runs it once; duplicates are not queued again', async () => {
    const gate = deferred();
    const handled: CaiboEvent[] = [];
    const { router, warnings } = setup({
      onStatus: async (event) => {
        await gate.promise;
        handled.push(event);
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      expect((await postSigned(server.url)).status).toBe(200);
      expect(handled).toHaveLength(0);
      expect((await postSigned(server.url)).status).toBe(200);
      expect((await router.pending()).map((p) => p.key)).toEqual(['16772761082427695:265111:1:1']);
      gate.resolve();
      await until(() => handled.length === 1);
      await until(async () => (await router.pending()).length === 0);
      expect(handled[0]).toMatchObject({ paymentRequestId: '16772761082427695', grossAmount: '10' });
      expect(warnings).toContain('ERR_CAIBO_INBOX_NOT_DURABLE');
      expect(router.metrics()).toMatchObject({ received: 2, queued: 1, duplicate: 1, handled: 0 });
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('retries with backoff, then dead after maxAttempts; onDead; replay runs it again', async () => {
    let calls = 0;
    let succeed = false;
    const dead: { event: CaiboEvent; error: CallbackError }[] = [];
    const { router } = setup({
      maxAttempts: 3,
      onDead: (event, error) => dead.push({ event, error }),
      onStatus: () => {
        calls++;
        if (!succeed) throw new Error('warehouse down');
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      expect((await postSigned(server.url)).status).toBe(200);
      await until(() => dead.length === 1);
      expect(calls).toBe(3);
      expect(dead[0]!.error.type).toBe('handler.failed');
      const [entry] = await router.dead();
      expect(entry).toMatchObject({ key: '16772761082427695:265111:1:1', attempts: 3, state: 'dead' });
      expect(entry!.lastError).toContain('warehouse down');
      expect(await router.pending()).toHaveLength(0);

      succeed = true;
      expect(await router.replay(entry!.key)).toBe(true);
      expect(await router.replay('no-such-key')).toBe(false);
      await until(() => calls === 4);
      await until(async () => (await router.dead()).length === 0 && (await router.pending()).length === 0);
      // Done: a redelivery is a duplicate.
      expect((await postSigned(server.url)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(calls).toBe(4);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('answers 503 when the inbox write fails, and never calls the handler', async () => {
    let calls = 0;
    const { store, router } = setup({ onStatus: () => void calls++ });
    jest.spyOn(store, 'enqueue').mockRejectedValue(new Error('disk full'));
    const server = await serve((req, res) => router(req, res));
    try {
      const res = await postSigned(server.url);
      expect(res.status).toBe(503);
      expect(res.retryAfter).toBe('5');
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(calls).toBe(0);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('applies the ordering guard when the worker runs the event', async () => {
    const handled: string[] = [];
    const stale: string[] = [];
    const { router } = setup({
      onStatus: (event) => void handled.push(event.key),
      onStale: (event) => void stale.push(event.key),
    });
    const server = await serve((req, res) => router(req, res));
    try {
      await postSigned(server.url);
      await until(() => handled.length === 1);
      await postSigned(server.url, { transactionId: '265110', transactionStatusId: '3', paymentRequestStatusId: '2' });
      await until(() => stale.length === 1);
      expect(handled).toEqual(['16772761082427695:265111:1:1']);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('refuses a store without an inbox, and the operational methods in inline mode', async () => {
    const bare = { claim: async () => ({ status: 'done' as const }), complete: async () => undefined, release: async () => undefined };
    expect(() => caiboCallbacks({ secret: SECRET, store: bare, mode: 'deferred', onStatus: () => undefined })).toThrow(/inbox/);
    const inline = caiboCallbacks({ secret: SECRET, onStatus: () => undefined });
    await expect(inline.pending()).rejects.toThrow(/deferred/);
    await inline.close();
  });
});

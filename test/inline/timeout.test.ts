import { caiboCallbacks, MemoryStore, type CallbackContext } from '../../src';
import { deferred, postSigned, SECRET, serve, until } from './support';

describe('inline time budget (handlerTimeoutMs)', () => {
  it('answers 503 + Retry-After on expiry, aborts the signal, holds the lease, then completes a late success', async () => {
    const gate = deferred();
    let runs = 0;
    let signal: AbortSignal | undefined;
    const store = new MemoryStore();
    const router = caiboCallbacks({
      secret: SECRET,
      store,
      handlerTimeoutMs: 100,
      retryAfterSeconds: 7,
      onStatus: async (_event, context: CallbackContext) => {
        runs++;
        signal = context.signal;
        await gate.promise;
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      const first = await postSigned(server.url);
      expect(first.status).toBe(503);
      expect(first.retryAfter).toBe('7');
      expect(signal?.aborted).toBe(true);
      // Still running: a retry now is in flight, not a second run.
      expect((await postSigned(server.url)).status).toBe(409);
      gate.resolve();
      await until(async () => (await store.claim('16772761082427695:265111:1:1', { leaseMs: 1000 })).status === 'done');
      const retry = await postSigned(server.url);
      expect(retry.status).toBe(200);
      expect(runs).toBe(1);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('releases the claim when the late handler fails, so the retry runs it again', async () => {
    const gate = deferred();
    let runs = 0;
    const router = caiboCallbacks({
      secret: SECRET,
      handlerTimeoutMs: 100,
      onStatus: async () => {
        runs++;
        if (runs === 1) {
          await gate.promise;
          throw new Error('downstream failed after the budget');
        }
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      expect((await postSigned(server.url)).status).toBe(503);
      gate.resolve();
      await until(async () => {
        const res = await postSigned(server.url);
        return res.status === 200;
      });
      expect(runs).toBe(2);
      expect((await postSigned(server.url)).status).toBe(200);
      expect(runs).toBe(2);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('a handler within budget answers 200 and its signal is not aborted', async () => {
    let signal: AbortSignal | undefined;
    const router = caiboCallbacks({
      secret: SECRET,
      handlerTimeoutMs: 2_000,
      onStatus: (_event, context) => {
        signal = context.signal;
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      expect((await postSigned(server.url)).status).toBe(200);
      expect(signal).toBeInstanceOf(AbortSignal);
      expect(signal?.aborted).toBe(false);
    } finally {
      await server.close();
      await router.close();
    }
  });
});

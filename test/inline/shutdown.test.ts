import { caiboCallbacks, MemoryStore } from '../../src';
import { deferred, postSigned, SECRET, serve } from './support';

describe('router.close (graceful shutdown)', () => {
  it('waits for handlers in flight, then refuses new work with 503 and closes the store', async () => {
    const gate = deferred();
    let finished = 0;
    const store = new MemoryStore();
    const closeStore = jest.spyOn(store, 'close');
    const router = caiboCallbacks({
      secret: SECRET,
      store,
      onStatus: async () => {
        await gate.promise;
        finished++;
      },
    });
    const server = await serve((req, res) => router(req, res));
    try {
      const inFlight = postSigned(server.url);
      await new Promise((resolve) => setTimeout(resolve, 50));
      let closed = false;
      const closing = router.close({ timeoutMs: 5_000 }).then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(closed).toBe(false);
      const refused = await postSigned(server.url, { transactionId: '999' });
      expect(refused.status).toBe(503);
      expect(refused.retryAfter).toBe('5');
      gate.resolve();
      expect((await inFlight).status).toBe(200);
      await closing;
      expect(finished).toBe(1);
      expect(closeStore).toHaveBeenCalledTimes(1);
    } finally {
      await server.close();
    }
  });

  it('gives up waiting at the deadline', async () => {
    const router = caiboCallbacks({ secret: SECRET, handlerTimeoutMs: 60_000, onStatus: () => new Promise(() => undefined) });
    const server = await serve((req, res) => router(req, res));
    try {
      void postSigned(server.url).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      await router.close({ timeoutMs: 100 });
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await server.close();
    }
  });
});

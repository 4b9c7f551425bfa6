import { caiboCallbacks, MemoryStore, type CaiboEvent } from '../../src';
import type { PaymentState } from '../../src/stores/types';
import { postSigned, SECRET, serve } from './support';

const PAID = { transactionStatusId: '1', paymentRequestStatusId: '1' };
const UNPAID = { transactionId: '265110', transactionStatusId: '3', paymentRequestStatusId: '2' };

async function setup(options: { orderingGuard?: boolean } = {}) {
  const handled: CaiboEvent[] = [];
  const stale: { event: CaiboEvent; current: PaymentState }[] = [];
  const store = new MemoryStore();
  const router = caiboCallbacks({
    secret: SECRET,
    store,
    onStatus: (event) => {
      handled.push(event);
    },
    onStale: (event, current) => stale.push({ event, current }),
    ...options,
  });
  const server = await serve((req, res) => router(req, res));
  return { handled, stale, store, server, router };
}

describe('ordering guard', () => {
  it('acknowledges a late non-final state after paid without delivering it, and calls onStale', async () => {
    const { handled, stale, server, router } = await setup();
    try {
      expect((await postSigned(server.url, PAID)).status).toBe(200);
      expect((await postSigned(server.url, UNPAID)).status).toBe(200);
      expect(handled.map((e) => e.kind === 'payment' && e.paymentStatus)).toEqual(['paid']);
      expect(stale).toHaveLength(1);
      expect(stale[0]!.current).toMatchObject({ paymentStatus: 'paid', key: '16772761082427695:265111:1:1' });
      expect(stale[0]!.event.key).toBe('16772761082427695:265110:3:2');
      // The stale state is recorded as done: a redelivery is a duplicate, not another onStale.
      expect((await postSigned(server.url, UNPAID)).status).toBe(200);
      expect(stale).toHaveLength(1);
      expect(router.metrics()).toMatchObject({ received: 3, handled: 1, stale: 1, duplicate: 1 });
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('delivers non-final states that arrive before the final one, and states of other payments', async () => {
    const { handled, stale, server, router } = await setup();
    try {
      await postSigned(server.url, UNPAID);
      await postSigned(server.url, PAID);
      await postSigned(server.url, { ...UNPAID, id: '16772761082427700' });
      expect(handled.map((e) => e.key)).toEqual([
        '16772761082427695:265110:3:2',
        '16772761082427695:265111:1:1',
        '16772761082427700:265110:3:2',
      ]);
      expect(stale).toHaveLength(0);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('can be turned off: the late state is delivered', async () => {
    const { handled, stale, server, router } = await setup({ orderingGuard: false });
    try {
      await postSigned(server.url, PAID);
      await postSigned(server.url, UNPAID);
      expect(handled).toHaveLength(2);
      expect(stale).toHaveLength(0);
    } finally {
      await server.close();
      await router.close();
    }
  });
});

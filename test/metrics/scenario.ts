/**
 * A fixed run of requests with a known mix of outcomes, shared by the snapshot and the
 * Prometheus tests so both are checked against the same expected counts.
 */
import { MemoryStore } from '../../src/stores/memory';
import type { ClaimOptions, ClaimResult, CompleteOptions } from '../../src/stores/types';
import { sampleNotification } from '../../src/testing';
import { harness, post, type Harness } from '../helpers/callbacks';

/** Fails claim() for one payment and complete() for another, to produce store errors. */
class FlakyStore extends MemoryStore {
  override async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    if (key.startsWith('90000000000000002:')) throw new Error('connection refused');
    return super.claim(key, opts);
  }
  override async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    if (key.startsWith('90000000000000003:')) throw new Error('connection reset');
    return super.complete(key, token, opts);
  }
}

/** A notification for its own payment request, so no two events share a payment. */
export const payment = (n: number, overrides: Record<string, string> = {}) =>
  sampleNotification({ id: String(90000000000000000n + BigInt(n)), transactionId: String(500000 + n), ...overrides });

/** What {@link runScenario} sends, as the snapshot must count it. */
export const EXPECTED = {
  received: 14,
  handled: 4, // payments 10, 11, 12 and 3 (3's complete() fails after the handler ran)
  duplicate: 3, // payment 10 twice more, 11 once more
  rejected: 5, // invalid + missing signature, GET on /caibo, invalid payload, in flight
  failed: 2, // handler threw, claim failed
  reasons: {
    'signature.invalid': 1,
    'signature.missing': 1,
    'method.not_allowed': 1,
    'payload.invalid': 1,
    'event.in_flight': 1,
    'handler.failed': 1,
    'store.unavailable': 2,
  },
  perRoute: { '/caibo': 12, '/caibowh': 2, '/caibo-gateway': 0, '/3ds': 0 },
};

export async function runScenario(): Promise<Harness> {
  let releaseSlow: () => void = () => undefined;
  let slowEntered: () => void = () => undefined;
  const entered = new Promise<void>((resolve) => (slowEntered = resolve));
  const h: Harness = await harness('express5', {
    store: new FlakyStore(),
    onStatus: async (event) => {
      if (event.kind !== 'payment') return;
      if (event.paymentRequestId === '90000000000000001') throw new Error('order table locked');
      if (event.paymentRequestId === '90000000000000012') {
        slowEntered();
        await new Promise<void>((resolve) => (releaseSlow = resolve));
      }
    },
  });

  await post(h, '/callbacks/caibo', payment(10)).expect(200);
  await post(h, '/callbacks/caibo', payment(10)).expect(200);
  await post(h, '/callbacks/caibowh', payment(10)).expect(200);
  await post(h, '/callbacks/caibo', payment(11)).expect(200);
  await post(h, '/callbacks/caibowh', payment(11)).expect(200);
  await post(h, '/callbacks/caibo', payment(20), { secret: 'not-the-secret' }).expect(401);
  await post(h, '/callbacks/caibo', payment(21), { signature: null }).expect(401);
  await h.http().get('/callbacks/caibo').expect(405);
  await post(h, '/callbacks/caibo', payment(22, { id: 'not-an-id' })).expect(400);
  await post(h, '/callbacks/caibo', payment(1)).expect(500);
  await post(h, '/callbacks/caibo', payment(2)).expect(503);
  await post(h, '/callbacks/caibo', payment(3)).expect(200);

  // The first copy of payment 12 holds its claim while the second arrives: 409 in flight.
  const first = post(h, '/callbacks/caibo', payment(12)).then((res) => res.status);
  await entered;
  await post(h, '/callbacks/caibo', payment(12)).expect(409);
  releaseSlow();
  expect(await first).toBe(200);

  // The diagnostic routes are not callbacks: not counted.
  await post(h, '/callbacks/test/form', payment(30)).expect(200);
  return h;
}

/**
 * The synchronous path: the built-in MemoryStore answers the pipeline without promises, and a
 * handler that returns without one finishes at once. These tests pin that this path keeps every
 * guarantee of the promise path, and that a store wrapper or subclass still sees every call.
 */
import http from 'node:http';
import request from 'supertest';
import { caiboCallbacks, type CaiboCallbacksOptions } from '../../src';
import type { CaiboEvent } from '../../src/core/events';
import { MemoryStore } from '../../src/stores/memory';
import type { ClaimOptions, ClaimResult, CompleteOptions } from '../../src/stores/types';
import { createApp, FRAMEWORKS, listen, SECRET, signed } from '../helpers/callbacks';
import { sampleNotification } from '../../src/testing';

const PAID = sampleNotification({ id: '16772761082427601', transactionId: '9001', paymentRequestStatusId: '1', transactionStatusId: '1' });
const UNPAID = sampleNotification({ id: '16772761082427601', transactionId: '9000', paymentRequestStatusId: '2', transactionStatusId: '2' });

async function serve(framework: (typeof FRAMEWORKS)[number], options: Partial<CaiboCallbacksOptions> & Pick<CaiboCallbacksOptions, 'onStatus'>) {
  const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1', '::1', '::ffff:127.0.0.1'], ...options });
  const app = createApp(framework);
  app.use('/callbacks', router);
  const { server, url } = await listen(app as unknown as http.RequestListener);
  const send = (fields: Record<string, string>) => {
    const { body, headers } = signed(fields);
    return request(url).post('/callbacks/caibo').set(headers).send(body);
  };
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await router.close();
  };
  return { router, send, close };
}

describe.each(FRAMEWORKS)('synchronous handler on the memory store (%s)', (framework) => {
  it('runs a new event once, answers a redelivery as a duplicate, and records the key and final state', async () => {
    const store = new MemoryStore();
    const seen: CaiboEvent[] = [];
    const duplicates: CaiboEvent[] = [];
    const s = await serve(framework, { store, onStatus: (event) => void seen.push(event), onDuplicate: (event) => void duplicates.push(event) });
    try {
      const first = await s.send(PAID);
      expect([first.status, first.text]).toEqual([200, 'OK']);
      expect(first.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'content-length': '2', 'cache-control': 'no-store' });
      const again = await s.send(PAID);
      expect([again.status, again.text]).toEqual([200, 'OK']);
      expect(seen).toHaveLength(1);
      expect(duplicates).toHaveLength(1);
      const key = seen[0]!.key;
      await expect(store.claim(key, { leaseMs: 1000 })).resolves.toEqual({ status: 'done' });
      await expect(store.getPaymentState('16772761082427601')).resolves.toMatchObject({ key, paymentStatus: 'paid' });
      expect(s.router.metrics()).toMatchObject({ received: 2, handled: 1, duplicate: 1 });
    } finally {
      await s.close();
    }
  });

  it('acknowledges a non-final event that arrives after the final one without calling the handler', async () => {
    const stale: CaiboEvent[] = [];
    const seen: CaiboEvent[] = [];
    const s = await serve(framework, { onStatus: (event) => void seen.push(event), onStale: (event) => void stale.push(event) });
    try {
      expect((await s.send(PAID)).status).toBe(200);
      expect((await s.send(UNPAID)).status).toBe(200);
      expect(seen.map((e) => e.kind === 'payment' && e.paymentStatus)).toEqual(['paid']);
      expect(stale.map((e) => e.kind === 'payment' && e.paymentStatus)).toEqual(['unpaid']);
      // The stale event is recorded as done: its redelivery is a duplicate, still not handled.
      expect((await s.send(UNPAID)).status).toBe(200);
      expect(stale).toHaveLength(1);
      expect(s.router.metrics()).toMatchObject({ handled: 1, stale: 1, duplicate: 1 });
    } finally {
      await s.close();
    }
  });

  it('answers 500 when the handler throws, releases the claim, and runs the redelivery', async () => {
    let calls = 0;
    const s = await serve(framework, {
      onStatus: () => {
        calls++;
        if (calls === 1) throw new Error('database down');
      },
    });
    try {
      const failed = await s.send(PAID);
      expect(failed.status).toBe(500);
      const retried = await s.send(PAID);
      expect([retried.status, retried.text]).toEqual([200, 'OK']);
      expect(calls).toBe(2);
      expect(s.router.metrics()).toMatchObject({ handled: 1, failed: 1 });
    } finally {
      await s.close();
    }
  });
});

describe('the handler context', () => {
  it('shows provider and clientIp, and makes the abort signal when it is first read', async () => {
    const seen: { keys: string[]; spread: Record<string, unknown>; aborted: boolean }[] = [];
    const s = await serve('express5', {
      onStatus: (_event, context) => {
        seen.push({ keys: Object.keys(context), spread: { ...context }, aborted: context.signal!.aborted });
      },
    });
    try {
      expect((await s.send(PAID)).status).toBe(200);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.keys.sort()).toEqual(['clientIp', 'provider']);
      expect(seen[0]!.spread).toEqual({ provider: 'caibo', clientIp: expect.stringMatching(/127\.0\.0\.1/) });
      expect(seen[0]!.aborted).toBe(false);
    } finally {
      await s.close();
    }
  });
});

describe('MemoryStore.syncOps', () => {
  it('offers all five dedupe and ordering-guard methods of an unmodified store, with the same effects', () => {
    const store = new MemoryStore();
    const ops = store.syncOps();
    expect(Object.keys(ops).sort()).toEqual(['claim', 'complete', 'getPaymentState', 'release', 'setPaymentState']);
    const claim = ops.claim!('k', { leaseMs: 1000 }) as ClaimResult;
    expect(claim.status).toBe('claimed');
    expect(ops.claim!('k', { leaseMs: 1000 })).toEqual({ status: 'in_flight' });
    ops.complete!('k', (claim as { token: string }).token, { retentionMs: 1000 });
    expect(ops.claim!('k', { leaseMs: 1000 })).toEqual({ status: 'done' });
    const state = { key: 'k', paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: '2026-11-27T00:00:00.000Z' };
    ops.setPaymentState!('p', state, { retentionMs: 1000 });
    expect(ops.getPaymentState!('p')).toEqual(state);
  });

  it('leaves out the methods a subclass or the instance replaced, so the router calls those', async () => {
    const calls: string[] = [];
    class CountingStore extends MemoryStore {
      override async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
        calls.push(`claim ${key}`);
        return super.claim(key, opts);
      }
    }
    const store = new CountingStore();
    const originalComplete = store.complete.bind(store);
    store.complete = async (key: string, token: string, opts: CompleteOptions) => {
      calls.push(`complete ${key}`);
      return originalComplete(key, token, opts);
    };
    expect(Object.keys(store.syncOps()).sort()).toEqual(['getPaymentState', 'release', 'setPaymentState']);

    let handled = 0;
    const s = await serve('express5', { store, onStatus: () => void handled++ });
    try {
      expect((await s.send(PAID)).status).toBe(200);
      expect((await s.send(PAID)).status).toBe(200);
      const key = '16772761082427601:9001:1:1';
      expect(calls).toEqual([`claim ${key}`, `complete ${key}`, `claim ${key}`]);
      expect(handled).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('answers 503 store.unavailable, without calling the handler, when a synchronous claim throws', async () => {
    class BrokenStore extends MemoryStore {
      override syncOps() {
        return {
          ...super.syncOps(),
          claim: (): ClaimResult => {
            throw new Error('corrupt state');
          },
        };
      }
    }
    const errors: string[] = [];
    let handled = 0;
    const s = await serve('express5', { store: new BrokenStore(), onStatus: () => void handled++, onError: (error) => void errors.push(error.type) });
    try {
      const res = await s.send(PAID);
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(handled).toBe(0);
      expect(errors).toEqual(['store.unavailable']);
    } finally {
      await s.close();
    }
  });
});

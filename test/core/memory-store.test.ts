import { MemoryStore } from '../../src/stores/memory';

const LEASE = { leaseMs: 1_000 };
const KEEP = { retentionMs: 60_000 };

async function claimToken(store: MemoryStore, key: string, leaseMs = LEASE.leaseMs): Promise<string> {
  const result = await store.claim(key, { leaseMs });
  if (result.status !== 'claimed') throw new Error(`expected ${key} to be claimable, got ${result.status}`);
  return result.token;
}

async function completeKey(store: MemoryStore, key: string): Promise<void> {
  await store.complete(key, await claimToken(store, key), KEEP);
}

describe('MemoryStore', () => {
  let store: MemoryStore;
  afterEach(async () => {
    await store.close();
    jest.useRealTimers();
  });

  describe('claim / complete / release', () => {
    beforeEach(() => {
      store = new MemoryStore();
    });

    it('claims an absent key, then reports in_flight, then done once completed', async () => {
      const token = await claimToken(store, 'k');
      expect(await store.claim('k', LEASE)).toEqual({ status: 'in_flight' });
      await store.complete('k', token, KEEP);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'done' });
      expect(store.entryCount).toBe(1);
    });

    it('lets the next delivery claim a released key', async () => {
      const token = await claimToken(store, 'k');
      await store.release('k', token);
      expect(store.entryCount).toBe(0);
      expect((await store.claim('k', LEASE)).status).toBe('claimed');
    });

    it('gives exactly one of many concurrent claims', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.claim('k', LEASE)));
      expect(results.filter((r) => r.status === 'claimed')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'in_flight')).toHaveLength(49);
    });

    it('fences by token: a wrong token neither completes nor releases', async () => {
      const token = await claimToken(store, 'k');
      await store.complete('k', 'not-the-token', KEEP);
      await store.release('k', 'not-the-token');
      expect(await store.claim('k', LEASE)).toEqual({ status: 'in_flight' });
      await store.complete('k', token, KEEP);
      // Releasing a completed key changes nothing.
      await store.release('k', token);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'done' });
    });

    it('refuses a bad maxEntries with a TypeError', () => {
      expect(() => new MemoryStore({ maxEntries: 0 })).toThrow(TypeError);
      expect(() => new MemoryStore({ maxEntries: 1.5 })).toThrow(/positive integer/);
    });
  });

  describe('leases and retention (fake timers)', () => {
    beforeEach(() => {
      jest.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z') });
      store = new MemoryStore({ sweepIntervalMs: 10_000 });
    });

    it('lets another delivery take over once a lease expires, and fences the slow one', async () => {
      const slow = await claimToken(store, 'k', 1_000);
      jest.advanceTimersByTime(999);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'in_flight' });
      jest.advanceTimersByTime(1);
      const fast = await claimToken(store, 'k');
      expect(fast).not.toBe(slow);
      // The slow worker finishing late must not clobber the new lease.
      await store.complete('k', slow, KEEP);
      await store.release('k', slow);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'in_flight' });
      await store.complete('k', fast, KEEP);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'done' });
    });

    it('forgets a completed key after retentionMs', async () => {
      await store.complete('k', await claimToken(store, 'k'), { retentionMs: 5_000 });
      jest.advanceTimersByTime(4_999);
      expect(await store.claim('k', LEASE)).toEqual({ status: 'done' });
      jest.advanceTimersByTime(1);
      expect((await store.claim('k', LEASE)).status).toBe('claimed');
    });

    it('sweeps expired entries on its timer', async () => {
      await store.complete('a', await claimToken(store, 'a'), { retentionMs: 1_000 });
      await claimToken(store, 'b', 1_000);
      await store.complete('c', await claimToken(store, 'c'), { retentionMs: 60_000 });
      expect(store.entryCount).toBe(3);
      jest.advanceTimersByTime(10_000);
      expect(store.entryCount).toBe(1);
      expect(await store.claim('c', LEASE)).toEqual({ status: 'done' });
    });
  });

  describe('timers', () => {
    it('unrefs its sweep timer so it never keeps the process alive, and clears it on close', async () => {
      store = new MemoryStore();
      const timer = store['timer'];
      expect(timer).toBeDefined();
      expect(timer!.hasRef()).toBe(false);
      await store.close();
      expect(store['timer']).toBeUndefined();
    });
  });

  describe('bounded size', () => {
    it('evicts the oldest completed keys first', async () => {
      store = new MemoryStore({ maxEntries: 3 });
      for (const key of ['a', 'b', 'c', 'd']) await completeKey(store, key);
      expect(store.entryCount).toBe(3);
      expect((await store.claim('a', LEASE)).status).toBe('claimed');
      for (const key of ['b', 'c', 'd']) expect(await store.claim(key, LEASE)).toEqual({ status: 'done' });
    });

    it('never evicts a key in flight, however many keys complete', async () => {
      store = new MemoryStore({ maxEntries: 2 });
      const inFlight = await claimToken(store, 'slow', 60_000);
      for (let i = 0; i < 10; i++) await completeKey(store, `k${i}`);
      expect(await store.claim('slow', LEASE)).toEqual({ status: 'in_flight' });
      expect(store.entryCount).toBe(3);
      await store.complete('slow', inFlight, KEEP);
      expect(await store.claim('slow', LEASE)).toEqual({ status: 'done' });
      // 'slow' is now the newest completed key; the oldest remaining completed key goes.
      expect(await store.claim('k9', LEASE)).toEqual({ status: 'done' });
      expect((await store.claim('k8', LEASE)).status).toBe('claimed');
    });

    it('does not evict a key re-claimed after its retention ended when its old ring slot comes up', async () => {
      jest.useFakeTimers({ now: 0 });
      store = new MemoryStore({ maxEntries: 2 });
      await store.complete('a', await claimToken(store, 'a'), { retentionMs: 10 });
      jest.advanceTimersByTime(20);
      // 'a' expired; a redelivery claims it again and is still running.
      const token = await claimToken(store, 'a', 60_000);
      await completeKey(store, 'b');
      await completeKey(store, 'c');
      expect(await store.claim('a', LEASE)).toEqual({ status: 'in_flight' });
      await store.complete('a', token, KEEP);
      expect(await store.claim('a', LEASE)).toEqual({ status: 'done' });
    });

    it('keeps at most maxEntries payment states, forgetting the least recently written first', async () => {
      store = new MemoryStore({ maxEntries: 3 });
      const state = (key: string) => ({ key, paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: '2026-11-27T09:00:00.000Z' });
      for (const id of ['p1', 'p2', 'p3']) await store.setPaymentState(id, state(`${id}:a`), KEEP);
      // Rewriting p1 makes it the newest, so p2 is now the oldest.
      await store.setPaymentState('p1', state('p1:b'), KEEP);
      await store.setPaymentState('p4', state('p4:a'), KEEP);
      expect(await store.getPaymentState('p2')).toBeNull();
      expect(await store.getPaymentState('p1')).toEqual(state('p1:b'));
      expect(await store.getPaymentState('p3')).toEqual(state('p3:a'));
      expect(await store.getPaymentState('p4')).toEqual(state('p4:a'));
      for (let i = 0; i < 100; i++) await store.setPaymentState(`q${i}`, state(`q${i}:a`), KEEP);
      expect(await store.getPaymentState('q99')).toEqual(state('q99:a'));
      expect(await store.getPaymentState('q97')).toEqual(state('q97:a'));
      expect(await store.getPaymentState('q96')).toBeNull();
      expect(await store.getPaymentState('p1')).toBeNull();
    });

    it('gives back each payment state exactly, whatever its fields hold (separators, a leading [, non-ASCII)', async () => {
      store = new MemoryStore({ maxEntries: 10 });
      const odd = [
        { key: '[not json', paymentStatus: '4', transactionStatus: '1', receivedAt: '2026-11-27T09:00:00.000Z' },
        { key: 'payment:1\n2', paymentStatus: '4\n', transactionStatus: '\n', receivedAt: 'x\ny' },
        { key: 'paiement-réussi-€', paymentStatus: 'payé', transactionStatus: '', receivedAt: '' },
        { key: '["a","b","c","d"]', paymentStatus: '"', transactionStatus: '\\', receivedAt: '\u0000' },
        { key: 'x'.repeat(300), paymentStatus: '4', transactionStatus: '1', receivedAt: '2026-11-27T09:00:00.000Z' },
      ];
      for (const [i, state] of odd.entries()) await store.setPaymentState(`p${i}`, state, KEEP);
      for (const [i, state] of odd.entries()) expect(await store.getPaymentState(`p${i}`)).toEqual(state);
    });

    it('stays bounded under many keys', async () => {
      store = new MemoryStore({ maxEntries: 100 });
      for (let i = 0; i < 1_000; i++) await completeKey(store, `key-${i}`);
      expect(store.entryCount).toBe(100);
      expect(await store.claim('key-999', LEASE)).toEqual({ status: 'done' });
      expect(await store.claim('key-900', LEASE)).toEqual({ status: 'done' });
      expect((await store.claim('key-899', LEASE)).status).toBe('claimed');
    });
  });
});

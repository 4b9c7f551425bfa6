import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CallbackStore, ClaimResult, PaymentState, PaymentStateStore } from '../stores/types';

/** The assertions the suite makes; Jest's and Vitest's `expect` fit it as they are. */
export type ConformanceExpect = (actual: unknown) => {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
};

/** Test-runner `describe`: Jest, Vitest, Mocha and `node:test` all fit. */
export type ConformanceDescribe = (name: string, fn: () => void) => unknown;
/** Test-runner `it`/`test`: Jest, Vitest, Mocha and `node:test` all fit. */
export type ConformanceIt = (name: string, fn: () => Promise<void>) => unknown;

/** Durations the expiry tests use, and how the suite waits them out. */
export interface ConformanceTiming {
  /**
   * The short lease the expiry and fencing tests claim with, in milliseconds. Server-side expiry
   * (Redis, PostgreSQL) needs real time: 150–300 ms keeps the suite fast and stable.
   */
  leaseMs: number;
  /** The short retention the retention-expiry test completes with, in milliseconds. */
  retentionMs: number;
  /**
   * Extra time waited after a lease or retention should have ended, for clock granularity and
   * expiry lag. Defaults to `50`.
   */
  slackMs?: number;
  /**
   * How the suite lets time pass. Defaults to a real timer. An in-process store may pass a
   * fake-clock advance instead (`async (ms) => { jest.advanceTimersByTime(ms); }`).
   */
  sleep?: (ms: number) => Promise<void>;
}

/** Options for {@link runStoreConformance}. */
export interface StoreConformanceOptions<S extends CallbackStore = CallbackStore> {
  /** The suite's name, shown by the runner: `"RedisStore (ioredis)"`. */
  name: string;
  /** The runner's `describe`. */
  describe: ConformanceDescribe;
  /** The runner's `it` (or `test`). */
  it: ConformanceIt;
  /**
   * The runner's `expect`. Defaults to one built on `node:assert/strict`, for runners that have
   * none (`node:test`, Mocha).
   */
  expect?: ConformanceExpect;
  /**
   * Makes a store ready for one test. Its `init()`, if any, is called by the suite. Keys are
   * unique per test run, so stores made for different tests may share one backend (one Redis
   * prefix, one table).
   */
  createStore: () => S | Promise<S>;
  /**
   * Undoes `createStore` after each test, after the suite has called the store's `close()`:
   * drop the table, end the connection. Optional.
   */
  cleanup?: (store: S) => void | Promise<void>;
  /** Durations for the expiry tests. */
  timing: ConformanceTiming;
  /** How many claims of one key race in the concurrency test. Defaults to `25`. */
  concurrency?: number;
  /**
   * Also check `getPaymentState`/`setPaymentState` (the ordering guard's optional store methods).
   * Set it when the store implements them. Defaults to `false`.
   */
  paymentStates?: boolean;
}

/** How long the tests that must not see an expiry hold their leases and keys. */
const LONG_MS = 60_000;

const assertExpect: ConformanceExpect = (actual) => ({
  toBe: (expected) => assert.equal(actual, expected),
  toEqual: (expected) => assert.deepEqual(actual, expected),
});

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Registers a suite that checks a {@link CallbackStore} against the whole store contract: claim of
 * an absent key, duplicates in flight and after completion, lease expiry and re-claim, fencing by
 * token, release, retention expiry, concurrent claims of one key and odd keys.
 *
 * It takes the test runner's functions, so it runs under any runner:
 * ```ts
 * runStoreConformance({
 *   name: 'MyStore', describe, it, expect,
 *   createStore: () => new MyStore({ prefix: `test:${randomUUID()}:` }),
 *   timing: { leaseMs: 200, retentionMs: 200 },
 * });
 * ```
 */
export function runStoreConformance<S extends CallbackStore>(options: StoreConformanceOptions<S>): void {
  const { name, describe, it, createStore, cleanup, timing } = options;
  const expect = options.expect ?? assertExpect;
  const sleep = timing.sleep ?? realSleep;
  const slackMs = timing.slackMs ?? 50;
  const concurrency = options.concurrency ?? 25;
  const { leaseMs, retentionMs } = timing;
  // Keys are unique to this run so that stores sharing a backend across tests never collide.
  const run = randomUUID();
  let counter = 0;
  const keyFor = (label: string): string => `conformance:${run}:${++counter}:${label}`;

  /** Runs `body` with a fresh store, closing and cleaning it up even when an assertion fails. */
  const withStore = async (body: (store: S) => Promise<void>): Promise<void> => {
    const store = await createStore();
    try {
      await store.init?.();
      await body(store);
    } finally {
      try {
        await store.close?.();
      } finally {
        await cleanup?.(store);
      }
    }
  };

  const test = (title: string, body: (store: S) => Promise<void>): void => {
    it(title, () => withStore(body));
  };

  /** Claims `key` expecting `claimed`, and returns the token. */
  const claimToken = async (store: S, key: string, lease = LONG_MS): Promise<string> => {
    const result: ClaimResult = await store.claim(key, { leaseMs: lease });
    expect(result.status).toBe('claimed');
    const token = result.status === 'claimed' ? result.token : undefined;
    expect(typeof token === 'string' && token.length > 0).toBe(true);
    return token as string;
  };

  const statusOf = async (store: S, key: string, lease = LONG_MS): Promise<ClaimResult['status']> =>
    (await store.claim(key, { leaseMs: lease })).status;

  describe(`${name}: store conformance`, () => {
    test('claims an absent key, with a token', async (store) => {
      await claimToken(store, keyFor('absent'));
    });

    test('answers in_flight to a duplicate claim while the lease is live', async (store) => {
      const key = keyFor('in-flight');
      await claimToken(store, key);
      expect(await store.claim(key, { leaseMs: LONG_MS })).toEqual({ status: 'in_flight' });
      expect(await store.claim(key, { leaseMs: LONG_MS })).toEqual({ status: 'in_flight' });
    });

    test('answers done to a claim after completion, and a second complete changes nothing', async (store) => {
      const key = keyFor('done');
      const token = await claimToken(store, key);
      await store.complete(key, token, { retentionMs: LONG_MS });
      expect(await store.claim(key, { leaseMs: LONG_MS })).toEqual({ status: 'done' });
      await store.complete(key, token, { retentionMs: LONG_MS });
      expect(await statusOf(store, key)).toBe('done');
    });

    test('keeps a completed key done even when claimed with a short lease and the lease time passes', async (store) => {
      const key = keyFor('done-short-lease');
      const token = await claimToken(store, key, leaseMs);
      await store.complete(key, token, { retentionMs: LONG_MS });
      expect(await statusOf(store, key, leaseMs)).toBe('done');
      await sleep(leaseMs + slackMs);
      expect(await statusOf(store, key, leaseMs)).toBe('done');
    });

    test('lets a new claim take over once the lease has expired, with a new token', async (store) => {
      const key = keyFor('lease-expiry');
      const first = await claimToken(store, key, leaseMs);
      await sleep(leaseMs + slackMs);
      const second = await claimToken(store, key);
      expect(second === first).toBe(false);
      expect(await statusOf(store, key)).toBe('in_flight');
    });

    test('fences: a stale token cannot complete or release a lease that was taken over', async (store) => {
      const key = keyFor('fencing');
      const stale = await claimToken(store, key, leaseMs);
      await sleep(leaseMs + slackMs);
      const current = await claimToken(store, key);

      await store.complete(key, stale, { retentionMs: LONG_MS });
      expect(await statusOf(store, key)).toBe('in_flight');
      await store.release(key, stale);
      expect(await statusOf(store, key)).toBe('in_flight');

      await store.complete(key, current, { retentionMs: LONG_MS });
      expect(await statusOf(store, key)).toBe('done');
      // The stale holder waking up late still changes nothing.
      await store.release(key, stale);
      await store.complete(key, stale, { retentionMs: 1 });
      await sleep(slackMs);
      expect(await statusOf(store, key)).toBe('done');
    });

    test('ignores complete and release with a token that never held the lease', async (store) => {
      const key = keyFor('wrong-token');
      const token = await claimToken(store, key);
      await store.complete(key, `${token}x`, { retentionMs: LONG_MS });
      expect(await statusOf(store, key)).toBe('in_flight');
      await store.release(key, 'not-a-token');
      expect(await statusOf(store, key)).toBe('in_flight');
    });

    test('release lets the next claim take the key at once', async (store) => {
      const key = keyFor('release');
      const first = await claimToken(store, key);
      await store.release(key, first);
      const second = await claimToken(store, key);
      expect(second === first).toBe(false);
    });

    test('release after completion does not undo it', async (store) => {
      const key = keyFor('release-after-complete');
      const token = await claimToken(store, key);
      await store.complete(key, token, { retentionMs: LONG_MS });
      await store.release(key, token);
      expect(await statusOf(store, key)).toBe('done');
    });

    test('complete and release of an absent key change nothing and do not throw', async (store) => {
      const key = keyFor('absent-ops');
      await store.release(key, 'no-such-token');
      await store.complete(key, 'no-such-token', { retentionMs: LONG_MS });
      await claimToken(store, key);
    });

    test('forgets a completed key once its retention has passed', async (store) => {
      const key = keyFor('retention');
      const token = await claimToken(store, key);
      await store.complete(key, token, { retentionMs });
      expect(await statusOf(store, key)).toBe('done');
      await sleep(retentionMs + slackMs);
      await claimToken(store, key);
    });

    test(`gives exactly one of ${concurrency} concurrent claims of one key`, async (store) => {
      const key = keyFor('race');
      const results = await Promise.all(Array.from({ length: concurrency }, () => store.claim(key, { leaseMs: LONG_MS })));
      const claimed = results.filter((r) => r.status === 'claimed');
      expect(claimed.length).toBe(1);
      expect(results.filter((r) => r.status === 'in_flight').length).toBe(concurrency - 1);
    });

    test('after a concurrent race and completion, every later claim is done', async (store) => {
      const key = keyFor('race-done');
      const results = await Promise.all(Array.from({ length: concurrency }, () => store.claim(key, { leaseMs: LONG_MS })));
      const winner = results.find((r) => r.status === 'claimed');
      expect(winner?.status).toBe('claimed');
      if (winner?.status !== 'claimed') return;
      await store.complete(key, winner.token, { retentionMs: LONG_MS });
      const after = await Promise.all(Array.from({ length: concurrency }, () => statusOf(store, key)));
      expect(after.every((s) => s === 'done')).toBe(true);
    });

    test('claims distinct keys independently, concurrently', async (store) => {
      const keys = Array.from({ length: concurrency }, (_, i) => keyFor(`many-${i}`));
      const results = await Promise.all(keys.map((key) => store.claim(key, { leaseMs: LONG_MS })));
      expect(results.every((r) => r.status === 'claimed')).toBe(true);
      const tokens = new Set(results.map((r) => (r.status === 'claimed' ? r.token : '')));
      expect(tokens.size).toBe(keys.length);
    });

    test('keeps long and odd keys exact and distinct', async (store) => {
      const base = keyFor('odd');
      const odd = [
        `${base}:caibo:16772761082427695:265111:1:1`,
        `${base}:ünïcødé-支付-🙂`,
        `${base}:e\u0301`, // NFD; must not collide with the NFC form below
        `${base}:\u00e9`,
        `${base}:${'x'.repeat(500 - base.length - 1)}`,
        `${base}:${'x'.repeat(500 - base.length - 2)}`,
        `${base}:quote'"\\;-- %_*?[]{}`,
        `${base}: spaced `,
        `${base}:\ttab\nnewline`,
      ];
      expect(new Set(odd).size).toBe(odd.length);
      expect(odd[4]!.length).toBe(500);
      const tokens = new Map<string, string>();
      for (const key of odd) tokens.set(key, await claimToken(store, key));
      for (const key of odd) expect(await statusOf(store, key)).toBe('in_flight');
      // Completing one key leaves every near neighbour untouched.
      await store.complete(odd[2]!, tokens.get(odd[2]!)!, { retentionMs: LONG_MS });
      await store.complete(odd[4]!, tokens.get(odd[4]!)!, { retentionMs: LONG_MS });
      const statuses = await Promise.all(odd.map((key) => statusOf(store, key)));
      expect(statuses).toEqual(odd.map((_, i) => (i === 2 || i === 4 ? 'done' : 'in_flight')));
      // A prefix of a held key is a different key.
      await claimToken(store, base);
    });

    if (options.paymentStates) {
      const asStates = (store: S): PaymentStateStore => {
        const candidate = store as Partial<PaymentStateStore>;
        expect(typeof candidate.getPaymentState === 'function' && typeof candidate.setPaymentState === 'function').toBe(true);
        return store as unknown as PaymentStateStore;
      };
      const state = (key: string, paymentStatus = 'paid'): PaymentState => ({
        key,
        paymentStatus,
        transactionStatus: 'approved',
        receivedAt: '2026-01-02T03:04:05.678Z',
      });

      test('payment states: absent is null; set, read back and overwritten per payment request', async (store) => {
        const states = asStates(store);
        const a = keyFor('pr-a');
        const b = keyFor('pr-b');
        expect(await states.getPaymentState(a)).toBe(null);
        await states.setPaymentState(a, state('k1'), { retentionMs: LONG_MS });
        expect(await states.getPaymentState(a)).toEqual(state('k1'));
        expect(await states.getPaymentState(b)).toBe(null);
        await states.setPaymentState(a, state('k2', 'cancelled'), { retentionMs: LONG_MS });
        expect(await states.getPaymentState(a)).toEqual(state('k2', 'cancelled'));
        // Claiming an event key never touches payment states, nor the reverse.
        await claimToken(store, a);
        expect(await states.getPaymentState(a)).toEqual(state('k2', 'cancelled'));
      });

      test('payment states: forgotten once their retention has passed', async (store) => {
        const states = asStates(store);
        const id = keyFor('pr-expiry');
        await states.setPaymentState(id, state('k1'), { retentionMs });
        expect(await states.getPaymentState(id)).toEqual(state('k1'));
        await sleep(retentionMs + slackMs);
        expect(await states.getPaymentState(id)).toBe(null);
      });
    }
  });
}

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CallbackStore, ClaimResult, InboxRecord, InboxStore, LeasedRecord, PaymentState, PaymentStateStore } from '../stores/types';

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
  /**
   * With `paymentStates`, also check `completeWithState` (complete a key and record its final
   * state in one step). Set it when the store implements it. Defaults to `false`.
   */
  completeWithState?: boolean;
  /**
   * Also check the deferred-mode inbox (`enqueue`, `lease`, `ack`, `fail`, `list`, `replay`).
   * Set it when the store implements them. `lease` takes any due record, so for these checks
   * `createStore` must give each test an inbox of its own (a fresh prefix, table or file); the
   * suite fails with a message saying so when it finds records it did not write. Defaults to `false`.
   */
  inbox?: boolean;
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
 * token, release, retention expiry, concurrent claims of one key and odd keys. With `inbox: true`
 * it also checks the deferred-mode inbox: duplicates in every state, concurrent enqueues, due
 * times, lease limits and expiry, fencing of ack and fail, retries and dead records, listing,
 * replay and the retention of done records.
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

    // Stores that group concurrent operations into one statement (group commit) see here a
    // batch holding several copies of several keys, in mixed order, with stale tokens among them.
    test('gives one claim per key when copies of many keys race, and completes each by its token only', async (store) => {
      const keys = Array.from({ length: 8 }, (_, i) => keyFor(`mixed-${i}`));
      const order = Array.from({ length: 4 }, () => keys).flat().map((key, i) => ({ key, i }));
      order.sort((a, b) => ((a.i * 7919) % 31) - ((b.i * 7919) % 31));
      const results = await Promise.all(order.map(({ key }) => store.claim(key, { leaseMs: LONG_MS })));
      const tokens = new Map<string, string>();
      results.forEach((result, i) => {
        if (result.status === 'claimed') {
          expect(tokens.has(order[i]!.key)).toBe(false);
          tokens.set(order[i]!.key, result.token);
        } else {
          expect(result.status).toBe('in_flight');
        }
      });
      expect([...tokens.keys()].sort()).toEqual([...keys].sort());
      // Stale tokens for every key, and the real ones for all but the last key, all at once.
      const kept = keys.at(-1)!;
      await Promise.all([
        ...keys.map((key) => store.complete(key, 'not-the-token', { retentionMs: LONG_MS })),
        ...keys.filter((key) => key !== kept).map((key) => store.complete(key, tokens.get(key)!, { retentionMs: LONG_MS })),
      ]);
      const after = await Promise.all(keys.map((key) => statusOf(store, key)));
      expect(after).toEqual(keys.map((key) => (key === kept ? 'in_flight' : 'done')));
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

      if (options.completeWithState) {
        const withCompleteWithState = (store: S): Required<PaymentStateStore> => {
          const states = asStates(store);
          expect(typeof states.completeWithState).toBe('function');
          return states as Required<PaymentStateStore>;
        };

        test('payment states: completeWithState completes the key (token-fenced) and records the state', async (store) => {
          const states = withCompleteWithState(store);
          const key = keyFor('cws');
          const id = keyFor('pr-cws');
          const token = await claimToken(store, key);
          await states.completeWithState(key, token, id, state(key), { retentionMs: LONG_MS });
          expect(await statusOf(store, key)).toBe('done');
          expect(await states.getPaymentState(id)).toEqual(state(key));
          // A stale token completes nothing; the state is still recorded, as setPaymentState would.
          const other = keyFor('cws-fenced');
          await claimToken(store, other);
          await states.completeWithState(other, 'not-the-token', id, state(other, 'cancelled'), { retentionMs: LONG_MS });
          expect(await statusOf(store, other)).toBe('in_flight');
          expect(await states.getPaymentState(id)).toEqual(state(other, 'cancelled'));
        });

        test('payment states: concurrent completeWithState calls each complete their key and record their state', async (store) => {
          const states = withCompleteWithState(store);
          const keys = Array.from({ length: 12 }, (_, i) => keyFor(`cws-many-${i}`));
          const ids = keys.map((_, i) => keyFor(`pr-cws-many-${i}`));
          const tokens = await Promise.all(keys.map((key) => claimToken(store, key)));
          await Promise.all(keys.map((key, i) => states.completeWithState(key, tokens[i]!, ids[i]!, state(key), { retentionMs: LONG_MS })));
          expect(await Promise.all(keys.map((key) => statusOf(store, key)))).toEqual(keys.map(() => 'done'));
          expect(await Promise.all(ids.map((id) => states.getPaymentState(id)))).toEqual(keys.map((key) => state(key)));
        });
      }

      test('payment states: forgotten once their retention has passed', async (store) => {
        const states = asStates(store);
        const id = keyFor('pr-expiry');
        await states.setPaymentState(id, state('k1'), { retentionMs });
        expect(await states.getPaymentState(id)).toEqual(state('k1'));
        await sleep(retentionMs + slackMs);
        expect(await states.getPaymentState(id)).toBe(null);
      });
    }

    if (options.inbox) {
      registerInboxChecks({ test, expect, sleep, keyFor, leaseMs, retentionMs, slackMs, concurrency });
    }
  });
}

interface InboxCheckContext<S extends CallbackStore> {
  test: (title: string, body: (store: S) => Promise<void>) => void;
  expect: ConformanceExpect;
  sleep: (ms: number) => Promise<void>;
  keyFor: (label: string) => string;
  leaseMs: number;
  retentionMs: number;
  slackMs: number;
  concurrency: number;
}

/** The inbox half of the suite (`inbox: true`). */
function registerInboxChecks<S extends CallbackStore>(ctx: InboxCheckContext<S>): void {
  const { expect, sleep, keyFor, leaseMs, retentionMs, slackMs, concurrency } = ctx;
  const LONG = { retentionMs: LONG_MS };
  const limit = { limit: 1000 };

  /** The store as an inbox, checked empty: `lease` takes any due record, so the test must own them all. */
  const inboxOf = async (store: S): Promise<InboxStore> => {
    const candidate = store as Partial<InboxStore>;
    const methods = ['enqueue', 'lease', 'ack', 'fail', 'list', 'replay'] as const;
    expect(methods.every((m) => typeof candidate[m] === 'function') && typeof candidate.durable === 'boolean').toBe(true);
    const inbox = store as unknown as InboxStore;
    const found = [...(await inbox.list('pending', limit)), ...(await inbox.list('dead', limit))];
    if (found.length > 0) {
      throw new Error(
        `inbox checks need an empty inbox per test, but the store already holds ${found.length} record(s): ` +
          'give each store from createStore its own prefix, table or file',
      );
    }
    return inbox;
  };
  const inboxTest = (title: string, body: (inbox: InboxStore) => Promise<void>): void => {
    ctx.test(`inbox: ${title}`, async (store) => body(await inboxOf(store)));
  };

  /** Leases exactly `keys` (in any order), returning their leased records by key. */
  const leaseExactly = async (inbox: InboxStore, keys: string[], lease = LONG_MS): Promise<Map<string, LeasedRecord>> => {
    const leased = await inbox.lease({ limit: 100, leaseMs: lease });
    expect(leased.map((r) => r.key).sort()).toEqual([...keys].sort());
    return new Map(leased.map((r) => [r.key, r]));
  };
  const leaseOne = async (inbox: InboxStore, key: string, lease = LONG_MS): Promise<LeasedRecord> => (await leaseExactly(inbox, [key], lease)).get(key)!;
  const keysOf = (records: InboxRecord[]): string[] => records.map((r) => r.key);
  const stateOf = async (inbox: InboxStore, key: string): Promise<string | undefined> =>
    [...(await inbox.list('pending', limit)), ...(await inbox.list('dead', limit))].find((r) => r.key === key)?.state;

  inboxTest('enqueues a pending record due now, exactly as given', async (inbox) => {
    const key = keyFor('enqueue:ünïcødé-支付-🙂');
    const payload = JSON.stringify({ text: 'ünïcødé 支付 🙂 \u0000 "quoted"', big: 'x'.repeat(20_000) });
    const before = Date.now();
    expect(await inbox.enqueue(key, payload, LONG)).toBe('enqueued');
    const after = Date.now();
    const [record, ...rest] = await inbox.list('pending', limit);
    expect(rest.length).toBe(0);
    expect({ ...record, nextAttemptAt: 0, createdAt: 0 }).toEqual({ key, payload, state: 'pending', attempts: 0, nextAttemptAt: 0, lastError: null, createdAt: 0 });
    // Store clocks may differ from this process's by a little: allow one second either way.
    for (const t of [record!.nextAttemptAt, record!.createdAt]) expect(t >= before - 1_000 && t <= after + 1_000).toBe(true);
    expect(await inbox.list('dead', limit)).toEqual([]);
  });

  inboxTest('answers duplicate to an enqueue of a key that is pending, running, done or dead, and keeps the first payload', async (inbox) => {
    const [pending, running, done, dead] = ['dup-pending', 'dup-running', 'dup-done', 'dup-dead'].map(keyFor) as [string, string, string, string];
    for (const key of [running, done, dead]) expect(await inbox.enqueue(key, `first:${key}`, LONG)).toBe('enqueued');
    const leased = await leaseExactly(inbox, [running, done, dead]);
    await inbox.ack(done, leased.get(done)!.token, LONG);
    await inbox.fail(dead, leased.get(dead)!.token, { error: 'boom', retryAt: null });
    expect(await inbox.enqueue(pending, `first:${pending}`, LONG)).toBe('enqueued');

    for (const key of [pending, running, done, dead]) expect(await inbox.enqueue(key, 'second', LONG)).toBe('duplicate');
    const pendingList = await inbox.list('pending', limit);
    expect(pendingList.map((r) => [r.key, r.state, r.payload])).toEqual([
      [running, 'running', `first:${running}`],
      [pending, 'pending', `first:${pending}`],
    ]);
    expect((await inbox.list('dead', limit)).map((r) => [r.key, r.payload])).toEqual([[dead, `first:${dead}`]]);
    // The duplicate enqueue made nothing due: only the pending record is leased.
    await leaseExactly(inbox, [pending]);
  });

  inboxTest(`gives exactly one of ${concurrency} concurrent enqueues of one key, keeping the winner's payload`, async (inbox) => {
    const key = keyFor('enqueue-race');
    const results = await Promise.all(Array.from({ length: concurrency }, (_, i) => inbox.enqueue(key, `payload-${i}`, LONG)));
    const winners = results.flatMap((r, i) => (r === 'enqueued' ? [i] : []));
    expect(winners.length).toBe(1);
    expect(results.filter((r) => r === 'duplicate').length).toBe(concurrency - 1);
    expect((await inbox.list('pending', limit)).map((r) => [r.key, r.payload])).toEqual([[key, `payload-${winners[0]}`]]);
  });

  inboxTest('leases only due records, marks them running with a token and counts the attempt', async (inbox) => {
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
    const later = keyFor('due-later');
    const now = keyFor('due-now');
    await inbox.enqueue(later, 'p-later', LONG);
    const first = await leaseOne(inbox, later);
    await inbox.fail(later, first.token, { error: 'not yet', retryAt: Date.now() + LONG_MS });
    await inbox.enqueue(now, 'p-now', LONG);
    const record = await leaseOne(inbox, now);
    expect(record.payload).toBe('p-now');
    expect(record.state).toBe('running');
    expect(record.attempts).toBe(1);
    expect(typeof record.token === 'string' && record.token.length > 0 && record.token !== first.token).toBe(true);
    // Leased records are running under a live lease: nothing else is due.
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
    expect((await inbox.list('pending', limit)).map((r) => [r.key, r.state, r.attempts])).toEqual([
      [later, 'pending', 1],
      [now, 'running', 1],
    ]);
  });

  inboxTest('leases at most limit records per call', async (inbox) => {
    const keys = Array.from({ length: 5 }, (_, i) => keyFor(`limit-${i}`));
    for (const key of keys) await inbox.enqueue(key, key, LONG);
    const a = await inbox.lease({ limit: 2, leaseMs: LONG_MS });
    expect(a.length).toBe(2);
    const b = await inbox.lease({ limit: 10, leaseMs: LONG_MS });
    expect(b.length).toBe(3);
    expect([...a, ...b].map((r) => r.key).sort()).toEqual([...keys].sort());
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
  });

  inboxTest(`gives each record to one of ${concurrency} concurrent leases`, async (inbox) => {
    const keys = Array.from({ length: 2 * concurrency }, (_, i) => keyFor(`lease-race-${i}`));
    for (const key of keys) await inbox.enqueue(key, key, LONG);
    const batches = await Promise.all(Array.from({ length: concurrency }, () => inbox.lease({ limit: 3, leaseMs: LONG_MS })));
    const leased = batches.flat();
    // Every record at most once; what a racing caller skipped, the next lease takes.
    expect(new Set(leased.map((r) => r.key)).size).toBe(leased.length);
    const rest = await inbox.lease({ limit: 1000, leaseMs: LONG_MS });
    expect([...leased, ...rest].map((r) => r.key).sort()).toEqual([...keys].sort());
    expect(new Set([...leased, ...rest].map((r) => r.token)).size).toBe(keys.length);
    expect([...leased, ...rest].every((r) => r.attempts === 1)).toBe(true);
  });

  inboxTest('re-leases a running record once its lease expired, counting the attempt, with a new token', async (inbox) => {
    const key = keyFor('lease-expiry');
    await inbox.enqueue(key, 'p', LONG);
    const first = await leaseOne(inbox, key, leaseMs);
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
    await sleep(leaseMs + slackMs);
    const second = await leaseOne(inbox, key);
    expect(second.attempts).toBe(2);
    expect(second.payload).toBe('p');
    expect(second.token === first.token).toBe(false);
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
  });

  inboxTest('fences ack and fail: a stale or foreign token changes nothing', async (inbox) => {
    const key = keyFor('inbox-fencing');
    await inbox.enqueue(key, 'p', LONG);
    const stale = await leaseOne(inbox, key, leaseMs);
    await sleep(leaseMs + slackMs);
    const current = await leaseOne(inbox, key);

    await inbox.ack(key, stale.token, LONG);
    await inbox.fail(key, stale.token, { error: 'stale', retryAt: null });
    await inbox.fail(key, `${current.token}x`, { error: 'foreign', retryAt: Date.now() });
    await inbox.ack(key, 'not-a-token', LONG);
    expect((await inbox.list('pending', limit)).map((r) => [r.key, r.state, r.attempts, r.lastError])).toEqual([[key, 'running', 2, null]]);
    expect(await inbox.list('dead', limit)).toEqual([]);

    await inbox.ack(key, current.token, LONG);
    expect(await inbox.list('pending', limit)).toEqual([]);
    // The stale holder waking up late still changes nothing.
    await inbox.fail(key, stale.token, { error: 'late', retryAt: null });
    await inbox.fail(key, current.token, { error: 'late', retryAt: null });
    expect(await inbox.list('dead', limit)).toEqual([]);
    expect(await inbox.enqueue(key, 'again', LONG)).toBe('duplicate');
    // Ack and fail of an absent key or a record not running do nothing and do not throw.
    const pending = keyFor('not-running');
    await inbox.enqueue(pending, 'p', LONG);
    await inbox.ack(pending, 'no-such-token', LONG);
    await inbox.fail(pending, 'no-such-token', { error: 'x', retryAt: null });
    await inbox.ack(keyFor('absent'), 'no-such-token', LONG);
    await inbox.fail(keyFor('absent'), 'no-such-token', { error: 'x', retryAt: null });
    expect((await inbox.list('pending', limit)).map((r) => [r.key, r.state])).toEqual([[pending, 'pending']]);
  });

  inboxTest('fail with retryAt makes it pending and due at retryAt; fail with null makes it dead', async (inbox) => {
    const key = keyFor('retry');
    await inbox.enqueue(key, 'p', LONG);
    const first = await leaseOne(inbox, key);
    const retryAt = Date.now() + leaseMs;
    await inbox.fail(key, first.token, { error: 'handler.failed: Error: warehouse down', retryAt });
    const [record] = await inbox.list('pending', limit);
    expect([record!.key, record!.state, record!.attempts, record!.nextAttemptAt, record!.lastError]).toEqual([
      key,
      'pending',
      1,
      retryAt,
      'handler.failed: Error: warehouse down',
    ]);
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
    await sleep(leaseMs + slackMs);
    const second = await leaseOne(inbox, key);
    expect([second.attempts, second.lastError, second.payload]).toEqual([2, 'handler.failed: Error: warehouse down', 'p']);

    await inbox.fail(key, second.token, { error: 'gave up', retryAt: null });
    expect(await inbox.list('pending', limit)).toEqual([]);
    const [dead] = await inbox.list('dead', limit);
    expect([dead!.key, dead!.state, dead!.attempts, dead!.lastError, dead!.payload]).toEqual([key, 'dead', 2, 'gave up', 'p']);
    // Dead records are never leased.
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
  });

  inboxTest('lists pending (with running) and dead records oldest first, up to limit', async (inbox) => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((l) => keyFor(`list-${l}`));
    const [a, b, c, d, e, f] = keys as [string, string, string, string, string, string];
    for (const key of keys) expect(await inbox.enqueue(key, `p-${key}`, LONG)).toBe('enqueued');
    const leased = await leaseExactly(inbox, keys);
    await inbox.fail(a, leased.get(a)!.token, { error: 'retry', retryAt: Date.now() + LONG_MS });
    await inbox.fail(e, leased.get(e)!.token, { error: 'dead e', retryAt: null });
    await inbox.fail(b, leased.get(b)!.token, { error: 'dead b', retryAt: null });
    await inbox.ack(c, leased.get(c)!.token, LONG);
    // d and f stay running.
    const pending = await inbox.list('pending', limit);
    expect(pending.map((r) => [r.key, r.state, r.payload])).toEqual([
      [a, 'pending', `p-${a}`],
      [d, 'running', `p-${d}`],
      [f, 'running', `p-${f}`],
    ]);
    expect(keysOf(await inbox.list('pending', { limit: 2 }))).toEqual([a, d]);
    expect((await inbox.list('dead', limit)).map((r) => [r.key, r.lastError])).toEqual([
      [b, 'dead b'],
      [e, 'dead e'],
    ]);
    expect(keysOf(await inbox.list('dead', { limit: 1 }))).toEqual([b]);
    // Listing leases nothing and changes nothing.
    expect(keysOf(await inbox.list('pending', limit))).toEqual([a, d, f]);
    expect(await inbox.lease({ limit: 10, leaseMs: LONG_MS })).toEqual([]);
  });

  inboxTest('replay moves a dead record back to pending, due now, attempts reset; anything else is false', async (inbox) => {
    const dead = keyFor('replay-dead');
    const running = keyFor('replay-running');
    const done = keyFor('replay-done');
    for (const key of [dead, running, done]) await inbox.enqueue(key, `p-${key}`, LONG);
    const leased = await leaseExactly(inbox, [dead, running, done]);
    await inbox.fail(dead, leased.get(dead)!.token, { error: 'boom', retryAt: null });
    await inbox.ack(done, leased.get(done)!.token, LONG);
    const pendingKey = keyFor('replay-pending');
    await inbox.enqueue(pendingKey, 'p', LONG);

    for (const key of [running, done, pendingKey, keyFor('replay-absent')]) expect(await inbox.replay(key)).toBe(false);
    expect(await inbox.replay(dead)).toBe(true);
    expect(await inbox.replay(dead)).toBe(false);
    expect(await inbox.list('dead', limit)).toEqual([]);
    const listed = (await inbox.list('pending', limit)).find((r) => r.key === dead);
    expect([listed?.state, listed?.attempts]).toEqual(['pending', 0]);

    const again = await leaseExactly(inbox, [dead, pendingKey]);
    expect([again.get(dead)!.attempts, again.get(dead)!.payload]).toEqual([1, `p-${dead}`]);
    await inbox.ack(dead, again.get(dead)!.token, LONG);
    expect(await stateOf(inbox, dead)).toBe(undefined);
    expect(await inbox.enqueue(dead, 'after', LONG)).toBe('duplicate');
  });

  inboxTest('keeps a done record for its retention (a redelivery is a duplicate), then forgets it', async (inbox) => {
    const key = keyFor('inbox-retention');
    const kept = keyFor('inbox-retention-long');
    await inbox.enqueue(key, 'first', LONG);
    await inbox.enqueue(kept, 'kept', LONG);
    const leased = await leaseExactly(inbox, [key, kept]);
    await inbox.ack(key, leased.get(key)!.token, { retentionMs });
    await inbox.ack(kept, leased.get(kept)!.token, { retentionMs: Math.max(LONG_MS, retentionMs * 100) });
    expect(await inbox.enqueue(key, 'second', LONG)).toBe('duplicate');
    expect(await inbox.list('pending', limit)).toEqual([]);
    await sleep(retentionMs + slackMs);
    expect(await inbox.enqueue(kept, 'kept-again', LONG)).toBe('duplicate');
    expect(await inbox.enqueue(key, 'third', LONG)).toBe('enqueued');
    const [record] = await inbox.list('pending', limit);
    expect([record!.key, record!.state, record!.attempts, record!.payload, record!.lastError]).toEqual([key, 'pending', 0, 'third', null]);
    expect((await leaseOne(inbox, key)).attempts).toBe(1);
  });
}

import { randomUUID } from 'node:crypto';
import { MemoryStore } from '../../src/stores/memory';
import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions, InboxRecord, LeasedRecord, PaymentState } from '../../src/stores/types';
import { runStoreConformance } from '../../src/testing';

/**
 * The conformance suite must fail stores that break the contract. Each flaw below is one way a
 * hand-written store goes wrong; the suite runs against it through a collecting describe/it, and
 * the tests named must fail while the rest pass.
 */
type Flaw = 'none' | 'no-fence' | 'no-lease-expiry' | 'not-atomic' | 'truncates-keys' | 'release-undoes-done' | 'keeps-forever' | 'normalises-keys';

class ToyStore implements CallbackStore {
  private readonly rows = new Map<string, { token: string; done: boolean; until: number }>();
  constructor(private readonly flaw: Flaw) {}

  private k(key: string): string {
    if (this.flaw === 'truncates-keys') return key.slice(0, 120);
    if (this.flaw === 'normalises-keys') return key.normalize('NFC');
    return key;
  }

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const row = this.rows.get(this.k(key));
    // A read and a write in two steps: what a store without an atomic claim does.
    if (this.flaw === 'not-atomic') await new Promise((resolve) => setImmediate(resolve));
    const expired = row !== undefined && row.until <= Date.now() && !(this.flaw === 'no-lease-expiry' && !row.done);
    if (row !== undefined && !expired) return row.done ? { status: 'done' } : { status: 'in_flight' };
    const token = randomUUID();
    this.rows.set(this.k(key), { token, done: false, until: Date.now() + opts.leaseMs });
    return { status: 'claimed', token };
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    const row = this.rows.get(this.k(key));
    if (row === undefined || row.done) return;
    if (row.token !== token && this.flaw !== 'no-fence') return;
    row.done = true;
    row.until = this.flaw === 'keeps-forever' ? Infinity : Date.now() + opts.retentionMs;
  }

  async release(key: string, token: string): Promise<void> {
    const row = this.rows.get(this.k(key));
    if (row === undefined || row.token !== token) return;
    if (row.done && this.flaw !== 'release-undoes-done') return;
    this.rows.delete(this.k(key));
  }
}

interface Collected {
  name: string;
  fn: () => Promise<void>;
}

function collect(flaw: Flaw): Collected[] {
  const tests: Collected[] = [];
  runStoreConformance({
    name: flaw,
    describe: (_name, fn) => fn(),
    it: (name, fn) => {
      tests.push({ name, fn });
    },
    expect,
    createStore: () => new ToyStore(flaw),
    timing: { leaseMs: 30, retentionMs: 30, slackMs: 20 },
  });
  return tests;
}

async function failing(flaw: Flaw): Promise<string[]> {
  const failed: string[] = [];
  for (const test of collect(flaw)) {
    try {
      await test.fn();
    } catch {
      failed.push(test.name);
    }
  }
  return failed;
}

describe('runStoreConformance', () => {
  it('registers one describe block with every contract check', () => {
    const names = collect('none').map((t) => t.name);
    expect(names).toHaveLength(16);
    expect(new Set(names).size).toBe(names.length);
  });

  it('passes a correct store', async () => {
    expect(await failing('none')).toEqual([]);
  });

  it.each<[Flaw, string[]]>([
    [
      'no-fence',
      [
        'fences: a stale token cannot complete or release a lease that was taken over',
        'ignores complete and release with a token that never held the lease',
        'gives one claim per key when copies of many keys race, and completes each by its token only',
      ],
    ],
    ['no-lease-expiry', ['lets a new claim take over once the lease has expired, with a new token', 'fences: a stale token cannot complete or release a lease that was taken over']],
    [
      'not-atomic',
      [
        'gives exactly one of 25 concurrent claims of one key',
        'after a concurrent race and completion, every later claim is done',
        'gives one claim per key when copies of many keys race, and completes each by its token only',
      ],
    ],
    ['truncates-keys', ['keeps long and odd keys exact and distinct']],
    ['normalises-keys', ['keeps long and odd keys exact and distinct']],
    ['release-undoes-done', ['release after completion does not undo it']],
    ['keeps-forever', ['forgets a completed key once its retention has passed']],
  ])('fails a store with the flaw %s, in exactly the checks that cover it', async (flaw, expected) => {
    expect((await failing(flaw)).sort()).toEqual([...expected].sort());
  });
});

/**
 * The inbox checks (`inbox: true`) must fail inboxes that break the contract too. Each flaw is a
 * MemoryStore (the reference inbox) with one method done wrong.
 */
type InboxFlaw =
  | 'none'
  | 'enqueue-overwrites'
  | 'enqueue-not-atomic'
  | 'lease-ignores-due-time'
  | 'lease-ignores-limit'
  | 'no-lease-expiry'
  | 'no-inbox-fence'
  | 'forgets-done-at-once'
  | 'replay-keeps-attempts'
  | 'list-newest-first';

class FlawedInbox extends MemoryStore {
  constructor(private readonly flaw: InboxFlaw) {
    super();
  }

  override async enqueue(key: string, payload: string): Promise<'enqueued' | 'duplicate'> {
    const records = (this as unknown as { inbox: Map<string, { state: string; payload: string; until: number }> }).inbox;
    if (this.flaw === 'enqueue-overwrites' && records.get(key)?.state === 'pending') {
      records.get(key)!.payload = payload;
      return 'enqueued';
    }
    if (this.flaw === 'enqueue-not-atomic') {
      // Checks, then writes after a pause: what an inbox without an atomic insert does.
      const held = records.get(key);
      const seen = held !== undefined && !(held.state === 'done' && held.until <= Date.now());
      await new Promise((resolve) => setImmediate(resolve));
      if (seen) return 'duplicate';
      records.delete(key);
    }
    return super.enqueue(key, payload);
  }

  override async lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]> {
    const records = (this as unknown as { inbox: Map<string, { state: string; nextAttemptAt: number; until: number }> }).inbox;
    if (this.flaw === 'lease-ignores-due-time') for (const r of records.values()) if (r.state === 'pending') r.nextAttemptAt = 0;
    if (this.flaw === 'no-lease-expiry') {
      const running = [...records.values()].filter((r) => r.state === 'running');
      for (const r of running) r.until = Infinity;
    }
    return super.lease(this.flaw === 'lease-ignores-limit' ? { ...opts, limit: 1000 } : opts);
  }

  override async ack(key: string, token: string, opts: CompleteOptions): Promise<void> {
    const record = (this as unknown as { inbox: Map<string, { token: string | null }> }).inbox.get(key);
    if (this.flaw === 'no-inbox-fence' && record?.token !== null && record !== undefined) token = record.token;
    await super.ack(key, token, this.flaw === 'forgets-done-at-once' ? { retentionMs: 0 } : opts);
  }

  override async replay(key: string): Promise<boolean> {
    const record = (this as unknown as { inbox: Map<string, { attempts: number }> }).inbox.get(key);
    const attempts = record?.attempts ?? 0;
    const replayed = await super.replay(key);
    if (replayed && this.flaw === 'replay-keeps-attempts') record!.attempts = attempts;
    return replayed;
  }

  override async list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]> {
    const all = await super.list(state, { limit: 1000 });
    return (this.flaw === 'list-newest-first' ? all.reverse() : all).slice(0, opts.limit);
  }
}

function collectInbox(flaw: InboxFlaw): Collected[] {
  const tests: Collected[] = [];
  runStoreConformance({
    name: flaw,
    describe: (_name, fn) => fn(),
    it: (name, fn) => {
      if (name.startsWith('inbox: ')) tests.push({ name, fn });
    },
    expect,
    createStore: () => new FlawedInbox(flaw),
    inbox: true,
    timing: { leaseMs: 30, retentionMs: 30, slackMs: 20 },
  });
  return tests;
}

async function failingInbox(flaw: InboxFlaw): Promise<string[]> {
  const failed: string[] = [];
  for (const test of collectInbox(flaw)) {
    try {
      await test.fn();
    } catch {
      failed.push(test.name.slice('inbox: '.length));
    }
  }
  return failed;
}

const DUPLICATES = 'answers duplicate to an enqueue of a key that is pending, running, done or dead, and keeps the first payload';
const DUE = 'leases only due records, marks them running with a token and counts the attempt';
const RETRY = 'fail with retryAt makes it pending and due at retryAt; fail with null makes it dead';
const LIST = 'lists pending (with running) and dead records oldest first, up to limit';
const EXPIRY = 're-leases a running record once its lease expired, counting the attempt, with a new token';
const FENCING = 'fences ack and fail: a stale or foreign token changes nothing';
const RETENTION = 'keeps a done record for its retention (a redelivery is a duplicate), then forgets it';
const REPLAY = 'replay moves a dead record back to pending, due now, attempts reset; anything else is false';

describe('runStoreConformance with inbox: true', () => {
  it('registers the inbox checks only when asked', () => {
    expect(collectInbox('none').map((t) => t.name)).toHaveLength(12);
    expect(collect('none').filter((t) => t.name.startsWith('inbox: '))).toEqual([]);
  });

  it('passes the memory inbox', async () => {
    expect(await failingInbox('none')).toEqual([]);
  });

  it('refuses a store shared between tests, saying what to do', async () => {
    const shared = new MemoryStore();
    await shared.enqueue('left-over', 'p');
    const tests: Collected[] = [];
    runStoreConformance({
      name: 'shared',
      describe: (_name, fn) => fn(),
      it: (name, fn) => void (name.startsWith('inbox: ') && tests.push({ name, fn })),
      expect,
      createStore: () => shared,
      inbox: true,
      timing: { leaseMs: 30, retentionMs: 30 },
    });
    await expect(tests[0]!.fn()).rejects.toThrow(/empty inbox per test.*its own prefix, table or file/);
  });

  it.each<[InboxFlaw, string[]]>([
    ['enqueue-overwrites', [DUPLICATES, "gives exactly one of 25 concurrent enqueues of one key, keeping the winner's payload"]],
    ['enqueue-not-atomic', ["gives exactly one of 25 concurrent enqueues of one key, keeping the winner's payload"]],
    ['lease-ignores-due-time', [DUE, RETRY, LIST]],
    ['lease-ignores-limit', ['leases at most limit records per call']],
    ['no-lease-expiry', [EXPIRY, FENCING]],
    ['no-inbox-fence', [FENCING]],
    ['forgets-done-at-once', [DUPLICATES, FENCING, RETENTION, REPLAY]],
    ['replay-keeps-attempts', [REPLAY]],
    ['list-newest-first', [DUPLICATES, DUE, LIST]],
  ])('fails an inbox with the flaw %s, in exactly the checks that cover it', async (flaw, expected) => {
    expect((await failingInbox(flaw)).sort()).toEqual([...expected].sort());
  });
});

/**
 * The `completeWithState` checks (`completeWithState: true`) exist only for a store that declares
 * the method, and fail one that declares it and lacks it or gets it wrong. Each variant is a
 * MemoryStore (which has no such method of its own) with one added.
 */
type StatesVariant = 'correct' | 'missing' | 'unfenced' | 'drops-state';

class WithCompleteWithState extends MemoryStore {
  completeWithState?: (key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions) => Promise<void>;
  constructor(variant: StatesVariant) {
    super();
    if (variant === 'missing') return;
    this.completeWithState = async (key, token, paymentRequestId, state, opts) => {
      // The unfenced variant completes the key with whatever token holds it, not the caller's.
      const leases = (this as unknown as { leases: Map<string, { token: string }> }).leases;
      await this.complete(key, variant === 'unfenced' ? (leases.get(key)?.token ?? token) : token, opts);
      if (variant !== 'drops-state') await this.setPaymentState(paymentRequestId, state, opts);
    };
  }
}

function collectStates(variant: StatesVariant, declared: boolean): Collected[] {
  const tests: Collected[] = [];
  runStoreConformance({
    name: variant,
    describe: (_name, fn) => fn(),
    it: (name, fn) => {
      if (name.includes('completeWithState')) tests.push({ name, fn });
    },
    expect,
    createStore: () => new WithCompleteWithState(variant),
    paymentStates: true,
    completeWithState: declared,
    timing: { leaseMs: 30, retentionMs: 30, slackMs: 20 },
  });
  return tests;
}

async function failingStates(variant: StatesVariant): Promise<string[]> {
  const failed: string[] = [];
  for (const test of collectStates(variant, true)) {
    try {
      await test.fn();
    } catch {
      failed.push(test.name);
    }
  }
  return failed;
}

const CWS_ONE = 'payment states: completeWithState completes the key (token-fenced) and records the state';
const CWS_MANY = 'payment states: concurrent completeWithState calls each complete their key and record their state';

describe('runStoreConformance with completeWithState: true', () => {
  it('registers the completeWithState checks only when asked', () => {
    expect(collectStates('correct', true).map((t) => t.name)).toEqual([CWS_ONE, CWS_MANY]);
    expect(collectStates('correct', false)).toEqual([]);
  });

  it.each<[StatesVariant, string[]]>([
    ['correct', []],
    ['missing', [CWS_ONE, CWS_MANY]],
    ['unfenced', [CWS_ONE]],
    ['drops-state', [CWS_ONE, CWS_MANY]],
  ])('with completeWithState %s, fails exactly %j', async (variant, expected) => {
    expect(await failingStates(variant)).toEqual(expected);
  });
});

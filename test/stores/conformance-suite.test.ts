import { randomUUID } from 'node:crypto';
import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions } from '../../src/stores/types';
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
    expect(names).toHaveLength(15);
    expect(new Set(names).size).toBe(names.length);
  });

  it('passes a correct store', async () => {
    expect(await failing('none')).toEqual([]);
  });

  it.each<[Flaw, string[]]>([
    ['no-fence', ['fences: a stale token cannot complete or release a lease that was taken over', 'ignores complete and release with a token that never held the lease']],
    ['no-lease-expiry', ['lets a new claim take over once the lease has expired, with a new token', 'fences: a stale token cannot complete or release a lease that was taken over']],
    ['not-atomic', ['gives exactly one of 25 concurrent claims of one key', 'after a concurrent race and completion, every later claim is done']],
    ['truncates-keys', ['keeps long and odd keys exact and distinct']],
    ['normalises-keys', ['keeps long and odd keys exact and distinct']],
    ['release-undoes-done', ['release after completion does not undo it']],
    ['keeps-forever', ['forgets a completed key once its retention has passed']],
  ])('fails a store with the flaw %s, in exactly the checks that cover it', async (flaw, expected) => {
    expect((await failing(flaw)).sort()).toEqual([...expected].sort());
  });
});

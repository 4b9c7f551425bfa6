import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore, sqliteStoreSchema } from '../../src/stores/sqlite';
import { runStoreConformance } from '../../src/testing';

const dir = mkdtempSync(path.join(tmpdir(), 'caibo-sqlite-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
runStoreConformance({
  name: 'SqliteStore (path)',
  describe,
  it,
  expect,
  createStore: () => new SqliteStore({ path: path.join(dir, `conf-${++files}.sqlite`) }),
  timing: { leaseMs: 150, retentionMs: 150, slackMs: 40 },
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

runStoreConformance({
  name: 'SqliteStore (open database, batch: false)',
  describe,
  it,
  expect,
  createStore: () => new SqliteStore({ database: new Database(':memory:'), batch: false }),
  cleanup: (store) => {
    store.database.close();
  },
  timing: { leaseMs: 150, retentionMs: 150, slackMs: 40 },
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

// Small transactions, so concurrent operations are split over several of them.
runStoreConformance({
  name: 'SqliteStore (batch: { maxSize: 3 })',
  describe,
  it,
  expect,
  createStore: () => new SqliteStore({ path: path.join(dir, `conf-${++files}.sqlite`), batch: { maxSize: 3 } }),
  timing: { leaseMs: 150, retentionMs: 150, slackMs: 40 },
  paymentStates: true,
  completeWithState: true,
});

/**
 * An open database that counts the store's write transactions, and may make one statement
 * throw (`failWhen` sees each statement's source and parameters).
 */
function countingDatabase(failWhen: (source: string, params: unknown[]) => boolean = () => false) {
  const db = new Database(':memory:');
  const counts = { begin: 0 };
  const database = {
    prepare(source: string) {
      const statement = db.prepare(source);
      const guard = (params: unknown[]) => {
        if (failWhen(source, params)) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      };
      return {
        run: (...params: unknown[]) => {
          if (source === 'BEGIN IMMEDIATE') counts.begin++;
          guard(params);
          return statement.run(...params);
        },
        get: (...params: unknown[]) => (guard(params), statement.get(...params)),
        all: (...params: unknown[]) => (guard(params), statement.all(...params)),
      };
    },
    exec: (source: string) => db.exec(source),
    pragma: (source: string, options?: { simple?: boolean }) => db.pragma(source, options),
    close: () => db.close(),
    get inTransaction() {
      return db.inTransaction;
    },
  };
  return { database, counts, db };
}

const paid = (key: string) => ({ key, paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: '2026-11-27T10:00:00.000Z' });

describe('SqliteStore group commit', () => {
  it('runs the claims and completions of one turn in one transaction, each event keeping its own outcome', async () => {
    const { database, counts, db } = countingDatabase();
    const store = new SqliteStore({ database, purgeIntervalMs: 0 });
    const keys = Array.from({ length: 20 }, (_, i) => `evt-${i}`);
    const claims = await Promise.all([...keys, 'evt-3', 'evt-7'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(counts.begin).toBe(1);
    expect(claims.map((c) => c.status)).toEqual([...keys.map(() => 'claimed'), 'in_flight', 'in_flight']);
    const token = (i: number) => (claims[i] as { token: string }).token;
    await Promise.all(
      keys.map((key, i) =>
        i % 2 === 0
          ? store.completeWithState(key, token(i), `pr-${i}`, paid(key), { retentionMs: 60_000 })
          : store.complete(key, i === 5 ? 'stale-token' : token(i), { retentionMs: 60_000 }),
      ),
    );
    expect(counts.begin).toBe(2);
    const rows = db.prepare('SELECT key, done FROM caibo_callbacks ORDER BY key').all();
    expect(rows).toEqual([...keys].sort().map((key) => ({ key, done: key === 'evt-5' ? 0 : 1 })));
    const states = db.prepare('SELECT payment_request_id AS id, state FROM caibo_callbacks_states ORDER BY id').all() as { id: string; state: string }[];
    expect(states.map(({ id, state }) => [id, JSON.parse(state)])).toEqual(
      keys.flatMap((key, i) => (i % 2 === 0 ? [[`pr-${i}`, paid(key)]] : [])).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
    await store.close();
    db.close();
  });

  it('fails only the requests of a transaction that fails, and keeps none of its writes', async () => {
    let failing = true;
    const { database, db } = countingDatabase((source, params) => failing && source.startsWith('INSERT INTO "caibo_callbacks"') && (params[0] as { key: string }).key === 'x3');
    const store = new SqliteStore({ database, purgeIntervalMs: 0 });
    const first = await Promise.allSettled(['x1', 'x2', 'x3'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String((first[0] as PromiseRejectedResult).reason)).toMatch(/disk I\/O error/);
    expect(db.prepare('SELECT count(*) AS n FROM caibo_callbacks').get()).toEqual({ n: 0 });
    expect(db.inTransaction).toBe(false);
    failing = false;
    const later = await Promise.all(['x1', 'x2', 'x3'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(later.map((c) => c.status)).toEqual(['claimed', 'claimed', 'claimed']);
    await store.close();
    db.close();
  });

  it('refuses a malformed batch option', () => {
    const database = new Database(':memory:');
    expect(() => new SqliteStore({ database, batch: { maxSize: 0 } })).toThrow(/batch.maxSize must be an integer of at least 1, got 0/);
    expect(() => new SqliteStore({ database, batch: { maxInFlight: 2 } as never })).toThrow(/batch takes only maxSize/);
    database.close();
  });
});

describe('SqliteStore', () => {
  it('opens a file in WAL mode and keeps what it saw across a reopen', async () => {
    const file = path.join(dir, 'reopen.sqlite');
    const first = new SqliteStore({ path: file });
    expect(first.database.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(first.database.pragma('wal_autocheckpoint', { simple: true })).toBe(8000);
    const claim = await first.claim('evt', { leaseMs: 10_000 });
    if (claim.status !== 'claimed') throw new Error('expected a claim');
    await first.complete('evt', claim.token, { retentionMs: 60_000 });
    await first.close();

    const second = new SqliteStore({ path: file });
    expect(await second.claim('evt', { leaseMs: 10_000 })).toEqual({ status: 'done' });
    await second.close();
  });

  it('leaves a database it was given open, and its journal mode alone', async () => {
    const db = new Database(':memory:');
    const store = new SqliteStore({ database: db, table: 'my_callbacks' });
    await store.close();
    expect(db.open).toBe(true);
    expect(db.prepare(`SELECT count(*) AS n FROM my_callbacks`).get()).toEqual({ n: 0 });
    expect(db.pragma('journal_mode', { simple: true })).toBe('memory');
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    db.close();
  });

  it('purges only expired rows, in bounded rounds', async () => {
    const db = new Database(':memory:');
    const store = new SqliteStore({ database: db, purgeBatchSize: 3, purgeIntervalMs: 0 });
    const insert = db.prepare('INSERT INTO caibo_callbacks (key, token, done, expires_at) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < 40; i++) insert.run(`old-${i}`, 't', i % 2, Date.now() - 1_000);
    for (let i = 0; i < 4; i++) insert.run(`live-${i}`, 't', i % 2, Date.now() + 3_600_000);
    expect(store.purge()).toBe(30);
    expect(store.purge()).toBe(10);
    expect(db.prepare('SELECT key FROM caibo_callbacks ORDER BY key').all()).toEqual(
      ['live-0', 'live-1', 'live-2', 'live-3'].map((key) => ({ key })),
    );
    await store.close();
    db.close();
  });

  it('keeps the inbox in <table>_inbox; purges done records past their retention and nothing else', async () => {
    const db = new Database(':memory:');
    const store = new SqliteStore({ database: db, table: 'cb', purgeIntervalMs: 0 });
    expect(store.durable).toBe(true);
    for (const key of ['old-done', 'live-done', 'pending', 'dead']) await store.enqueue(key, 'p');
    const leased = new Map((await store.lease({ limit: 10, leaseMs: 60_000 })).map((r) => [r.key, r.token]));
    await store.ack('old-done', leased.get('old-done')!, { retentionMs: 1 });
    await store.ack('live-done', leased.get('live-done')!, { retentionMs: 60_000 });
    await store.fail('pending', leased.get('pending')!, { error: 'e', retryAt: Date.now() + 60_000 });
    await store.fail('dead', leased.get('dead')!, { error: 'e', retryAt: null });
    expect(db.prepare("SELECT payload, token FROM cb_inbox WHERE key = 'live-done'").get()).toEqual({ payload: '', token: null });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(store.purge()).toBe(1);
    expect(db.prepare('SELECT key, state FROM cb_inbox ORDER BY key').all()).toEqual([
      { key: 'dead', state: 'dead' },
      { key: 'live-done', state: 'done' },
      { key: 'pending', state: 'pending' },
    ]);
    await store.close();
    db.close();
  });

  it('leases each record to one of two connections on one file', async () => {
    const file = path.join(dir, 'two-connections.sqlite');
    const a = new SqliteStore({ path: file });
    const b = new SqliteStore({ path: file });
    for (let i = 0; i < 20; i++) await a.enqueue(`k${i}`, 'p');
    const leased = [];
    for (let round = 0; round < 6; round++) leased.push(...(await (round % 2 ? b : a).lease({ limit: 4, leaseMs: 60_000 })));
    expect(leased.map((r) => r.key).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `k${i}`).sort());
    expect(await b.list('pending', { limit: 100 })).toHaveLength(20);
    await a.close();
    await b.close();
  });

  it('refuses bad options with a message that says what to pass', () => {
    expect(() => new SqliteStore({} as never)).toThrow(/\{ path: .* or \{ database \}/);
    expect(() => new SqliteStore({ path: path.join(dir, 'x.sqlite'), table: 'bad name' })).toThrow(/table must be letters/);
    expect(sqliteStoreSchema({ table: 'cb' })).toContain('CREATE TABLE IF NOT EXISTS "cb"');
    expect(sqliteStoreSchema({ table: 'cb' })).toContain('CREATE TABLE IF NOT EXISTS "cb_inbox"');
  });
});

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
  inbox: true,
});

runStoreConformance({
  name: 'SqliteStore (open database)',
  describe,
  it,
  expect,
  createStore: () => new SqliteStore({ database: new Database(':memory:') }),
  cleanup: (store) => {
    store.database.close();
  },
  timing: { leaseMs: 150, retentionMs: 150, slackMs: 40 },
  paymentStates: true,
  inbox: true,
});

describe('SqliteStore', () => {
  it('opens a file in WAL mode and keeps what it saw across a reopen', async () => {
    const file = path.join(dir, 'reopen.sqlite');
    const first = new SqliteStore({ path: file });
    expect(first.database.pragma('journal_mode', { simple: true })).toBe('wal');
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

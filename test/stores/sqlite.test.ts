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

  it('refuses bad options with a message that says what to pass', () => {
    expect(() => new SqliteStore({} as never)).toThrow(/\{ path: .* or \{ database \}/);
    expect(() => new SqliteStore({ path: path.join(dir, 'x.sqlite'), table: 'bad name' })).toThrow(/table must be letters/);
    expect(sqliteStoreSchema({ table: 'cb' })).toContain('CREATE TABLE IF NOT EXISTS "cb"');
  });
});

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { PostgresStore } from '../../src/stores/postgres';
import { RedisStore } from '../../src/stores/redis';
import { SqliteStore } from '../../src/stores/sqlite';
import type { CallbackStore, InboxStore } from '../../src/stores/types';

export const REDIS_URL = 'redis://127.0.0.1:6379';
export const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

/**
 * One shared store for the multi-process tests: the env that points two app processes at it, a
 * store on it for the test process, and the handler runs the apps recorded in it.
 */
export interface Backend {
  name: string;
  /** Env for app process `n` (0 or 1); both point at the same store. */
  env(n: number): Record<string, string>;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A store on the same state, in the test process. */
  store(): CallbackStore & InboxStore;
  /** The keys of the handler runs recorded for `phase`, with the recording process id. */
  runs(phase: 'start' | 'done' | 'fail'): Promise<{ key: string; pid: number }[]>;
}

export function redisBackend(): Backend {
  const prefix = `test:multi:${randomUUID()}:`;
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  return {
    name: 'Redis (one process on ioredis, one on node-redis)',
    env: (n) => ({ STORE: n === 0 ? 'redis-ioredis' : 'redis-node', REDIS_URL, STORE_PREFIX: prefix }),
    setup: () => redis.connect(),
    teardown: async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
    store: () => new RedisStore({ client: redis, prefix }),
    runs: async (phase) =>
      (await redis.lrange(`${prefix}runs:${phase}`, 0, -1)).map((entry) => {
        const [key, pid] = entry.split('|');
        return { key: key!, pid: Number(pid) };
      }),
  };
}

export function postgresBackend(): Backend {
  const schema = `test_multi_${randomUUID().replace(/-/g, '')}`;
  const pool = new Pool({ connectionString: PG_URL, max: 4 });
  pool.on('error', () => undefined);
  return {
    name: 'PostgreSQL',
    env: () => ({ STORE: 'postgres', PG_URL, PG_SCHEMA: schema }),
    setup: async () => {
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await pool.query(`CREATE TABLE "${schema}".runs (key text NOT NULL, phase text NOT NULL, pid integer NOT NULL)`);
    },
    teardown: async () => {
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    },
    store: () => new PostgresStore({ pool, schema, table: 'callbacks', purgeIntervalMs: 0 }),
    runs: async (phase) => (await pool.query(`SELECT key, pid FROM "${schema}".runs WHERE phase = $1`, [phase])).rows,
  };
}

export function sqliteBackend(): Backend {
  const dir = mkdtempSync(path.join(tmpdir(), 'caibo-multi-'));
  const file = path.join(dir, 'callbacks.sqlite');
  let db: Database.Database | undefined;
  return {
    name: 'SQLite (two processes on one file)',
    env: () => ({ STORE: 'sqlite', SQLITE_PATH: file }),
    setup: async () => {
      // Created here so both apps open an existing file with the runs table in place.
      new SqliteStore({ path: file }).close();
      db = new Database(file);
      db.exec('CREATE TABLE IF NOT EXISTS runs (key TEXT NOT NULL, phase TEXT NOT NULL, pid INTEGER NOT NULL)');
    },
    teardown: async () => {
      db?.close();
      rmSync(dir, { recursive: true, force: true });
    },
    store: () => new SqliteStore({ database: db!, purgeIntervalMs: 0 }),
    runs: async (phase) => db!.prepare('SELECT key, pid FROM runs WHERE phase = ?').all(phase) as { key: string; pid: number }[],
  };
}

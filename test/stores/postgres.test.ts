import { randomUUID } from 'node:crypto';
import { Pool } from 'pg';
import { PostgresStore, postgresStoreSchema } from '../../src/stores/postgres';
import { runStoreConformance } from '../../src/testing';

const pool = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 10 });
pool.on('error', () => undefined);
// Each run has its own schema, dropped at the end: no table is shared with another run.
const schema = `test_pg_store_${randomUUID().replace(/-/g, '')}`;

beforeAll(async () => {
  await pool.query(`CREATE SCHEMA "${schema}"`);
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
  await pool.end();
});

let tables = 0;
runStoreConformance({
  name: 'PostgresStore',
  describe,
  it,
  expect,
  createStore: () => new PostgresStore({ pool, schema, table: `conf_${++tables}` }),
  cleanup: async (store) => {
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}`);
  },
  timing: { leaseMs: 200, retentionMs: 200, slackMs: 60 },
  paymentStates: true,
});

describe('PostgresStore', () => {
  it('creates its table on init(), idempotently and concurrently, with the SQL it exports', async () => {
    const options = { pool, schema, table: 'init_twice' };
    const stores = [new PostgresStore(options), new PostgresStore(options), new PostgresStore(options)];
    await Promise.all(stores.map((s) => s.init()));
    await stores[0]!.init();
    const { rows } = await pool.query(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'init_twice' ORDER BY ordinal_position`,
      [schema],
    );
    expect(rows).toEqual([
      { column_name: 'key', data_type: 'text' },
      { column_name: 'token', data_type: 'text' },
      { column_name: 'done', data_type: 'boolean' },
      { column_name: 'expires_at', data_type: 'timestamp with time zone' },
    ]);
    expect(stores[0]!.schemaStatements).toBe(postgresStoreSchema(options));
    expect(postgresStoreSchema(options)).toContain(`CREATE TABLE IF NOT EXISTS "${schema}"."init_twice"`);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('refuses unsafe table and schema names before any SQL runs', () => {
    expect(() => new PostgresStore({ pool, table: 'x"; DROP TABLE users; --' })).toThrow(/table must be letters, digits and _/);
    expect(() => new PostgresStore({ pool, schema: 'public.evil' })).toThrow(/schema must be/);
    expect(() => new PostgresStore({ pool, table: 'a'.repeat(64) })).toThrow(/56 at most/);
    expect(() => new PostgresStore({ pool: {} as never })).toThrow(/pg Pool/);
  });

  it('purges only expired rows, in bounded rounds', async () => {
    const store = new PostgresStore({ pool, schema, table: 'purge', purgeBatchSize: 7, purgeIntervalMs: 0 });
    await store.init();
    const t = store.tableName;
    // 30 expired leases, 5 expired done keys, 4 live leases, 3 live done keys.
    await pool.query(
      `INSERT INTO ${t} (key, token, done, expires_at)
       SELECT 'old-' || g, 't', g <= 5, now() - interval '1 minute' FROM generate_series(1, 35) g
       UNION ALL SELECT 'live-' || g, 't', g <= 3, now() + interval '1 hour' FROM generate_series(1, 7) g`,
    );
    expect(await store.purge()).toBe(35);
    const { rows } = await pool.query(`SELECT key FROM ${t} ORDER BY key`);
    expect(rows.map((r: { key: string }) => r.key)).toEqual(['live-1', 'live-2', 'live-3', 'live-4', 'live-5', 'live-6', 'live-7']);
    expect(await store.purge()).toBe(0);
    await store.close();
  });

  it('stops deleting after ten rounds, leaving the rest for the next tick', async () => {
    const store = new PostgresStore({ pool, schema, table: 'purge_bound', purgeBatchSize: 2, purgeIntervalMs: 0 });
    await store.init();
    await pool.query(
      `INSERT INTO ${store.tableName} (key, token, done, expires_at) SELECT 'old-' || g, 't', true, now() - interval '1 minute' FROM generate_series(1, 25) g`,
    );
    expect(await store.purge()).toBe(20);
    expect(await store.purge()).toBe(5);
    await store.close();
  });

  it('purges on its own timer once init() has run, and close() stops it', async () => {
    const store = new PostgresStore({ pool, schema, table: 'purge_timer', purgeIntervalMs: 50 });
    await store.init();
    const t = store.tableName;
    await pool.query(`INSERT INTO ${t} (key, token, done, expires_at) VALUES ('gone', 't', true, now() - interval '1 second')`);
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline && (await pool.query(`SELECT 1 FROM ${t}`)).rowCount! > 0) await new Promise((r) => setTimeout(r, 20));
    expect((await pool.query(`SELECT 1 FROM ${t}`)).rowCount).toBe(0);
    await store.close();
    await pool.query(`INSERT INTO ${t} (key, token, done, expires_at) VALUES ('stays', 't', true, now() - interval '1 second')`);
    await new Promise((r) => setTimeout(r, 200));
    expect((await pool.query(`SELECT key FROM ${t}`)).rows).toEqual([{ key: 'stays' }]);
  });
});

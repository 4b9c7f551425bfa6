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
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
  },
  timing: { leaseMs: 200, retentionMs: 200, slackMs: 60 },
  paymentStates: true,
  completeWithState: true,
  inbox: true,
});

// The same contract with unnamed statements, as behind a pooler that cannot keep prepared ones,
// and one statement per operation (no group commit).
runStoreConformance({
  name: 'PostgresStore (preparedStatements: false, batch: false)',
  describe,
  it,
  expect,
  createStore: () => new PostgresStore({ pool, schema, table: `conf_unnamed_${++tables}`, preparedStatements: false, batch: false }),
  cleanup: async (store) => {
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
  },
  timing: { leaseMs: 200, retentionMs: 200, slackMs: 60 },
  paymentStates: true,
  completeWithState: true,
});

// Small batches, so concurrent operations are split over several statements running at once, and
// copies of one key land in different statements.
runStoreConformance({
  name: 'PostgresStore (batch: { maxSize: 3 })',
  describe,
  it,
  expect,
  createStore: () => new PostgresStore({ pool, schema, table: `conf_small_${++tables}`, batch: { maxSize: 3 } }),
  cleanup: async (store) => {
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
  },
  timing: { leaseMs: 200, retentionMs: 200, slackMs: 60 },
  paymentStates: true,
  completeWithState: true,
});

interface SentStatement {
  name: string | undefined;
  text: string;
  values: unknown[] | undefined;
}

/**
 * The shared pool, recording each statement the store sends (on the pool or a checked-out
 * client); `fail(config)` may throw instead of sending one.
 */
function recordingPool(fail: (config: { text: string }) => Error | undefined = () => undefined) {
  const sent: SentStatement[] = [];
  type Config = { text: string; values?: unknown[]; name?: string };
  const send = async (query: (config: Config) => Promise<unknown>, config: Config) => {
    sent.push({ name: config.name, text: config.text, values: config.values });
    const error = fail(config);
    if (error !== undefined) throw error;
    return query(config) as never;
  };
  const recording = {
    query: (config: { text: string; values?: unknown[]; name?: string }) => send((c) => pool.query(c), config),
    connect: async () => {
      const client = await pool.connect();
      return {
        query: (config: { text: string; values?: unknown[]; name?: string }) => send((c) => client.query(c), config),
        release: (error?: Error | boolean) => client.release(error),
      };
    },
  };
  return { pool: recording, sent };
}

const paid = (key: string) => ({ key, paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: '2026-11-27T10:00:00.000Z' });

describe('PostgresStore group commit', () => {
  it('sends concurrent claims as one statement and concurrent completions as another, each event keeping its own outcome', async () => {
    const { pool: recording, sent } = recordingPool();
    const store = new PostgresStore({ pool: recording, schema, table: `batch_${++tables}`, purgeIntervalMs: 0 });
    await store.init();
    sent.length = 0;
    const keys = Array.from({ length: 20 }, (_, i) => `evt-${i}`);
    const claims = await Promise.all([...keys, 'evt-3', 'evt-7'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.values?.[0]).toEqual(keys); // each key once: the copies are answered without the database
    expect(claims.slice(0, 20).map((c) => c.status)).toEqual(keys.map(() => 'claimed'));
    expect(claims.slice(20).map((c) => c.status)).toEqual(['in_flight', 'in_flight']);

    const token = (i: number) => (claims[i] as { token: string }).token;
    sent.length = 0;
    await Promise.all(
      keys.map((key, i) =>
        i % 2 === 0
          ? store.completeWithState(key, token(i), `pr-${i}`, paid(key), { retentionMs: 60_000 })
          : store.complete(key, i === 5 ? 'stale-token' : token(i), { retentionMs: 60_000 }),
      ),
    );
    expect(sent).toHaveLength(1);
    const rows = (await pool.query(`SELECT key, done FROM ${store.tableName} ORDER BY key`)).rows as { key: string; done: boolean }[];
    expect(rows).toEqual([...keys].sort().map((key) => ({ key, done: key !== 'evt-5' })));
    const states = (await pool.query(`SELECT payment_request_id, state FROM ${store.statesTableName} ORDER BY payment_request_id`)).rows;
    expect(states).toEqual(
      keys
        .flatMap((key, i) => (i % 2 === 0 ? [{ payment_request_id: `pr-${i}`, state: paid(key) }] : []))
        .sort((a, b) => (a.payment_request_id < b.payment_request_id ? -1 : 1)),
    );
    expect((await store.claim('evt-5', { leaseMs: 60_000 })).status).toBe('in_flight');
    expect((await store.claim('evt-4', { leaseMs: 60_000 })).status).toBe('done');
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
  });

  it('keeps the later of two final states for one payment request in a batch, as two calls in turn would', async () => {
    const { pool: recording, sent } = recordingPool();
    const store = new PostgresStore({ pool: recording, schema, table: `batch_${++tables}`, purgeIntervalMs: 0 });
    await store.init();
    const [a, b] = await Promise.all(['first', 'second'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    sent.length = 0;
    const cancelled = { ...paid('second'), paymentStatus: 'cancelled', transactionStatus: 'cancelled' };
    await Promise.all([
      store.completeWithState('first', (a as { token: string }).token, 'pr-1', paid('first'), { retentionMs: 60_000 }),
      store.completeWithState('second', (b as { token: string }).token, 'pr-1', cancelled, { retentionMs: 60_000 }),
    ]);
    expect(sent).toHaveLength(1);
    expect(await store.getPaymentState('pr-1')).toEqual(cancelled);
    expect([await store.claim('first', { leaseMs: 1 }), await store.claim('second', { leaseMs: 1 })].map((c) => c.status)).toEqual(['done', 'done']);
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
  });

  it('fails only the requests of a statement that fails, and takes none of their keys', async () => {
    let failNext = false;
    const { pool: recording } = recordingPool((config) => {
      if (!failNext || !config.text.includes('unnest')) return undefined;
      failNext = false;
      return Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });
    });
    const store = new PostgresStore({ pool: recording, schema, table: `batch_${++tables}`, purgeIntervalMs: 0 });
    await store.init();
    failNext = true;
    const failed = await Promise.allSettled(['x1', 'x2', 'x3'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String((failed[0] as PromiseRejectedResult).reason)).toMatch(/statement timeout/);
    const later = await Promise.all(['x1', 'x2', 'x3'].map((key) => store.claim(key, { leaseMs: 60_000 })));
    expect(later.map((c) => c.status)).toEqual(['claimed', 'claimed', 'claimed']);
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
  });

  it('never deadlocks a completion batch against a claim batch of copies, whatever order the calls came in', async () => {
    // Two app processes: one completes its events while the other claims copies of them. Each
    // statement locks the rows of many keys; unless both lock in one order, they deadlock, and
    // PostgreSQL cancels one (a 503, or a completion lost after its handler ran).
    const table = `batch_${++tables}`;
    const other = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 10 });
    other.on('error', () => undefined);
    const a = new PostgresStore({ pool, schema, table, purgeIntervalMs: 0 });
    const b = new PostgresStore({ pool: other, schema, table, purgeIntervalMs: 0 });
    await a.init();
    for (let round = 0; round < 8; round++) {
      const keys = Array.from({ length: 300 }, (_, i) => `r${round}-k${String(i).padStart(3, "0")}`);
      // One by one in reverse, so the table holds them against key order (as events arriving
      // over time leave it), whatever order a statement scans them in.
      const claims: Awaited<ReturnType<PostgresStore['claim']>>[] = [];
      for (const key of [...keys].reverse()) claims.unshift(await a.claim(key, { leaseMs: 60_000 }));
      const settled = await Promise.allSettled([
        ...keys
          .map((key, i) => ({ key, token: (claims[i] as { token: string }).token, i }))
          .reverse()
          .map(({ key, token, i }) =>
            i % 2 === 0 ? a.completeWithState(key, token, `pr-${round}-${299 - i}`, paid(key), { retentionMs: 60_000 }) : a.complete(key, token, { retentionMs: 60_000 }),
          ),
        ...keys.map((key) => b.claim(key, { leaseMs: 60_000 })),
      ]);
      expect(settled.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      const copies = settled.slice(300).map((r) => (r as PromiseFulfilledResult<{ status: string }>).value.status);
      expect(copies.filter((status) => status !== 'in_flight' && status !== 'done')).toEqual([]);
      const done = (await pool.query(`SELECT count(*)::int AS n FROM ${a.tableName} WHERE key LIKE $1 AND done`, [`r${round}-%`])).rows[0].n;
      expect(done).toBe(300);
    }
    await pool.query(`DROP TABLE ${a.tableName}, ${a.statesTableName}, ${a.inboxTableName}`);
    await Promise.all([a.close(), b.close()]);
    await other.end();
  }, 60_000);

  it('refuses a malformed batch option', () => {
    expect(() => new PostgresStore({ pool, batch: { maxSize: 0 } })).toThrow(/batch.maxSize must be an integer of at least 1, got 0/);
    expect(() => new PostgresStore({ pool, batch: { maxInFlight: 1.5 } })).toThrow(/batch.maxInFlight must be an integer/);
    expect(() => new PostgresStore({ pool, batch: true as unknown as false })).toThrow(/batch must be false or/);
  });
});

describe('PostgresStore prepared statements', () => {
  /** A one-connection pool, so the session's prepared statements can be listed afterwards. */
  async function onOneConnection(options: { preparedStatements?: boolean }) {
    const single = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 1 });
    const store = new PostgresStore({ pool: single, schema, table: `prep_${++tables}`, purgeIntervalMs: 0, ...options });
    await store.init();
    const claim = await store.claim('k1', { leaseMs: 60_000 });
    if (claim.status !== 'claimed') throw new Error('claim failed');
    await store.completeWithState('k1', claim.token, 'pr1', { key: 'k1', paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: 'now' }, { retentionMs: 60_000 });
    const { rows } = await single.query(`SELECT name FROM pg_prepared_statements WHERE name LIKE 'caibo_%'`);
    await single.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
    await single.end();
    return rows.length;
  }

  it('prepares the claim and completion statements once per connection by default', async () => {
    expect(await onOneConnection({})).toBe(2);
  });

  it('looks keys up through the primary key and purges through the expiry index, even in plans made while the table was empty', async () => {
    // A prepared statement keeps the plan PostgreSQL made for it early, when the table was new:
    // a join to the key table planned then is a sequential scan of the whole table on every batch
    // once it has grown. Generic plans are forced here, so every statement is planned at once,
    // on an empty table.
    const single = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 1, options: '-c plan_cache_mode=force_generic_plan' });
    const store = new PostgresStore({ pool: single, schema, table: `plans_${++tables}`, purgeIntervalMs: 0 });
    await store.init();
    const keys = Array.from({ length: 6 }, (_, i) => `plan-k${i}`);
    const claims = await Promise.all(keys.map((key) => store.claim(key, { leaseMs: 60_000 })));
    await Promise.all(
      keys.map((key, i) => {
        const token = (claims[i] as { token: string }).token;
        return i % 2 === 0 ? store.completeWithState(key, token, `pr-${i}`, paid(key), { retentionMs: 60_000 }) : store.complete(key, token, { retentionMs: 60_000 });
      }),
    );
    // Copies of done keys: the claim batch looks up why it took nothing.
    expect((await Promise.all(keys.map((key) => store.claim(key, { leaseMs: 60_000 })))).map((c) => c.status)).toEqual(keys.map(() => 'done'));
    // One at a time: the single-key forms.
    for (const withState of [false, true]) {
      const claim = await store.claim(`plan-single-${withState}`, { leaseMs: 60_000 });
      if (claim.status !== 'claimed') throw new Error('claim failed');
      if (withState) await store.completeWithState(`plan-single-${withState}`, claim.token, 'pr-single', paid(`plan-single-${withState}`), { retentionMs: 60_000 });
      else await store.complete(`plan-single-${withState}`, claim.token, { retentionMs: 60_000 });
    }

    await store.purge();

    const { rows } = await single.query(`SELECT name, statement, parameter_types::text[] AS types FROM pg_prepared_statements WHERE name LIKE 'caibo_%'`);
    // claim, complete and completeWithState, the batch forms of claim and of completion, and
    // the three purges.
    expect(rows.length).toBe(8);
    const dummy: Record<string, string> = { 'text[]': "'{}'", 'double precision[]': "'{}'", text: "'x'", 'double precision': '1', jsonb: "'{}'" };
    const plans: string[] = [];
    const purges: string[] = [];
    for (const row of rows as { name: string; statement: string; types: string[] }[]) {
      const args = row.types.map((type) => dummy[type] ?? 'NULL').join(', ');
      const explained = await single.query(`EXPLAIN (COSTS OFF) EXECUTE ${row.name}(${args})`);
      const plan = explained.rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      if (row.statement.startsWith('DELETE')) purges.push(plan);
      // The inbox (deferred mode) is off the path of a callback; the planner may scan it while it is small.
      if (!row.statement.includes('_inbox')) plans.push(plan);
    }
    for (const plan of plans) expect(plan).not.toMatch(/Seq Scan/);
    expect(plans.join('\n')).toMatch(new RegExp(`Index Scan using ${store.tableName.split('.')[1]!.replace(/"/g, '')}_pkey`));
    // Each purge reads its expiry index up to a bound, not every entry through a filter.
    expect(purges).toHaveLength(3);
    for (const plan of purges) expect(plan).toMatch(/Index Cond: \(expires_at < \$\d+\)/);
    await single.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
    await single.end();
  });

  it('sends unnamed statements with preparedStatements: false', async () => {
    expect(await onOneConnection({ preparedStatements: false })).toBe(0);
    expect(() => new PostgresStore({ pool, preparedStatements: 'yes' as unknown as boolean })).toThrow(/preparedStatements must be true or false/);
  });

  it('goes on with unnamed statements after a pooler refuses a named one, losing no operation', async () => {
    // PgBouncer in transaction mode (before 1.21) answers a named statement parsed on another
    // server connection with 26000. The pool below is real; only that refusal is injected, once.
    const sent: (string | undefined)[] = [];
    let refused = 0;
    const refusing = {
      query: async (config: { text: string; values?: unknown[]; name?: string }) => {
        sent.push(config.name);
        if (config.name !== undefined && refused === 0) {
          refused++;
          throw Object.assign(new Error('prepared statement "x" does not exist'), { code: '26000' });
        }
        return pool.query(config);
      },
      connect: async () => {
        const client = await pool.connect();
        return {
          query: (config: { text: string; values?: unknown[]; name?: string }) => refusing.query(config),
          release: (error?: Error | boolean) => client.release(error),
        };
      },
    };
    const store = new PostgresStore({ pool: refusing, schema, table: `prep_refused`, purgeIntervalMs: 0 });
    await store.init();
    const claim = await store.claim('k1', { leaseMs: 60_000 });
    expect(claim.status).toBe('claimed');
    await store.complete('k1', (claim as { token: string }).token, { retentionMs: 60_000 });
    expect((await store.claim('k1', { leaseMs: 60_000 })).status).toBe('done');
    expect(refused).toBe(1);
    // The schema is never named; the claim was named, refused, then sent unnamed; the rest unnamed.
    expect(sent).toEqual([undefined, expect.stringMatching(/^caibo_/), undefined, undefined, undefined]);
    await pool.query(`DROP TABLE ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
    await store.close();
  });
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

  it('creates the deferred-mode inbox table on init(), and exports its SQL', async () => {
    const store = new PostgresStore({ pool, schema, table: 'inbox_schema', purgeIntervalMs: 0 });
    await store.init();
    expect(store.durable).toBe(true);
    expect(store.inboxTableName).toBe(`"${schema}"."inbox_schema_inbox"`);
    const { rows } = await pool.query(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'inbox_schema_inbox' ORDER BY ordinal_position`,
      [schema],
    );
    expect(rows.map((r: { column_name: string }) => r.column_name)).toEqual([
      'key', 'seq', 'state', 'payload', 'attempts', 'next_attempt_at', 'token', 'lease_until', 'last_error', 'created_at', 'expires_at',
    ]);
    expect(postgresStoreSchema({ schema, table: 'inbox_schema' })).toContain(`CREATE TABLE IF NOT EXISTS "${schema}"."inbox_schema_inbox"`);
    await store.enqueue('evt', 'p');
    const [leased] = await store.lease({ limit: 1, leaseMs: 10_000 });
    await store.ack('evt', leased!.token, { retentionMs: 86_400_000 });
    const { rows: done } = await pool.query(`SELECT state, payload, token, expires_at > now() + interval '23 hours' AS kept FROM ${store.inboxTableName}`);
    expect(done).toEqual([{ state: 'done', payload: '', token: null, kept: true }]);
    await store.close();
  });

  it('purges done inbox records past their retention, and nothing else of the inbox', async () => {
    const store = new PostgresStore({ pool, schema, table: 'inbox_purge', purgeIntervalMs: 0 });
    await store.init();
    for (const key of ['old-done', 'live-done', 'pending', 'dead']) await store.enqueue(key, 'p');
    const leased = new Map((await store.lease({ limit: 10, leaseMs: 60_000 })).map((r) => [r.key, r.token]));
    await store.ack('old-done', leased.get('old-done')!, { retentionMs: 1 });
    await store.ack('live-done', leased.get('live-done')!, { retentionMs: 60_000 });
    await store.fail('pending', leased.get('pending')!, { error: 'e', retryAt: Date.now() + 60_000 });
    await store.fail('dead', leased.get('dead')!, { error: 'e', retryAt: null });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.purge()).toBe(1);
    const { rows } = await pool.query(`SELECT key, state FROM ${store.inboxTableName} ORDER BY key`);
    expect(rows).toEqual([
      { key: 'dead', state: 'dead' },
      { key: 'live-done', state: 'done' },
      { key: 'pending', state: 'pending' },
    ]);
    await store.close();
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

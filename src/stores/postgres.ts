import { createHash, randomUUID } from 'node:crypto';
import { Batcher, batchOptions, type BatchOptions } from './batch';
import { batchDeadline, checkTimeout, withTimeout } from './timeout';
import type {
  CallbackStore,
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InboxRecord,
  InboxState,
  InboxStore,
  LeasedRecord,
  PaymentState,
  PaymentStateStore,
} from './types';

export { StoreTimeoutError } from './timeout';

/** A query in `pg`'s config form; `query_timeout` makes `pg` drop a connection that stops answering. */
export interface PgQueryConfig {
  text: string;
  values?: unknown[];
  query_timeout?: number;
  /** A prepared statement's name: `pg` parses it once per connection, then only binds and runs it. */
  name?: string;
}

/** The result of a query, as far as the store reads it. */
export interface PgResultLike {
  rows: unknown[];
  rowCount: number | null;
}

/** A client checked out of a `pg` Pool. */
export interface PgPoolClientLike {
  query(config: PgQueryConfig): Promise<PgResultLike>;
  /** Returns the client to the pool; with an error, the pool destroys it instead. */
  release(error?: Error | boolean): void;
}

/** A `pg` Pool (or anything with its `query` and `connect`). */
export interface PgPoolLike {
  query(config: PgQueryConfig): Promise<PgResultLike>;
  connect(): Promise<PgPoolClientLike>;
}

/** Options for {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** A `pg` Pool. The store never ends it: the application owns it. */
  pool: PgPoolLike;
  /**
   * The table's name, created by `init()` with a `<table>_states` companion for the ordering guard
   * and a `<table>_inbox` one for deferred mode. Letters, digits and `_`, 56 at most. Defaults to
   * `'caibo_callbacks'`.
   */
  table?: string;
  /** The table's schema. Defaults to the connection's `search_path` (usually `public`). */
  schema?: string;
  /**
   * How long one operation may take before it fails, in milliseconds; `0` waits forever. A failed
   * claim makes the router answer 503 with `Retry-After`. Defaults to `2000`.
   */
  operationTimeoutMs?: number;
  /**
   * How often expired rows are deleted, in milliseconds; `0` turns the purge off (run
   * {@link PostgresStore.purge} yourself). The timer starts in `init()`, never keeps the process
   * alive, and stops on `close()`. Defaults to `60_000`.
   */
  purgeIntervalMs?: number;
  /** The most rows one purge round deletes, so a purge never holds long locks. Defaults to `1000`. */
  purgeBatchSize?: number;
  /**
   * Sends the store's statements as named prepared statements, which the server parses and plans
   * once per connection instead of on every call (about 30% more callbacks per second on the
   * bench). A pooler that cannot keep them (PgBouncer in transaction mode before 1.21) is detected
   * on its first refusal, and the store goes on with unnamed statements. Defaults to `true`.
   */
  preparedStatements?: boolean;
  /**
   * Group commit: the claims (and the completions) that concurrent requests make at the same
   * time go to the database as one statement, so one commit serves many events. A request alone
   * is sent at once, as before; under load, while `maxInFlight` statements of a kind are
   * running, the next one gathers everything that arrived meanwhile, up to `maxSize` events.
   * Each event keeps its own outcome (a key claimed twice in one batch is claimed once), and a
   * failed statement fails only the operations in it (a failed claim: 503). `false` sends one statement per
   * operation. Defaults to `{ maxSize: 100, maxInFlight: 4 }`: up to 8 of the pool's connections.
   */
  batch?: false | { maxSize?: number; maxInFlight?: number };
}

/** What one claim in a batch asks for. */
interface ClaimItem {
  key: string;
  token: string;
  leaseMs: number;
}

/** What one completion in a batch asks for: the key, and for a final payment state the state too. */
interface CompleteItem {
  /** The store method that asked, named by its timeout error. */
  operation: 'complete' | 'completeWithState';
  key: string;
  token: string;
  retentionMs: number;
  state?: { paymentRequestId: string; json: string };
}

/** The server refused a named statement: it does not exist on this connection, or exists already (a pooler swapped connections). */
function isPreparedStatementRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '26000' || code === '42P05';
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function identifier(what: string, value: unknown, max = 63): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.length > max) {
    throw new TypeError(`PostgresStore: ${what} must be letters, digits and _ (not starting with a digit), ${max} at most; got ${JSON.stringify(value)}`);
  }
  return `"${value}"`;
}

/** The qualified, quoted table name for `table` and `schema`; throws on an unsafe identifier. */
function qualified(table: string, schema: string | undefined, suffix = ''): string {
  const name = identifier('table', table, 56).slice(0, -1) + suffix + '"';
  return schema === undefined ? name : `${identifier('schema', schema)}.${name}`;
}

/**
 * The SQL that creates the store's tables and indexes, for a migration tool. `init()` runs the
 * same. In the main table, `key` is the event's dedupe key; `token` fences the current lease;
 * `expires_at` is the lease end while `done` is false, the retention end once it is true. The
 * `_inbox` table holds deferred-mode records: `payload` is the stored event (emptied once done),
 * `next_attempt_at` when a pending record is due, `lease_until` when a running one's lease ends,
 * `expires_at` when a done one is forgotten; `seq` keeps enqueue order.
 */
export function postgresStoreSchema(options: { table?: string; schema?: string } = {}): string {
  const table = options.table ?? 'caibo_callbacks';
  const name = qualified(table, options.schema);
  const states = qualified(table, options.schema, '_states');
  const index = identifier('index', `${table}_expires_idx`);
  const statesIndex = identifier('index', `${table}_states_expires_idx`);
  const inbox = qualified(table, options.schema, '_inbox');
  const inboxIndex = (suffix: string): string => identifier('index', `${table}_inbox_${suffix}_idx`);
  return [
    `CREATE TABLE IF NOT EXISTS ${name} (`,
    '  key text PRIMARY KEY,',
    '  token text NOT NULL,',
    '  done boolean NOT NULL DEFAULT false,',
    '  expires_at timestamptz NOT NULL',
    ');',
    `CREATE INDEX IF NOT EXISTS ${index} ON ${name} (expires_at);`,
    `CREATE TABLE IF NOT EXISTS ${states} (`,
    '  payment_request_id text PRIMARY KEY,',
    '  state jsonb NOT NULL,',
    '  expires_at timestamptz NOT NULL',
    ');',
    `CREATE INDEX IF NOT EXISTS ${statesIndex} ON ${states} (expires_at);`,
    `CREATE TABLE IF NOT EXISTS ${inbox} (`,
    '  key text PRIMARY KEY,',
    '  seq bigint GENERATED ALWAYS AS IDENTITY,',
    "  state text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),",
    '  payload text NOT NULL,',
    '  attempts integer NOT NULL DEFAULT 0,',
    '  next_attempt_at timestamptz NOT NULL,',
    '  token text,',
    '  lease_until timestamptz,',
    '  last_error text,',
    '  created_at timestamptz NOT NULL,',
    '  expires_at timestamptz',
    ');',
    `CREATE INDEX IF NOT EXISTS ${inboxIndex('pending')} ON ${inbox} (next_attempt_at) WHERE state = 'pending';`,
    `CREATE INDEX IF NOT EXISTS ${inboxIndex('running')} ON ${inbox} (lease_until) WHERE state = 'running';`,
    `CREATE INDEX IF NOT EXISTS ${inboxIndex('expires')} ON ${inbox} (expires_at) WHERE state = 'done';`,
    `CREATE INDEX IF NOT EXISTS ${inboxIndex('list')} ON ${inbox} (state, created_at, seq);`,
  ].join('\n');
}

/** An inbox row as the store's queries return it (times as epoch ms). */
interface InboxRow {
  key: string;
  payload: string;
  state: InboxState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  token?: string;
}

function inboxRecord(row: InboxRow): InboxRecord {
  return {
    key: row.key,
    payload: row.payload,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: Number(row.next_attempt_at),
    lastError: row.last_error,
    createdAt: Number(row.created_at),
  };
}

/** Epoch milliseconds of a timestamptz column, exact (numeric arithmetic, not floating point). */
const ms = (column: string): string => `(floor(extract(epoch from ${column}) * 1000))::float8`;
const INBOX_COLUMNS = `key, payload, state, attempts, ${ms('next_attempt_at')} AS next_attempt_at, last_error, ${ms('created_at')} AS created_at`;

interface ClaimRow {
  claimed: boolean;
  done: boolean | null;
}

/** A claim statement's row for each of a batch's keys. */
interface BatchClaimRow extends ClaimRow {
  key: string;
}

/**
 * A dedupe store on PostgreSQL, shared by every process and machine using the same table. Each
 * operation is one statement (concurrent claims, and concurrent completions, share one: see
 * `batch`); time is the database's clock, so app servers' clocks never matter.
 * Its deferred-mode inbox (`<table>_inbox`) is durable: leases are taken with
 * `FOR UPDATE SKIP LOCKED`, so workers on many machines share it without waiting on each other.
 *
 * ```ts
 * import { Pool } from 'pg';
 * import { PostgresStore } from 'caibo-callbacks/postgres';
 * const store = new PostgresStore({ pool: new Pool({ connectionString: process.env.DATABASE_URL }) });
 * ```
 */
export class PostgresStore implements CallbackStore, PaymentStateStore, InboxStore {
  /** The inbox is a table: it survives restarts. */
  readonly durable = true;
  /** The quoted, schema-qualified table name. */
  readonly tableName: string;
  /** The quoted, schema-qualified name of the ordering guard's states table. */
  readonly statesTableName: string;
  /** The quoted, schema-qualified name of the deferred-mode inbox table. */
  readonly inboxTableName: string;
  readonly operationTimeoutMs: number;
  private readonly pool: PgPoolLike;
  private readonly schemaSql: string;
  private readonly purgeIntervalMs: number;
  private readonly purgeBatchSize: number;
  private readonly sql: {
    claim: string;
    complete: string;
    release: string;
    purge: string;
    getState: string;
    setState: string;
    completeWithState: string;
    claimBatch: string;
    completeBatch: string;
    purgeStates: string;
    enqueue: string;
    lease: string;
    ack: string;
    fail: string;
    list: string;
    replay: string;
    purgeInbox: string;
  };
  private timer: NodeJS.Timeout | undefined;
  private purging = false;
  private closed = false;
  /** Statement names by text, while prepared statements are on. */
  private prepared: Map<string, string> | null;
  /** Group commit of claims and of completions; `null` with `batch: false`. */
  private readonly claims: Batcher<ClaimItem, ClaimRow> | null;
  private readonly completions: Batcher<CompleteItem, void> | null;

  constructor(options: PostgresStoreOptions) {
    if (options === null || typeof options !== 'object' || typeof options.pool?.query !== 'function' || typeof options.pool.connect !== 'function') {
      throw new TypeError('PostgresStore: pass { pool } with a pg Pool (new Pool({ connectionString }))');
    }
    this.pool = options.pool;
    const table = options.table ?? 'caibo_callbacks';
    this.tableName = qualified(table, options.schema);
    this.schemaSql = postgresStoreSchema({ table, ...(options.schema !== undefined && { schema: options.schema }) });
    this.operationTimeoutMs = checkTimeout('PostgresStore', options.operationTimeoutMs, 2_000);
    this.purgeIntervalMs = nonNegativeInt('purgeIntervalMs', options.purgeIntervalMs, 60_000);
    this.purgeBatchSize = nonNegativeInt('purgeBatchSize', options.purgeBatchSize, 1_000, 1);
    if (options.preparedStatements !== undefined && typeof options.preparedStatements !== 'boolean') {
      throw new TypeError('PostgresStore: preparedStatements must be true or false');
    }
    const batch: BatchOptions | null = batchOptions('PostgresStore', options.batch, { maxSize: 100, maxInFlight: 4 });
    // Each batched operation keeps its own operationTimeoutMs through the batcher's deadline: one
    // timer per batch, not one per operation. A claim that lands after its time is released.
    const timeoutMs = this.operationTimeoutMs;
    this.claims =
      batch &&
      new Batcher(
        (items) => this.claimBatch(items),
        batch,
        batchDeadline<ClaimItem, ClaimRow>('PostgresStore', timeoutMs, () => 'claim', (item, row) => this.releaseLate(item, row)),
      );
    this.completions =
      batch && new Batcher((items) => this.completeBatch(items), batch, batchDeadline<CompleteItem, void>('PostgresStore', timeoutMs, (item) => item.operation));

    const t = this.tableName;
    const st = qualified(table, options.schema, '_states');
    this.statesTableName = st;
    const ib = qualified(table, options.schema, '_inbox');
    this.inboxTableName = ib;
    const expiry = `clock_timestamp() + $3::double precision * interval '1 millisecond'`;
    this.sql = {
      // The INSERT takes an absent or expired key; when it takes nothing, the row as this
      // statement saw it says why. A row it cannot see was inserted by a concurrent claim.
      claim: `WITH taken AS (
  INSERT INTO ${t} AS c (key, token, done, expires_at) VALUES ($1, $2, false, ${expiry})
  ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, done = false, expires_at = EXCLUDED.expires_at
  WHERE c.expires_at <= clock_timestamp()
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM taken) AS claimed,
  (SELECT done AND expires_at > clock_timestamp() FROM ${t} WHERE key = $1) AS done`,
      complete: `UPDATE ${t} SET done = true, expires_at = ${expiry} WHERE key = $1 AND token = $2 AND NOT done`,
      release: `DELETE FROM ${t} WHERE key = $1 AND token = $2 AND NOT done`,
      // SKIP LOCKED: never wait for (or on) a row a claim is taking over right now. The purges
      // read the expiry index from its oldest end up to now, so a purge that finds nothing
      // expired reads next to nothing: the time is taken once, as a bound for the index (a
      // volatile clock_timestamp() in the condition would filter every entry instead), and the
      // rows are then deleted by key (a join there can be planned as a scan of the whole table;
      // the key and state tables find `key = ANY` through their primary key in any plan, the
      // wider inbox, off the callback path, may still be scanned while it is small).
      purge: `DELETE FROM ${t} WHERE key = ANY (ARRAY(
  SELECT key FROM ${t} WHERE expires_at < (SELECT clock_timestamp()) ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
))`,
      getState: `SELECT state FROM ${st} WHERE payment_request_id = $1 AND expires_at > clock_timestamp()`,
      setState: `INSERT INTO ${st} (payment_request_id, state, expires_at) VALUES ($1, $2, ${expiry})
ON CONFLICT (payment_request_id) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at`,
      // One statement, so one commit. Every statement locks key rows (in key order) before
      // state rows (in id order), so no two of them wait for each other: the INSERT's gate reads
      // the UPDATE's result, which makes the UPDATE run first. (Left unread, a data-modifying CTE
      // runs after the main statement.)
      completeWithState: `WITH completed AS (
  UPDATE ${t} SET done = true, expires_at = ${expiry} WHERE key = $1 AND token = $2 AND NOT done RETURNING 1
)
INSERT INTO ${st} (payment_request_id, state, expires_at)
SELECT $4::text, $5::jsonb, ${expiry} WHERE (SELECT count(*) FROM completed) >= 0
ON CONFLICT (payment_request_id) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at`,
      // The batch forms take arrays (one element per event, keys distinct). Rows are inserted in
      // key order, so two batches that share a key (two copies of one event) lock in the same
      // order and never deadlock; a key in no row was taken by a concurrent claim. A key not
      // taken is looked up on its own (a correlated subquery: an index lookup in any plan; a join
      // would become a scan of the whole table in a plan cached while the table was small).
      claimBatch: `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(key, token, ms)
), taken AS (
  INSERT INTO ${t} AS c (key, token, done, expires_at)
  SELECT key, token, false, clock_timestamp() + ms * interval '1 millisecond' FROM input ORDER BY key
  ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, done = false, expires_at = EXCLUDED.expires_at
  WHERE c.expires_at <= clock_timestamp()
  RETURNING c.key
)
SELECT input.key, taken.key IS NOT NULL AS claimed,
  CASE WHEN taken.key IS NULL THEN (SELECT c.done AND c.expires_at > clock_timestamp() FROM ${t} AS c WHERE c.key = input.key) END AS done
FROM input LEFT JOIN taken ON taken.key = input.key`,
      // Completions fenced by token, and the final states (ids distinct) of those that have one.
      // Each key row is locked in key order (the sorted input drives a lateral lookup per key),
      // as a claim batch locks copies of the same keys, so the two never deadlock; the state rows
      // come after. The rows are then marked done through ON CONFLICT on the primary key: they
      // exist and are locked, so every one conflicts and none is inserted.
      // Why this shape: the statement is prepared, and PostgreSQL keeps the plan it made while
      // the table was new and small. A join there becomes a sequential scan of the whole table
      // on every batch as the table grows; a per-key lateral lookup and ON CONFLICT's arbiter
      // index can only be index lookups.
      completeBatch: `WITH locked AS MATERIALIZED (
  SELECT l.key, u.token, u.ms
  FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) AS i(key, token, ms) ORDER BY key) AS u
  CROSS JOIN LATERAL (SELECT c.key FROM ${t} AS c WHERE c.key = u.key AND c.token = u.token AND NOT c.done FOR UPDATE) AS l
), completed AS (
  INSERT INTO ${t} AS c (key, token, done, expires_at)
  SELECT key, token, true, clock_timestamp() + ms * interval '1 millisecond' FROM locked ORDER BY key
  ON CONFLICT (key) DO UPDATE SET done = true, expires_at = EXCLUDED.expires_at
  WHERE c.token = EXCLUDED.token AND NOT c.done
  RETURNING 1
)
INSERT INTO ${st} (payment_request_id, state, expires_at)
SELECT id, state::jsonb, clock_timestamp() + ms * interval '1 millisecond'
FROM unnest($4::text[], $5::text[], $6::float8[]) AS s(id, state, ms)
WHERE (SELECT count(*) FROM completed) >= 0 ORDER BY id
ON CONFLICT (payment_request_id) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at`,
      purgeStates: `DELETE FROM ${st} WHERE payment_request_id = ANY (ARRAY(
  SELECT payment_request_id FROM ${st} WHERE expires_at < (SELECT clock_timestamp()) ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
))`,
      // A done record past its retention is absent: the new event takes its row. Of concurrent
      // inserts one wins; the others wait for it and then see a row they may not take.
      enqueue: `INSERT INTO ${ib} AS i (key, state, payload, attempts, next_attempt_at, created_at)
VALUES ($1, 'pending', $2, 0, clock_timestamp(), clock_timestamp())
ON CONFLICT (key) DO UPDATE SET state = 'pending', payload = EXCLUDED.payload, attempts = 0,
  next_attempt_at = EXCLUDED.next_attempt_at, created_at = EXCLUDED.created_at,
  token = NULL, lease_until = NULL, last_error = NULL, expires_at = NULL
WHERE i.state = 'done' AND i.expires_at <= clock_timestamp()
RETURNING 1`,
      // SKIP LOCKED: concurrent workers take disjoint records and never wait for each other; the
      // lock re-checks the row, so one taken and committed meanwhile is not taken again.
      lease: `WITH due AS MATERIALIZED (
  SELECT key FROM ${ib}
  WHERE (state = 'pending' AND next_attempt_at <= clock_timestamp()) OR (state = 'running' AND lease_until <= clock_timestamp())
  ORDER BY next_attempt_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE ${ib} AS i SET state = 'running', token = gen_random_uuid()::text, attempts = i.attempts + 1,
  lease_until = clock_timestamp() + $2::double precision * interval '1 millisecond'
FROM due WHERE i.key = due.key
RETURNING i.key, i.token, i.payload, i.state, i.attempts, ${ms('i.next_attempt_at')} AS next_attempt_at, i.last_error, ${ms('i.created_at')} AS created_at`,
      ack: `UPDATE ${ib} SET state = 'done', payload = '', token = NULL, lease_until = NULL, expires_at = ${expiry}
WHERE key = $1 AND token = $2 AND state = 'running'`,
      fail: `UPDATE ${ib} SET token = NULL, lease_until = NULL, last_error = $3,
  state = CASE WHEN $4::bigint IS NULL THEN 'dead' ELSE 'pending' END,
  next_attempt_at = CASE WHEN $4::bigint IS NULL THEN next_attempt_at ELSE 'epoch'::timestamptz + $4::bigint * interval '1 millisecond' END
WHERE key = $1 AND token = $2 AND state = 'running'`,
      list: `SELECT ${INBOX_COLUMNS} FROM ${ib} WHERE state = ANY($1::text[]) ORDER BY created_at, seq LIMIT $2`,
      replay: `UPDATE ${ib} SET state = 'pending', attempts = 0, next_attempt_at = clock_timestamp() WHERE key = $1 AND state = 'dead'`,
      purgeInbox: `DELETE FROM ${ib} WHERE key = ANY (ARRAY(
  SELECT key FROM ${ib} WHERE state = 'done' AND expires_at < (SELECT clock_timestamp()) ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
))`,
    };
    // Named by a digest of the text: two stores on different tables never share a name on a connection.
    this.prepared =
      options.preparedStatements === false
        ? null
        : new Map(Object.values(this.sql).map((text) => [text, `caibo_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`]));
  }

  /** The query config for `text`: named while prepared statements are on (the schema, several statements, never is). */
  private statement(text: string, values: unknown[]): PgQueryConfig {
    const name = this.prepared?.get(text);
    return name === undefined ? { text, values } : { text, values, name };
  }

  /**
   * Runs `config`; if the server refused it as a named statement, turns prepared statements off
   * for good and runs it once more unnamed (a refused statement did not run).
   */
  private async withFallback(config: PgQueryConfig, run: (config: PgQueryConfig) => Promise<PgResultLike>): Promise<PgResultLike> {
    try {
      return await run(config);
    } catch (error) {
      if (config.name === undefined || !isPreparedStatementRefusal(error)) throw error;
      this.prepared = null;
      const unnamed: PgQueryConfig = { ...config };
      delete unnamed.name;
      return run(unnamed);
    }
  }

  /** The SQL `init()` runs: the tables and their indexes. */
  get schemaStatements(): string {
    return this.schemaSql;
  }

  /** Creates the tables and indexes if they are missing, and starts the purge timer. */
  async init(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.query('init', this.schemaSql, []);
        break;
      } catch (error) {
        // Two processes creating the table at once: one loses a catalog race; the table is there.
        const code = (error as { code?: unknown }).code;
        if (attempt >= 3 || (code !== '23505' && code !== '42P07')) throw error;
      }
    }
    if (this.purgeIntervalMs > 0 && this.timer === undefined && !this.closed) {
      this.timer = setInterval(() => void this.purge().catch(() => undefined), this.purgeIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Claims `key`. When the network stalls, the router gives up after `operationTimeoutMs`, but
   * the statement may still reach the server and take the key: a claim that succeeds after it was
   * abandoned is released at once, instead of blocking redeliveries for a whole lease.
   */
  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const item: ClaimItem = { key, token: randomUUID(), leaseMs: opts.leaseMs };
    const row = this.claims
      ? await this.claims.add(item)
      : await withTimeout(this.claimOne(item), this.operationTimeoutMs, { store: 'PostgresStore', operation: 'claim' }, (late) =>
          this.releaseLate(item, late),
        );
    if (row.claimed) return { status: 'claimed', token: item.token };
    return row.done === true ? { status: 'done' } : { status: 'in_flight' };
  }

  /** A claim that took its key after it was given up: release it, or redeliveries wait out the lease. */
  private releaseLate(item: ClaimItem, late: ClaimRow): void {
    if (late.claimed) this.release(item.key, item.token).catch(() => undefined);
  }

  private async claimOne(item: ClaimItem): Promise<ClaimRow> {
    const result = await this.onOwnClient(this.statement(this.sql.claim, [item.key, item.token, item.leaseMs]), item.leaseMs);
    return (result.rows[0] as ClaimRow | undefined) ?? { claimed: false, done: null };
  }

  /**
   * One statement for a batch of claims. A key twice in the batch (two copies of one event at
   * once) is sent once; its second copy finds it in flight, or done, as a later claim would.
   */
  private async claimBatch(items: ClaimItem[]): Promise<ClaimRow[]> {
    if (items.length === 1) return [await this.claimOne(items[0]!)];
    const first = new Map<string, number>();
    const keys: string[] = [];
    const tokens: string[] = [];
    const leases: number[] = [];
    let longest = 0;
    items.forEach((item, i) => {
      if (first.has(item.key)) return;
      first.set(item.key, i);
      keys.push(item.key);
      tokens.push(item.token);
      leases.push(item.leaseMs);
      longest = Math.max(longest, item.leaseMs);
    });
    const result = await this.onOwnClient(this.statement(this.sql.claimBatch, [keys, tokens, leases]), longest);
    const rows = new Map((result.rows as BatchClaimRow[]).map((row) => [row.key, row]));
    return items.map((item, i): ClaimRow => {
      const row = rows.get(item.key) ?? { claimed: false, done: null };
      if (first.get(item.key) === i) return row;
      return { claimed: false, done: row.claimed ? false : row.done };
    });
  }

  /**
   * Runs a claim on a client of its own, without pg's `query_timeout`, so a stalled claim's real
   * outcome is still learnt (and a late success released by {@link claim}). After the lease the
   * wait is pointless, and the client is destroyed.
   */
  private async onOwnClient(config: PgQueryConfig, leaseMs: number): Promise<PgResultLike> {
    const client = await this.pool.connect();
    let settled = false;
    let abandoned = false;
    const timeout = this.operationTimeoutMs;
    const backstop =
      timeout > 0
        ? setTimeout(() => {
            if (!settled) {
              abandoned = true;
              client.release(new Error('PostgresStore: claim abandoned after its lease'));
            }
          }, Math.max(leaseMs, timeout)).unref()
        : undefined;
    try {
      const result = await this.withFallback(config, (c) => client.query(c));
      settled = true;
      if (!abandoned) client.release();
      return result;
    } catch (error) {
      settled = true;
      if (!abandoned) client.release(error instanceof Error ? error : true);
      throw error;
    } finally {
      clearTimeout(backstop);
    }
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    await this.completeOne({ operation: 'complete', key, token, retentionMs: opts.retentionMs });
  }

  /** One completion, in the next batch (or alone with `batch: false`), within `operationTimeoutMs`. */
  private completeOne(item: CompleteItem): Promise<unknown> {
    if (this.completions) return this.completions.add(item);
    return withTimeout(this.completeBatch([item]), this.operationTimeoutMs, { store: 'PostgresStore', operation: item.operation });
  }

  /**
   * One statement for a batch of completions (with the final states of those that carry one).
   * Of two states for one payment request in a batch, the later one is kept, as two calls in
   * turn would leave it.
   */
  private async completeBatch(items: CompleteItem[]): Promise<void[]> {
    if (items.length === 1) {
      const { key, token, retentionMs, state } = items[0]!;
      if (state === undefined) await this.run(this.sql.complete, [key, token, retentionMs]);
      else await this.run(this.sql.completeWithState, [key, token, retentionMs, state.paymentRequestId, state.json]);
      return [undefined];
    }
    const states = new Map<string, { json: string; retentionMs: number }>();
    for (const { state, retentionMs } of items) {
      if (state === undefined) continue;
      states.delete(state.paymentRequestId);
      states.set(state.paymentRequestId, { json: state.json, retentionMs });
    }
    await this.run(this.sql.completeBatch, [
      items.map((item) => item.key),
      items.map((item) => item.token),
      items.map((item) => item.retentionMs),
      [...states.keys()],
      [...states.values()].map((state) => state.json),
      [...states.values()].map((state) => state.retentionMs),
    ]);
    return items.map(() => undefined);
  }

  async release(key: string, token: string): Promise<void> {
    await this.query('release', this.sql.release, [key, token]);
  }

  /**
   * Deletes expired rows, `purgeBatchSize` per statement, for at most ten rounds (and one round
   * each of expired ordering-guard states and of done inbox records past their retention);
   * returns how many went. The timer calls it; call it yourself when `purgeIntervalMs` is `0`.
   */
  async purge(): Promise<number> {
    if (this.purging) return 0;
    this.purging = true;
    try {
      let total = 0;
      for (let round = 0; round < 10 && !this.closed; round++) {
        const { rowCount } = await this.query('purge', this.sql.purge, [this.purgeBatchSize]);
        total += rowCount ?? 0;
        if ((rowCount ?? 0) < this.purgeBatchSize) break;
      }
      if (!this.closed) total += (await this.query('purge', this.sql.purgeStates, [this.purgeBatchSize])).rowCount ?? 0;
      if (!this.closed) total += (await this.query('purge', this.sql.purgeInbox, [this.purgeBatchSize])).rowCount ?? 0;
      return total;
    } finally {
      this.purging = false;
    }
  }

  /** The ordering guard's last final state of a payment request, or `null`. */
  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    const { rows } = await this.query('getPaymentState', this.sql.getState, [paymentRequestId]);
    return (rows[0] as { state: PaymentState } | undefined)?.state ?? null;
  }

  /** Records the last final state of a payment request, kept `retentionMs`. */
  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    await this.query('setPaymentState', this.sql.setState, [paymentRequestId, JSON.stringify(state), opts.retentionMs]);
  }

  /** `complete` and `setPaymentState` in one statement (one commit instead of two). */
  async completeWithState(key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    await this.completeOne({
      operation: 'completeWithState',
      key,
      token,
      retentionMs: opts.retentionMs,
      state: { paymentRequestId, json: JSON.stringify(state) },
    });
  }

  /** Inserts a pending record due now, unless `key` is in the inbox in any state (done ones until their retention ends). */
  async enqueue(key: string, payload: string): Promise<'enqueued' | 'duplicate'> {
    const { rowCount } = await this.query('enqueue', this.sql.enqueue, [key, payload]);
    return rowCount === 1 ? 'enqueued' : 'duplicate';
  }

  /** Leases up to `limit` due records in one statement (`FOR UPDATE SKIP LOCKED`). */
  async lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]> {
    const { rows } = await this.query('lease', this.sql.lease, [opts.limit, opts.leaseMs]);
    return (rows as InboxRow[]).map((row) => ({ ...inboxRecord(row), token: row.token! }));
  }

  /** Marks a leased record done (if `token` holds it) and empties its payload; the row is purged after `retentionMs`. */
  async ack(key: string, token: string, opts: CompleteOptions): Promise<void> {
    await this.query('ack', this.sql.ack, [key, token, opts.retentionMs]);
  }

  /** Records a failed run (if `token` holds the lease): pending again at `retryAt`, or dead when it is `null`. */
  async fail(key: string, token: string, opts: { error: string; retryAt: number | null }): Promise<void> {
    const retryAt = opts.retryAt === null ? null : Math.round(opts.retryAt);
    await this.query('fail', this.sql.fail, [key, token, opts.error, retryAt]);
  }

  /** Pending (and running) or dead records, oldest first. */
  async list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]> {
    const states = state === 'dead' ? ['dead'] : ['pending', 'running'];
    const { rows } = await this.query('list', this.sql.list, [states, Math.max(0, opts.limit)]);
    return (rows as InboxRow[]).map(inboxRecord);
  }

  /** Moves a dead record back to pending, due now, attempts reset; `false` if it is not dead. */
  async replay(key: string): Promise<boolean> {
    const { rowCount } = await this.query('replay', this.sql.replay, [key]);
    return rowCount === 1;
  }

  /** Stops the purge timer. The pool belongs to the application, which ends it. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One statement on any pooled client, within `operationTimeoutMs`. */
  private query(operation: string, text: string, values: unknown[]): Promise<PgResultLike> {
    return withTimeout(this.run(text, values), this.operationTimeoutMs, { store: 'PostgresStore', operation });
  }

  /** One statement on any pooled client; pg's `query_timeout` drops a connection that stops answering. */
  private run(text: string, values: unknown[]): Promise<PgResultLike> {
    const config = this.statement(text, values);
    if (this.operationTimeoutMs > 0) config.query_timeout = this.operationTimeoutMs;
    return this.withFallback(config, (c) => this.pool.query(c));
  }
}

function nonNegativeInt(name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`PostgresStore: ${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

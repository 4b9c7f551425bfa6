import { randomUUID } from 'node:crypto';
import { checkTimeout, withTimeout } from './timeout';
import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions, PaymentState, PaymentStateStore } from './types';

export { StoreTimeoutError } from './timeout';

/** A query in `pg`'s config form; `query_timeout` makes `pg` drop a connection that stops answering. */
export interface PgQueryConfig {
  text: string;
  values?: unknown[];
  query_timeout?: number;
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
   * The table's name, created by `init()` with a `<table>_states` companion for the ordering guard.
   * Letters, digits and `_`, 56 at most. Defaults to `'caibo_callbacks'`.
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
 * The SQL that creates the store's table and index, for a migration tool. `init()` runs the same.
 * `key` is the event's dedupe key; `token` fences the current lease; `expires_at` is the lease end
 * while `done` is false, the retention end once it is true.
 */
export function postgresStoreSchema(options: { table?: string; schema?: string } = {}): string {
  const table = options.table ?? 'caibo_callbacks';
  const name = qualified(table, options.schema);
  const states = qualified(table, options.schema, '_states');
  const index = identifier('index', `${table}_expires_idx`);
  const statesIndex = identifier('index', `${table}_states_expires_idx`);
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
  ].join('\n');
}

interface ClaimRow {
  claimed: boolean;
  done: boolean | null;
}

/**
 * A dedupe store on PostgreSQL, shared by every process and machine using the same table. Each
 * operation is one statement; time is the database's clock, so app servers' clocks never matter.
 *
 * ```ts
 * import { Pool } from 'pg';
 * import { PostgresStore } from 'caibo-callbacks/postgres';
 * const store = new PostgresStore({ pool: new Pool({ connectionString: process.env.DATABASE_URL }) });
 * ```
 */
export class PostgresStore implements CallbackStore, PaymentStateStore {
  /** The quoted, schema-qualified table name. */
  readonly tableName: string;
  /** The quoted, schema-qualified name of the ordering guard's states table. */
  readonly statesTableName: string;
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
    purgeStates: string;
  };
  private timer: NodeJS.Timeout | undefined;
  private purging = false;
  private closed = false;

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

    const t = this.tableName;
    const st = qualified(table, options.schema, '_states');
    this.statesTableName = st;
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
      // SKIP LOCKED: never wait for (or on) a row a claim is taking over right now.
      purge: `DELETE FROM ${t} WHERE key IN (
  SELECT key FROM ${t} WHERE expires_at < clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED
)`,
      getState: `SELECT state FROM ${st} WHERE payment_request_id = $1 AND expires_at > clock_timestamp()`,
      setState: `INSERT INTO ${st} (payment_request_id, state, expires_at) VALUES ($1, $2, ${expiry})
ON CONFLICT (payment_request_id) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at`,
      purgeStates: `DELETE FROM ${st} WHERE payment_request_id IN (
  SELECT payment_request_id FROM ${st} WHERE expires_at < clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED
)`,
    };
  }

  /** The SQL `init()` runs: the table and its expiry index. */
  get schemaStatements(): string {
    return this.schemaSql;
  }

  /** Creates the table and index if they are missing, and starts the purge timer. */
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

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const token = randomUUID();
    const result = await withTimeout(this.claimOnce(key, token, opts.leaseMs), this.operationTimeoutMs, {
      store: 'PostgresStore',
      operation: 'claim',
    });
    const row = result.rows[0] as ClaimRow | undefined;
    if (row?.claimed) return { status: 'claimed', token };
    return row?.done === true ? { status: 'done' } : { status: 'in_flight' };
  }

  /**
   * Runs the claim on a client of its own, without pg's `query_timeout`: when the network stalls,
   * the router gives up after `operationTimeoutMs`, but the statement may still reach the server
   * and take the key. Waiting for its real outcome lets such a late claim be released at once,
   * instead of blocking redeliveries for a whole lease. After the lease the wait is pointless,
   * and the client is destroyed.
   */
  private async claimOnce(key: string, token: string, leaseMs: number): Promise<PgResultLike> {
    const started = Date.now();
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
      const result = await client.query({ text: this.sql.claim, values: [key, token, leaseMs] });
      settled = true;
      if (!abandoned) client.release();
      if (timeout > 0 && Date.now() - started > timeout && (result.rows[0] as ClaimRow | undefined)?.claimed) {
        // The caller has already answered 503: give the key back for the redelivery.
        this.release(key, token).catch(() => undefined);
      }
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
    await this.query('complete', this.sql.complete, [key, token, opts.retentionMs]);
  }

  async release(key: string, token: string): Promise<void> {
    await this.query('release', this.sql.release, [key, token]);
  }

  /**
   * Deletes expired rows, `purgeBatchSize` per statement, for at most ten rounds (and one round of
   * expired ordering-guard states); returns how many went. The timer calls it; call it yourself when `purgeIntervalMs` is `0`.
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

  /** Stops the purge timer. The pool belongs to the application, which ends it. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One statement on any pooled client; pg's `query_timeout` drops a connection that stops answering. */
  private query(operation: string, text: string, values: unknown[]): Promise<PgResultLike> {
    const limit = this.operationTimeoutMs > 0 ? { query_timeout: this.operationTimeoutMs } : {};
    return withTimeout(this.pool.query({ text, values, ...limit }), this.operationTimeoutMs, { store: 'PostgresStore', operation });
  }
}

function nonNegativeInt(name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`PostgresStore: ${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

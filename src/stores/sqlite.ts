import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { Batcher, batchOptions } from './batch';
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

/** A prepared statement of better-sqlite3, as far as the store uses it. */
export interface SqliteStatementLike {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** A better-sqlite3 `Database`, as far as the store uses it. */
export interface SqliteDatabaseLike {
  prepare(source: string): SqliteStatementLike;
  exec(source: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
}

interface CommonOptions {
  /**
   * The table's name (with a `<table>_states` companion for the ordering guard and a
   * `<table>_inbox` one for deferred mode). Letters, digits and `_`. Defaults to `'caibo_callbacks'`.
   */
  table?: string;
  /**
   * How long a write waits for another process's write lock before failing (the router then
   * answers 503), in milliseconds. Defaults to `5000`.
   */
  busyTimeoutMs?: number;
  /**
   * How often expired rows are deleted, in milliseconds; `0` turns it off (call
   * {@link SqliteStore.purge} yourself). The timer never keeps the process alive and stops on
   * `close()`. Defaults to `60_000`.
   */
  purgeIntervalMs?: number;
  /** The most rows one purge round deletes. Defaults to `1000`. */
  purgeBatchSize?: number;
  /**
   * Group commit: the claims and completions that concurrent requests make in one turn of the
   * event loop run in one transaction, so one commit (one WAL append) serves many events. Each
   * event keeps its own outcome; if the transaction fails, only its operations fail (a failed
   * claim: 503), and none of their writes is kept. A request alone still runs on the same turn.
   * `false` gives each operation its own transaction. Defaults to `{ maxSize: 100 }` operations
   * per transaction.
   */
  batch?: false | { maxSize?: number };
}

/** Options for {@link SqliteStore}: a file path (the store opens and owns it) or an open database. */
export type SqliteStoreOptions =
  | (CommonOptions & {
      /** The database file; created if missing. Opened in WAL mode, so several processes can share it. */
      path: string;
      database?: never;
    })
  | (CommonOptions & {
      /**
       * An open better-sqlite3 database. The store sets its `busy_timeout` but leaves its journal
       * mode to you (WAL is recommended) and never closes it.
       */
      database: SqliteDatabaseLike;
      path?: never;
    });

type DatabaseConstructor = new (path: string, options?: { timeout?: number }) => SqliteDatabaseLike;

/**
 * Loads better-sqlite3 when a store is opened by path, so importing `caibo-callbacks/sqlite`
 * (or the root package) never loads a native module, and a missing driver says what to install.
 */
function loadDriver(): DatabaseConstructor {
  const load = createRequire(__filename);
  try {
    return load('better-sqlite3') as DatabaseConstructor;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'MODULE_NOT_FOUND') {
      throw new Error('SqliteStore needs the better-sqlite3 package: run `npm install better-sqlite3` (version 12 on Node 20, 13 on Node 22 and later)', { cause: error });
    }
    throw error;
  }
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** WAL pages between automatic checkpoints, on a file the store opens (SQLite's default: 1,000). */
const WAL_AUTOCHECKPOINT_PAGES = 8_000;

/**
 * The SQL that creates the store's tables and indexes. The store runs it itself when it opens.
 * Times are epoch milliseconds. In `<table>_inbox` (deferred mode), `seq` keeps enqueue order,
 * `payload` is the stored event (emptied once done), `next_attempt_at` is when a pending record
 * is due, `lease_until` when a running one's lease ends, `expires_at` when a done one is forgotten.
 */
export function sqliteStoreSchema(options: { table?: string } = {}): string {
  const table = options.table ?? 'caibo_callbacks';
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new TypeError(`SqliteStore: table must be letters, digits and _ (not starting with a digit), 63 at most; got ${JSON.stringify(table)}`);
  }
  return [
    `CREATE TABLE IF NOT EXISTS "${table}" (`,
    '  key TEXT PRIMARY KEY NOT NULL,',
    '  token TEXT NOT NULL,',
    '  done INTEGER NOT NULL DEFAULT 0,',
    '  expires_at INTEGER NOT NULL',
    ') WITHOUT ROWID;',
    `CREATE INDEX IF NOT EXISTS "${table}_expires_idx" ON "${table}" (expires_at);`,
    `CREATE TABLE IF NOT EXISTS "${table}_states" (`,
    '  payment_request_id TEXT PRIMARY KEY NOT NULL,',
    '  state TEXT NOT NULL,',
    '  expires_at INTEGER NOT NULL',
    ') WITHOUT ROWID;',
    `CREATE TABLE IF NOT EXISTS "${table}_inbox" (`,
    '  seq INTEGER PRIMARY KEY,',
    '  key TEXT NOT NULL UNIQUE,',
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),",
    '  payload TEXT NOT NULL,',
    '  attempts INTEGER NOT NULL DEFAULT 0,',
    '  next_attempt_at INTEGER NOT NULL,',
    '  token TEXT,',
    '  lease_until INTEGER,',
    '  last_error TEXT,',
    '  created_at INTEGER NOT NULL,',
    '  expires_at INTEGER',
    ');',
    `CREATE INDEX IF NOT EXISTS "${table}_inbox_pending_idx" ON "${table}_inbox" (next_attempt_at) WHERE state = 'pending';`,
    `CREATE INDEX IF NOT EXISTS "${table}_inbox_running_idx" ON "${table}_inbox" (lease_until) WHERE state = 'running';`,
    `CREATE INDEX IF NOT EXISTS "${table}_inbox_expires_idx" ON "${table}_inbox" (expires_at) WHERE state = 'done';`,
    `CREATE INDEX IF NOT EXISTS "${table}_inbox_state_idx" ON "${table}_inbox" (state, seq);`,
  ].join('\n');
}

/**
 * A dedupe store in a SQLite file (better-sqlite3 12 on Node 20, 13 on Node 22+): survives
 * restarts with no server to run. The persistent default for a single machine; several
 * processes on that machine may share the file. Writes run in short `BEGIN IMMEDIATE`
 * transactions (the claims and completions of one event-loop turn share one), so claims from
 * different processes are serialised by SQLite's write lock. Its deferred-mode inbox
 * (`<table>_inbox`) is durable, and workers in several processes on the machine share it the
 * same way.
 *
 * ```ts
 * import { SqliteStore } from 'caibo-callbacks/sqlite';
 * const store = new SqliteStore({ path: './data/caibo-callbacks.sqlite' });
 * ```
 */
export class SqliteStore implements CallbackStore, PaymentStateStore, InboxStore {
  /** The inbox is in the file: it survives restarts. */
  readonly durable = true;
  readonly database: SqliteDatabaseLike;
  private readonly owned: boolean;
  private readonly statements: {
    begin: SqliteStatementLike;
    commit: SqliteStatementLike;
    rollback: SqliteStatementLike;
    take: SqliteStatementLike;
    done: SqliteStatementLike;
    complete: SqliteStatementLike;
    release: SqliteStatementLike;
    purge: SqliteStatementLike;
    getState: SqliteStatementLike;
    setState: SqliteStatementLike;
    purgeStates: SqliteStatementLike;
    inboxFind: SqliteStatementLike;
    inboxDelete: SqliteStatementLike;
    inboxInsert: SqliteStatementLike;
    inboxDue: SqliteStatementLike;
    inboxTake: SqliteStatementLike;
    inboxAck: SqliteStatementLike;
    inboxFail: SqliteStatementLike;
    inboxList: SqliteStatementLike;
    inboxReplay: SqliteStatementLike;
    purgeInbox: SqliteStatementLike;
  };
  private readonly purgeBatchSize: number;
  private timer: NodeJS.Timeout | undefined;
  /** Writes waiting for the turn's shared transaction; `null` with `batch: false`. */
  private readonly writes: Batcher<() => unknown, unknown> | null;

  constructor(options: SqliteStoreOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('SqliteStore: pass { path } or { database }');
    const busyTimeoutMs = int('busyTimeoutMs', options.busyTimeoutMs, 5_000, 0);
    const purgeIntervalMs = int('purgeIntervalMs', options.purgeIntervalMs, 60_000, 0);
    this.purgeBatchSize = int('purgeBatchSize', options.purgeBatchSize, 1_000, 1);
    if (typeof options.batch === 'object' && options.batch !== null && 'maxInFlight' in options.batch) {
      throw new TypeError('SqliteStore: batch takes only maxSize (SQLite has one writer: transactions never run at once)');
    }
    const batch = batchOptions('SqliteStore', options.batch, { maxSize: 100, maxInFlight: 1 });
    this.writes = batch && new Batcher((writes) => this.transaction(() => writes.map((write) => write())), batch);
    const schema = sqliteStoreSchema({ ...(options.table !== undefined && { table: options.table }) });
    const t = `"${options.table ?? 'caibo_callbacks'}"`;
    const st = `"${options.table ?? 'caibo_callbacks'}_states"`;
    const ib = `"${options.table ?? 'caibo_callbacks'}_inbox"`;

    if (typeof options.path === 'string' && options.path.length > 0) {
      const Database = loadDriver();
      this.database = new Database(options.path, { timeout: busyTimeoutMs });
      this.owned = true;
      try {
        // WAL: readers never block the writer, and other processes can use the file at once.
        this.database.pragma('journal_mode = WAL');
        // A checkpoint every 8,000 WAL pages (32 MB at 4 KB) instead of SQLite's 1,000: the same
        // hot pages are written into the WAL by commit after commit, and a checkpoint copies each
        // once, so fewer checkpoints copy far less. The SQLite bench row gained about 25%, and its
        // p99 went from 18 to 37 ms (a checkpoint runs inside a commit and now copies more at a
        // time); bench/README.md, "SQLite: fewer checkpoints".
        this.database.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      } catch (error) {
        this.database.close();
        throw error;
      }
    } else if (options.database !== undefined && typeof options.database?.prepare === 'function') {
      this.database = options.database;
      this.owned = false;
    } else {
      throw new TypeError('SqliteStore: pass { path: "./callbacks.sqlite" } or { database } (an open better-sqlite3 Database)');
    }
    const db = this.database;
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    db.exec(schema);
    this.statements = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      take: db.prepare(
        `INSERT INTO ${t} (key, token, done, expires_at) VALUES (@key, @token, 0, @now + @ms)
         ON CONFLICT (key) DO UPDATE SET token = excluded.token, done = 0, expires_at = excluded.expires_at
         WHERE ${t}.expires_at <= @now`,
      ),
      done: db.prepare(`SELECT done FROM ${t} WHERE key = ?`),
      complete: db.prepare(`UPDATE ${t} SET done = 1, expires_at = @now + @ms WHERE key = @key AND token = @token AND done = 0`),
      release: db.prepare(`DELETE FROM ${t} WHERE key = ? AND token = ? AND done = 0`),
      purge: db.prepare(`DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE expires_at < ? LIMIT ?)`),
      getState: db.prepare(`SELECT state FROM ${st} WHERE payment_request_id = ? AND expires_at > ?`),
      setState: db.prepare(
        `INSERT INTO ${st} (payment_request_id, state, expires_at) VALUES (@id, @state, @expires)
         ON CONFLICT (payment_request_id) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at`,
      ),
      purgeStates: db.prepare(
        `DELETE FROM ${st} WHERE payment_request_id IN (SELECT payment_request_id FROM ${st} WHERE expires_at < ? LIMIT ?)`,
      ),
      inboxFind: db.prepare(`SELECT state, expires_at FROM ${ib} WHERE key = ?`),
      inboxDelete: db.prepare(`DELETE FROM ${ib} WHERE key = ?`),
      inboxInsert: db.prepare(
        `INSERT INTO ${ib} (key, state, payload, attempts, next_attempt_at, created_at) VALUES (@key, 'pending', @payload, 0, @now, @now)`,
      ),
      inboxDue: db.prepare(
        `SELECT ${INBOX_COLUMNS} FROM ${ib}
         WHERE (state = 'pending' AND next_attempt_at <= @now) OR (state = 'running' AND lease_until <= @now)
         ORDER BY next_attempt_at, seq LIMIT @limit`,
      ),
      inboxTake: db.prepare(`UPDATE ${ib} SET state = 'running', token = @token, lease_until = @until, attempts = attempts + 1 WHERE key = @key`),
      inboxAck: db.prepare(
        `UPDATE ${ib} SET state = 'done', payload = '', token = NULL, lease_until = NULL, expires_at = @expires
         WHERE key = @key AND token = @token AND state = 'running'`,
      ),
      inboxFail: db.prepare(
        `UPDATE ${ib} SET token = NULL, lease_until = NULL, last_error = @error,
           state = CASE WHEN @retryAt IS NULL THEN 'dead' ELSE 'pending' END,
           next_attempt_at = coalesce(@retryAt, next_attempt_at)
         WHERE key = @key AND token = @token AND state = 'running'`,
      ),
      inboxList: db.prepare(`SELECT ${INBOX_COLUMNS} FROM ${ib} WHERE state IN (?, ?) ORDER BY seq LIMIT ?`),
      inboxReplay: db.prepare(`UPDATE ${ib} SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE key = ? AND state = 'dead'`),
      purgeInbox: db.prepare(`DELETE FROM ${ib} WHERE seq IN (SELECT seq FROM ${ib} WHERE state = 'done' AND expires_at < ? LIMIT ?)`),
    };
    if (purgeIntervalMs > 0) {
      this.timer = setInterval(() => {
        try {
          this.purge();
        } catch {
          // Busy or closed: the next round tries again.
        }
      }, purgeIntervalMs);
      this.timer.unref();
    }
  }

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const token = randomUUID();
    const claim = (): ClaimResult => {
      if (this.statements.take.run({ key, token, now: Date.now(), ms: opts.leaseMs }).changes === 1) return { status: 'claimed', token };
      const row = this.statements.done.get(key) as { done: number } | undefined;
      return row?.done === 1 ? { status: 'done' } : { status: 'in_flight' };
    };
    return this.write(claim);
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    await this.write(() => void this.statements.complete.run({ key, token, now: Date.now(), ms: opts.retentionMs }));
  }

  async release(key: string, token: string): Promise<void> {
    this.statements.release.run(key, token);
  }

  /**
   * Deletes expired rows, `purgeBatchSize` per round, ten rounds at most (and one round each of
   * expired ordering-guard states and of done inbox records past their retention); returns how many went.
   */
  purge(): number {
    let total = 0;
    for (let round = 0; round < 10; round++) {
      const { changes } = this.statements.purge.run(Date.now(), this.purgeBatchSize);
      total += changes;
      if (changes < this.purgeBatchSize) break;
    }
    total += this.statements.purgeStates.run(Date.now(), this.purgeBatchSize).changes;
    total += this.statements.purgeInbox.run(Date.now(), this.purgeBatchSize).changes;
    return total;
  }

  /** Inserts a pending record due now, unless `key` is in the inbox in any state (done ones until their retention ends). */
  async enqueue(key: string, payload: string): Promise<'enqueued' | 'duplicate'> {
    const now = Date.now();
    return this.transaction(() => {
      const held = this.statements.inboxFind.get(key) as { state: InboxState; expires_at: number | null } | undefined;
      if (held !== undefined) {
        if (!(held.state === 'done' && held.expires_at !== null && held.expires_at <= now)) return 'duplicate';
        // Past its retention the done record is absent; a fresh row keeps enqueue order right.
        this.statements.inboxDelete.run(key);
      }
      this.statements.inboxInsert.run({ key, payload, now });
      return 'enqueued';
    });
  }

  /** Leases up to `limit` due records in one write-locked transaction. */
  async lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]> {
    const now = Date.now();
    return this.transaction(() => {
      const due = this.statements.inboxDue.all({ now, limit: opts.limit }) as InboxRow[];
      return due.map((row) => {
        const token = randomUUID();
        this.statements.inboxTake.run({ key: row.key, token, until: now + opts.leaseMs });
        return { ...inboxRecord(row), state: 'running' as const, attempts: row.attempts + 1, token };
      });
    });
  }

  /** Marks a leased record done (if `token` holds it) and empties its payload; purged after `retentionMs`. */
  async ack(key: string, token: string, opts: CompleteOptions): Promise<void> {
    this.statements.inboxAck.run({ key, token, expires: Date.now() + opts.retentionMs });
  }

  /** Records a failed run (if `token` holds the lease): pending again at `retryAt`, or dead when it is `null`. */
  async fail(key: string, token: string, opts: { error: string; retryAt: number | null }): Promise<void> {
    this.statements.inboxFail.run({ key, token, error: opts.error, retryAt: opts.retryAt === null ? null : Math.round(opts.retryAt) });
  }

  /** Pending (and running) or dead records, oldest first. */
  async list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]> {
    const [a, b] = state === 'dead' ? ['dead', 'dead'] : ['pending', 'running'];
    return (this.statements.inboxList.all(a, b, Math.max(0, opts.limit)) as InboxRow[]).map(inboxRecord);
  }

  /** Moves a dead record back to pending, due now, attempts reset; `false` if it is not dead. */
  async replay(key: string): Promise<boolean> {
    return this.statements.inboxReplay.run(Date.now(), key).changes === 1;
  }

  /** The ordering guard's last final state of a payment request, or `null`. */
  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    const row = this.statements.getState.get(paymentRequestId, Date.now()) as { state: string } | undefined;
    return row === undefined ? null : (JSON.parse(row.state) as PaymentState);
  }

  /** Records the last final state of a payment request, kept `retentionMs`. */
  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    this.statements.setState.run({ id: paymentRequestId, state: JSON.stringify(state), expires: Date.now() + opts.retentionMs });
  }

  /** `complete` and `setPaymentState` in one transaction: one commit instead of two. */
  async completeWithState(key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    const json = JSON.stringify(state);
    const completeWithState = (): void => {
      const now = Date.now();
      this.statements.complete.run({ key, token, now, ms: opts.retentionMs });
      this.statements.setState.run({ id: paymentRequestId, state: json, expires: now + opts.retentionMs });
    };
    await this.write(completeWithState);
  }

  /** Stops the purge timer, and closes the database if the store opened it. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.owned) this.database.close();
  }

  /** Runs `fn` in the turn's shared transaction, or (with `batch: false`) in one of its own. */
  private async write<T>(fn: () => T): Promise<T> {
    return this.writes ? ((await this.writes.add(fn)) as T) : this.transaction(fn);
  }

  /** Runs `fn` under SQLite's write lock, so a claim is atomic across processes. */
  private transaction<T>(fn: () => T): T {
    this.statements.begin.run();
    try {
      const result = fn();
      this.statements.commit.run();
      return result;
    } catch (error) {
      if (this.database.inTransaction) this.statements.rollback.run();
      throw error;
    }
  }
}

const INBOX_COLUMNS = 'key, payload, state, attempts, next_attempt_at, last_error, created_at';

/** An inbox row as the store selects it. */
interface InboxRow {
  key: string;
  payload: string;
  state: InboxState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
}

function inboxRecord(row: InboxRow): InboxRecord {
  return {
    key: row.key,
    payload: row.payload,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error,
    createdAt: row.created_at,
  };
}

function int(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`SqliteStore: ${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

'use strict';
// Deferred mode: each verified callback is written to a durable inbox (a SQLite file, or
// PostgreSQL when DATABASE_URL is set) and acknowledged at once; a worker in this process runs the
// handler with retries. A crash after the 200 loses nothing: the next process picks the event up.
const express = require('express');
const { caiboCallbacks } = require('caibo-callbacks');
const { SqliteStore } = require('caibo-callbacks/sqlite');
const { PostgresStore } = require('caibo-callbacks/postgres');

const UPSERT = (t, p) => `INSERT INTO ${t} (reference, status, amount, currency, updates) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, 1)
  ON CONFLICT (reference) DO UPDATE SET
    status = CASE WHEN ${t}.status = 'paid' THEN 'paid' ELSE excluded.status END,
    amount = excluded.amount, currency = excluded.currency, updates = ${t}.updates + 1`;
const ORDERS = (t) => `CREATE TABLE IF NOT EXISTS ${t} (reference TEXT PRIMARY KEY, status TEXT NOT NULL, amount TEXT, currency TEXT, updates INTEGER NOT NULL)`;

/** The orders table the handler writes, next to the inbox: in the SQLite file, or in PostgreSQL. */
function ordersIn(store, pool, table) {
  if (pool) {
    return {
      init: () => pool.query(ORDERS(table)),
      upsert: (values) => pool.query(UPSERT(table, (n) => `$${n}`), values),
      get: async (reference) => (await pool.query(`SELECT status, amount, currency, updates FROM ${table} WHERE reference = $1`, [reference])).rows[0],
    };
  }
  const db = store.database;
  db.exec(ORDERS(table));
  const upsert = db.prepare(UPSERT(table, () => '?'));
  const get = db.prepare(`SELECT status, amount, currency, updates FROM ${table} WHERE reference = ?`);
  return { init: async () => undefined, upsert: async (values) => upsert.run(...values), get: async (reference) => get.get(reference) };
}

/**
 * Builds the app. With `pool` (a pg Pool the app owns), the inbox and the orders live in
 * PostgreSQL; otherwise in the SQLite file at `path`. `inboxKeys` (32-byte keys, base64) encrypt
 * stored events: the first encrypts, all decrypt. Call `init()` before listening.
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  path = process.env.SQLITE_PATH || './callbacks.sqlite',
  pool,
  storeTable = 'caibo_callbacks',
  ordersTable = 'orders',
  inboxKeys = (process.env.CAIBO_INBOX_KEYS || '').split(',').map((s) => s.trim()).filter(Boolean),
  pollIntervalMs = 1000,
  logger,
} = {}) {
  const store = pool ? new PostgresStore({ pool, table: storeTable }) : new SqliteStore({ path, table: storeTable });
  const orders = ordersIn(store, pool, ordersTable);
  const app = express();

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    mode: 'deferred',
    maxAttempts: 8,
    backoff: { initialMs: 1000, maxMs: 5 * 60_000 },
    pollIntervalMs,
    ...(inboxKeys.length > 0 && { encryption: { keys: inboxKeys } }),
    // The handler needs no payer data: keep none at rest.
    payerData: 'drop',
    // Runs in the background, after the 200; a throw is retried with backoff.
    async onStatus(event, { signal }) {
      if (event.kind !== 'payment') return;
      signal.throwIfAborted();
      await orders.upsert([event.referenceId ?? event.paymentRequestId, event.paymentStatus, event.grossAmount ?? null, event.currency ?? null]);
    },
    onDead(event, error) {
      // Page someone: the event is parked; `router.replay(event.key)` runs it again once fixed.
      (logger || console).error({ key: event.key, type: error.type }, 'caibo event is dead');
    },
  });
  app.use('/callbacks', router);

  app.use(express.json());
  app.get('/orders/:id', async (req, res) => {
    const order = await orders.get(req.params.id);
    if (!order) return res.status(404).json({ error: 'not found' });
    res.json(order);
  });
  // Operations: what is waiting, what is dead, and a replay (protect these in a real app).
  app.get('/ops/deferred', async (_req, res) => res.json({ pending: await router.pending(100), dead: await router.dead(100) }));

  // The router creates the store's tables itself; `init()` creates the orders table.
  return { app, router, store, init: () => orders.init() };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error("Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo's addresses).");
    process.exit(1);
  }
  const pool = process.env.DATABASE_URL ? new (require('pg').Pool)({ connectionString: process.env.DATABASE_URL }) : undefined;
  pool?.on('error', (error) => console.error('pg pool error', error.message));
  const { app, router, init } = createApp({ pool, logger: console });
  const port = Number(process.env.PORT || 3000);
  init().then(() => {
    const server = app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
    // SIGTERM (a deploy, a scale-down): stop taking requests, let handlers in flight finish for
    // up to 20 s, stop the worker, close the store, then exit. Whatever is not finished stays in
    // the inbox and the next process runs it once its lease expires.
    let stopping = false;
    const shutdown = async () => {
      if (stopping) return;
      stopping = true;
      server.close();
      await router.close({ timeoutMs: 20_000 });
      await pool?.end();
      process.exit(0);
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}

'use strict';
// An Express app whose callbacks are deduped in PostgreSQL: shared by every instance that uses
// the same database, and kept across restarts. The handler updates the order in the same database.
const express = require('express');
const { Pool } = require('pg');
const { caiboCallbacks } = require('caibo-callbacks');
const { PostgresStore } = require('caibo-callbacks/postgres');

/**
 * Builds the app. `pool` is a pg Pool the app owns (the store never ends it). `init()` creates the
 * store's table and the orders table; in production you may run `postgresStoreSchema()` from a
 * migration instead.
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  pool,
  storeTable = 'caibo_callbacks',
  ordersTable = 'orders',
  logger,
} = {}) {
  const store = new PostgresStore({ pool, table: storeTable, operationTimeoutMs: 2000 });
  const app = express();

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    async onStatus(event) {
      if (event.kind !== 'payment') return;
      // Idempotent by construction too: a paid order never goes back to unpaid.
      await pool.query(
        `INSERT INTO ${ordersTable} (reference, status, amount, currency, updates) VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (reference) DO UPDATE SET
           status = CASE WHEN ${ordersTable}.status = 'paid' THEN 'paid' ELSE EXCLUDED.status END,
           amount = EXCLUDED.amount, currency = EXCLUDED.currency, updates = ${ordersTable}.updates + 1`,
        [event.referenceId ?? event.paymentRequestId, event.paymentStatus, event.grossAmount, event.currency],
      );
    },
  });
  app.use('/callbacks', router);

  app.use(express.json());
  app.get('/orders/:id', async (req, res) => {
    const { rows } = await pool.query(`SELECT status, amount::text AS amount, currency, updates FROM ${ordersTable} WHERE reference = $1`, [
      req.params.id,
    ]);
    if (rows.length === 0) return res.status(404).json({ error: 'not found' });
    res.json(rows[0]);
  });

  async function init() {
    await store.init();
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${ordersTable} (reference text PRIMARY KEY, status text NOT NULL, amount numeric, currency text, updates integer NOT NULL)`,
    );
  }
  return { app, router, store, init };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  const pool = new Pool({ connectionString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres' });
  // An idle client losing its connection emits 'error' on the pool: without a listener it crashes the process.
  pool.on('error', (error) => console.error('postgres:', error.message));
  const { app, router, init } = createApp({ pool, logger: console });
  init().then(() => {
    const port = Number(process.env.PORT || 3000);
    const server = app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
    process.once('SIGTERM', async () => {
      server.close();
      await router.close();
      await pool.end();
    });
  });
}

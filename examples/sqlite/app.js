'use strict';
// One server, no database server to run: callbacks are deduped in a SQLite file, so a restart
// does not forget which events were handled. The handler keeps orders in the same file.
const express = require('express');
const { caiboCallbacks } = require('caibo-callbacks');
const { SqliteStore } = require('caibo-callbacks/sqlite');

/**
 * Builds the app on the SQLite file at `path` (created if missing, opened in WAL mode). Several
 * processes on this machine (a cluster, pm2) may share the file.
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  path = process.env.SQLITE_PATH || './callbacks.sqlite',
  logger,
} = {}) {
  const store = new SqliteStore({ path });
  const db = store.database;
  db.exec('CREATE TABLE IF NOT EXISTS orders (reference TEXT PRIMARY KEY, status TEXT NOT NULL, amount TEXT, currency TEXT, updates INTEGER NOT NULL)');
  const upsert = db.prepare(
    `INSERT INTO orders (reference, status, amount, currency, updates) VALUES (?, ?, ?, ?, 1)
     ON CONFLICT (reference) DO UPDATE SET
       status = CASE WHEN orders.status = 'paid' THEN 'paid' ELSE excluded.status END,
       amount = excluded.amount, currency = excluded.currency, updates = orders.updates + 1`,
  );
  const app = express();

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    onStatus(event) {
      if (event.kind !== 'payment') return;
      upsert.run(event.referenceId ?? event.paymentRequestId, event.paymentStatus, event.grossAmount ?? null, event.currency ?? null);
    },
  });
  app.use('/callbacks', router);

  app.use(express.json());
  app.get('/orders/:id', (req, res) => {
    const order = db.prepare('SELECT status, amount, currency, updates FROM orders WHERE reference = ?').get(req.params.id);
    if (!order) return res.status(404).json({ error: 'not found' });
    res.json(order);
  });
  // router.close() closes the store, which closes the file it opened.
  return { app, router, store };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  const { app, router } = createApp({ logger: console });
  const port = Number(process.env.PORT || 3000);
  const server = app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
  process.once('SIGTERM', async () => {
    server.close();
    await router.close();
  });
}

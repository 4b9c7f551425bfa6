'use strict';
// A minimal merchant app: Caibo callbacks mark orders paid, exactly once each.
// Copy this folder as a starting point. In your own project `require('caibo-callbacks')`
// resolves to the installed package; here it resolves to this repository's build.
const express = require('express');
const { caiboCallbacks, MemoryStore } = require('caibo-callbacks');

/**
 * Builds the app. `orders` stands in for your database: replace markPaid with your own
 * update (idempotent where you can: `UPDATE orders SET status = 'paid' WHERE id = $1`).
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  store = new MemoryStore(),
  orders = new Map(),
  logger,
} = {}) {
  const app = express();
  // Behind a load balancer or reverse proxy, trust exactly its hop so req.ip is the caller:
  // app.set('trust proxy', 1);

  app.use(
    '/callbacks',
    caiboCallbacks({
      secret,
      allowIps,
      store,
      logger,
      async onStatus(event) {
        if (event.kind !== 'payment') return; // 3-D Secure results: see the README
        const order = event.referenceId ?? event.paymentRequestId;
        if (event.paymentStatus === 'paid') {
          orders.set(order, { status: 'paid', amount: event.grossAmount, currency: event.currency, paymentRequestId: event.paymentRequestId });
        } else if (!orders.has(order) || orders.get(order).status !== 'paid') {
          orders.set(order, { status: event.paymentStatus, paymentRequestId: event.paymentRequestId });
        }
      },
    }),
  );

  // Your own routes, parsers and the rest come after the callbacks router.
  app.use(express.json());
  app.get('/orders/:id', (req, res) => {
    const order = orders.get(req.params.id);
    if (!order) return res.status(404).json({ error: 'not found' });
    res.json(order);
  });
  return { app, orders, store };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  const port = Number(process.env.PORT || 3000);
  const { app } = createApp({ logger: console });
  app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
}

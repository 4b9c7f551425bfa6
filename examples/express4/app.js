'use strict';
// Caibo callbacks in an Express 4 app. The router writes its answers with plain node:http
// calls, so the same code runs on Express 4 and 5; nothing here is specific to either.
// In your own project `require('caibo-callbacks')` resolves to the installed package.
const { caiboCallbacks, MemoryStore } = require('caibo-callbacks');

/**
 * Builds the app. `express` is the Express module: with express@4 installed, the default
 * `require('express')` is Express 4. (This repository develops against Express 5, so its smoke
 * test passes Express 4 in explicitly.) `ledger` stands in for your database.
 */
function createApp({
  express = require('express'),
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  store = new MemoryStore(),
  ledger = [],
  trustProxy = false,
  logger,
} = {}) {
  const app = express();
  // Behind a load balancer, trust exactly its hops (1 for one proxy), never `true`: req.ip then
  // names the real caller, and the allowlist checks it.
  app.set('trust proxy', trustProxy);

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    async onStatus(event) {
      if (event.kind !== 'payment' || event.paymentStatus !== 'paid') return;
      // Amounts are decimal strings: hand them to your decimal type or database as they are.
      ledger.push({ paymentRequestId: event.paymentRequestId, amount: event.grossAmount, currency: event.currency });
    },
  });
  // Before express.json()/urlencoded(): the signature covers the raw body.
  app.use('/callbacks', router);

  app.use(express.json());
  app.get('/ledger', (req, res) => res.json(ledger));
  app.get('/healthz', (req, res) => {
    const { received, rates } = router.metrics();
    res.json({ ok: true, received, successRate: rates.successRate });
  });
  return { app, router, ledger, store };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  const port = Number(process.env.PORT || 3000);
  const { app } = createApp({ logger: console, trustProxy: process.env.TRUST_PROXY ? Number(process.env.TRUST_PROXY) : false });
  app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
}

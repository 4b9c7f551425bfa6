'use strict';
// Caibo callbacks in a Connect app (or any framework that takes (req, res, next) middleware).
// In your own project `require('caibo-callbacks')` resolves to the installed package; here it
// resolves to this repository's source.
const connect = require('connect');
const proxyaddr = require('proxy-addr');
const { caiboCallbacks, MemoryStore } = require('caibo-callbacks');

/**
 * Builds the app. `payments` stands in for your database. `trustProxy` is what Express calls
 * `trust proxy`: the proxies in front of the app (`'loopback'`, a CIDR list, a hop count).
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  store = new MemoryStore(),
  payments = new Map(),
  trustProxy,
  logger,
} = {}) {
  const app = connect();

  if (trustProxy !== undefined) {
    // Connect has no `trust proxy`. The router reads req.ip when it is set, so set it the way
    // Express does, with proxy-addr: only the hops you trust may name the caller.
    const trust = proxyaddr.compile(trustProxy);
    app.use((req, _res, next) => {
      req.ip = proxyaddr(req, trust);
      next();
    });
  }

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    async onStatus(event) {
      if (event.kind !== 'payment') return;
      payments.set(event.paymentRequestId, { status: event.paymentStatus, amount: event.grossAmount, currency: event.currency });
    },
  });
  app.use('/callbacks', router);

  // Operational view: the counters and the rates Caibo's guide asks you to watch.
  app.use('/metrics', (req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(router.metrics()));
  });
  return { app, router, payments, store };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  const http = require('node:http');
  const { app, router } = createApp({ logger: console });
  const server = http.createServer(app).listen(Number(process.env.PORT || 3000), () => {
    console.log(`Listening on http://localhost:${server.address().port}/callbacks/caibo`);
  });
  process.on('SIGTERM', () => server.close(() => router.close()));
}

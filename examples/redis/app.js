'use strict';
// Several instances behind a load balancer, one dedupe state in Redis: whichever instance a
// callback (or its redelivery) reaches, the handler runs once. Run two:
//   PORT=3000 node app.js & PORT=3001 node app.js
const express = require('express');
const Redis = require('ioredis');
const { caiboCallbacks } = require('caibo-callbacks');
const { RedisStore } = require('caibo-callbacks/redis');

/**
 * Builds one instance. `redis` is an ioredis client (a node-redis v4/v5 client works the same);
 * the app owns it and quits it on shutdown. Orders live in Redis too, so every instance sees them.
 */
function createApp({
  secret = process.env.CAIBO_SECRET,
  allowIps = (process.env.CAIBO_ALLOW_IPS || '').split(',').map((s) => s.trim()).filter(Boolean),
  redis,
  prefix = process.env.REDIS_PREFIX || 'shop:',
  logger,
} = {}) {
  const store = new RedisStore({ client: redis, prefix: `${prefix}caibo:`, operationTimeoutMs: 2000 });
  const app = express();
  // Behind the load balancer, trust exactly its hop so req.ip is Caibo's address:
  // app.set('trust proxy', 1);

  const router = caiboCallbacks({
    secret,
    allowIps,
    store,
    logger,
    async onStatus(event) {
      if (event.kind !== 'payment') return;
      const order = `${prefix}orders:${event.referenceId ?? event.paymentRequestId}`;
      // One write per handled event; a redelivery never reaches here.
      await redis
        .multi()
        .hset(order, { status: event.paymentStatus, amount: event.grossAmount ?? '', currency: event.currency ?? '' })
        .rpush(`${order}:events`, event.key)
        .exec();
    },
  });
  app.use('/callbacks', router);

  app.use(express.json());
  app.get('/orders/:id', async (req, res) => {
    const order = await redis.hgetall(`${prefix}orders:${req.params.id}`);
    if (Object.keys(order).length === 0) return res.status(404).json({ error: 'not found' });
    res.json(order);
  });
  return { app, router, store };
}

module.exports = { createApp };

if (require.main === module) {
  if (!process.env.CAIBO_SECRET) {
    console.error('Set CAIBO_SECRET to your Caibo API key (and CAIBO_ALLOW_IPS to Caibo\'s addresses).');
    process.exit(1);
  }
  // A plain client: the store batches the operations of concurrent callbacks itself, so
  // ioredis' auto-pipelining would only add work (see the README's Redis notes).
  const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
  redis.on('error', (error) => console.error('redis:', error.message));
  const { app, router } = createApp({ redis, logger: console });
  const port = Number(process.env.PORT || 3000);
  const server = app.listen(port, () => console.log(`Listening on http://localhost:${port}/callbacks/caibo`));
  process.once('SIGTERM', async () => {
    server.close();
    await router.close();
    await redis.quit();
  });
}

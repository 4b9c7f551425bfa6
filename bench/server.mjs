// One benchmark server variant per process: `node bench/server.mjs <variant>`, started by
// run.mjs (pinned with taskset) over an IPC channel. Sends { type: 'ready', port } once
// listening; on { type: 'stop' } closes, removes its store data, sends { type: 'stopped', stats }.
import http from 'node:http';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { carefulHandler, carefulReceiver } from './lib/careful.mjs';
import { unlinkPrefix } from './lib/redis-keys.mjs';
import { CAIBO_SECRET, OCTOKIT_SECRET, SVIX_SECRET, POOL_PATHS } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const variant = process.argv[2];
const tag = `${process.pid}_${randomBytes(3).toString('hex')}`;
let handled = 0;
const cleanups = [];
let extra = {};

function readRaw(req, cb) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => cb(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
}

function express5() {
  return require('express');
}
function express4() {
  return require('express4');
}

function bareExpress(express) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.post(POOL_PATHS.caibo, (_req, res) => {
    handled++;
    res.send('OK');
  });
  return app;
}

/** A module of the build under test; ours-base takes it from a baseline build (BENCH_BASE_DIST), for before/after runs. */
function dist(file) {
  if (variant === 'ours-base') return require(path.resolve(process.env.BENCH_BASE_DIST, file));
  return require(`../dist/${file}`);
}

/** The library, from the built package, as a merchant installs it. */
function lib() {
  return dist('index.cjs');
}

async function makeStore(kind) {
  // Reported to the harness, which then reads the database server's CPU (Redis, PostgreSQL).
  extra.store = kind;
  switch (kind) {
    case 'memory': {
      const { MemoryStore } = lib();
      return new MemoryStore();
    }
    case 'sqlite': {
      const { SqliteStore } = dist('sqlite.cjs');
      const file = path.join(os.tmpdir(), `caibo-bench-${tag}.sqlite`);
      cleanups.push(() => {
        for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      });
      return new SqliteStore({ path: file });
    }
    case 'redis': {
      const { RedisStore } = dist('redis.cjs');
      const Redis = require('ioredis');
      // A plain client, as the README recommends: the store batches concurrent operations itself.
      const client = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false });
      const prefix = `caibo-bench:${tag}:`;
      cleanups.push(async () => {
        // Remove every key this run wrote (they also expire: retentionMs is short in the bench).
        await unlinkPrefix(client, prefix);
        await client.quit();
      });
      return new RedisStore({ client, prefix });
    }
    case 'postgres': {
      const { PostgresStore } = dist('postgres.cjs');
      const { Pool } = require('pg');
      const pool = new Pool({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', max: 10 });
      const table = `caibo_bench_${tag}`;
      cleanups.push(async () => {
        const { rows } = await pool.query({ text: "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", values: [`${table}%`] });
        for (const { tablename } of rows) await pool.query(`DROP TABLE IF EXISTS "${tablename}"`);
        await pool.end();
      });
      return new PostgresStore({ pool, table });
    }
    default:
      throw new Error(`unknown store ${kind}`);
  }
}

let router;
async function ours(store, mode = 'inline') {
  const { caiboCallbacks } = lib();
  router = caiboCallbacks({
    secret: CAIBO_SECRET,
    allowIps: ['127.0.0.1', '::1'],
    store,
    mode,
    // Durable stores: a short retention, so nothing outlives the run even if cleanup fails.
    ...(store.constructor.name !== 'MemoryStore' && { retentionMs: 15 * 60_000 }),
    onStatus: () => {
      handled++;
    },
  });
  return router;
}

/** Plain node:http with the router as the listener, behind a one-line mount-prefix strip. */
function onHttp(handler) {
  return (req, res) => {
    if (req.url.startsWith('/callbacks/')) {
      req.url = req.url.slice('/callbacks'.length);
      handler(req, res);
    } else {
      res.statusCode = 404;
      res.end();
    }
  };
}

const DEFERRED_ORDER = ['redis', 'postgres', 'sqlite'];

async function listener() {
  switch (variant) {
    case 'A':
      return (req, res) =>
        readRaw(req, () => {
          handled++;
          res.end('OK');
        });
    case 'B':
      return bareExpress(express5());
    case 'B4':
      return bareExpress(express4());
    case 'C': {
      const express = express5();
      const app = express();
      const careful = carefulReceiver(CAIBO_SECRET);
      app.post(POOL_PATHS.caibo, express.raw({ type: 'application/x-www-form-urlencoded' }), (req, res) => {
        const status = careful.receive(req.body, req.get('x-signature'));
        res.status(status).send(status === 200 ? 'OK' : 'Refused');
      });
      extra.handled = careful.handled;
      return app;
    }
    case 'C2': {
      const careful = carefulHandler(CAIBO_SECRET);
      extra.handled = careful.handled;
      return (req, res) => {
        if (req.method !== 'POST' || req.url !== POOL_PATHS.caibo) {
          res.statusCode = 404;
          return res.end();
        }
        careful.handler(req, res);
      };
    }
    case 'octokit': {
      // ESM-only package.
      const { Webhooks, createNodeMiddleware } = await import('@octokit/webhooks');
      const webhooks = new Webhooks({ secret: OCTOKIT_SECRET });
      webhooks.on('check_run', () => {
        handled++;
      });
      const middleware = createNodeMiddleware(webhooks, { path: POOL_PATHS.octokit, log: { debug() {}, info() {}, warn() {}, error() {} } });
      return async (req, res) => {
        if (await middleware(req, res)) return;
        res.statusCode = 404;
        res.end();
      };
    }
    case 'svix': {
      const express = express5();
      const { Webhook } = require('svix');
      const wh = new Webhook(SVIX_SECRET);
      const app = express();
      app.post(POOL_PATHS.svix, express.raw({ type: 'application/json' }), (req, res) => {
        try {
          wh.verify(req.body, req.headers);
        } catch {
          return res.status(401).send('Refused');
        }
        handled++;
        res.send('OK');
      });
      return app;
    }
    case 'ours-e5':
    case 'ours-e4': {
      const express = variant === 'ours-e5' ? express5() : express4();
      const app = express();
      app.use('/callbacks', await ours(await makeStore('memory')));
      return app;
    }
    case 'ours-http':
      return onHttp(await ours(await makeStore('memory')));
    case 'ours-base':
      return onHttp(await ours(await makeStore(process.env.BENCH_BASE_STORE ?? 'memory')));
    case 'ours-default': {
      // No `store` option at all: the router's own default store (the soak).
      const { caiboCallbacks } = lib();
      router = caiboCallbacks({ secret: CAIBO_SECRET, allowIps: ['127.0.0.1', '::1'], onStatus: () => void handled++ });
      return onHttp(router);
    }
    case 'ours-sqlite':
      return onHttp(await ours(await makeStore('sqlite')));
    case 'ours-redis':
      return onHttp(await ours(await makeStore('redis')));
    case 'ours-postgres':
      return onHttp(await ours(await makeStore('postgres')));
    case 'ours-deferred': {
      // The first durable store (preferred one first) whose inbox exists yet.
      const wanted = process.env.BENCH_DEFERRED_STORE;
      const order = wanted ? [wanted, ...DEFERRED_ORDER.filter((s) => s !== wanted)] : DEFERRED_ORDER;
      for (const kind of order) {
        const store = await makeStore(kind);
        if (typeof store.enqueue === 'function') {
          extra.store = kind;
          return onHttp(await ours(store, 'deferred'));
        }
        for (const c of cleanups.splice(0)) await c();
      }
      return null;
    }
    default:
      throw new Error(`unknown variant ${variant}`);
  }
}

const handler = await listener();
if (handler === null) {
  process.send({ type: 'skip', reason: 'deferred mode: not supported by this store yet (no durable store implements enqueue)' });
  process.disconnect();
} else {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1', () => {
    process.send({ type: 'ready', port: server.address().port, store: extra.store });
  });
  process.on('message', async (msg) => {
    if (msg?.type !== 'stop') return;
    server.closeAllConnections?.();
    server.close();
    let pending;
    try {
      pending = router && router.pending ? (await router.pending(1_000_000).catch(() => [])).length : undefined;
    } catch {
      pending = undefined;
    }
    const metrics = router?.metrics?.();
    if (router) await router.close({ timeoutMs: 2_000 });
    for (const c of cleanups) await c();
    const count = extra.handled ? extra.handled() : handled;
    process.send({ type: 'stopped', stats: { handled: count, pending, received: metrics?.received, duplicate: metrics?.duplicate } }, () => process.exit(0));
  });
}

// The durable stores alone, without HTTP: STORE_LOOP_WORKERS concurrent workers each claim a new
// key and complete it with its ordering-guard state (what the router does for a handled final
// payment), for STORE_LOOP_SECONDS, once with the store's default group commit and once with
// `batch: false`. Prints events/s, this process's CPU per event and, for PostgreSQL and Redis on
// this machine, the database server's CPU per event. Not part of `npm test`:
//
//   npm run bench:stores                      # builds dist/, then postgres, sqlite, redis
//   STORE_LOOP_STORES=postgres node bench/store-loop.mjs   # after `npx tsup`
//   STORE_LOOP_BATCH='{"maxInFlight":1}' ...               # the batch option of the "default" runs
import { createRequire } from 'node:module';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unlinkPrefix } from './lib/redis-keys.mjs';

const require = createRequire(import.meta.url);
const env = process.env;
const WORKERS = Number(env.STORE_LOOP_WORKERS ?? 50);
const SECONDS = Number(env.STORE_LOOP_SECONDS ?? 5);
const STORES = (env.STORE_LOOP_STORES ?? 'postgres,sqlite,redis').split(',').map((s) => s.trim());
const CLK_TCK = 100;

/** utime + stime of a process, in clock ticks, or 0 once it is gone. */
function ticks(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

async function open(kind, batch) {
  const tag = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const options = batch === 'false' ? { batch: false } : env.STORE_LOOP_BATCH ? { batch: JSON.parse(env.STORE_LOOP_BATCH) } : {};
  switch (kind) {
    case 'postgres': {
      const { Pool } = require('pg');
      const { PostgresStore } = require('../dist/postgres.cjs');
      const pool = new Pool({ host: '127.0.0.1', user: 'postgres', database: 'test', max: 10, application_name: `caibo-store-loop-${tag}` });
      const store = new PostgresStore({ pool, table: `caibo_loop_${tag}`, ...options });
      const backends = async () =>
        (await pool.query({ text: 'SELECT pid FROM pg_stat_activity WHERE application_name = $1', values: [`caibo-store-loop-${tag}`] })).rows.map((r) => r.pid);
      return {
        store,
        backends,
        close: async () => {
          await pool.query(`DROP TABLE IF EXISTS ${store.tableName}, ${store.statesTableName}, ${store.inboxTableName}`);
          await store.close();
          await pool.end();
        },
      };
    }
    case 'sqlite': {
      const { SqliteStore } = require('../dist/sqlite.cjs');
      const file = path.join(os.tmpdir(), `caibo-loop-${tag}.sqlite`);
      const store = new SqliteStore({ path: file, ...options });
      return {
        store,
        close: async () => {
          await store.close();
          for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
        },
      };
    }
    case 'redis': {
      const Redis = require('ioredis');
      const { RedisStore } = require('../dist/redis.cjs');
      const client = new Redis({ host: '127.0.0.1', port: 6379 });
      const prefix = `caibo-loop:${tag}:`;
      const store = new RedisStore({ client, prefix, ...options });
      // Redis's own process, when it runs on this machine (its CPU counts as the database's).
      const info = String(await client.info('server'));
      const redisPid = Number(/process_id:(\d+)/.exec(info)?.[1]);
      const local = ['127.0.0.1', 'localhost', '::1'].includes(client.options.host) && ticks(redisPid) > 0;
      return {
        store,
        backends: local ? async () => [redisPid] : undefined,
        close: async () => {
          await unlinkPrefix(client, prefix);
          await client.quit();
        },
      };
    }
    default:
      throw new Error(`unknown store ${kind}`);
  }
}

async function measure(kind, batch) {
  const { store, backends, close } = await open(kind, batch);
  await store.init?.();
  let next = 16772761082427695n; // Caibo-like ids, increasing, as a live feed sends them
  let events = 0;
  let stop = false;
  const step = async () => {
    const key = `caibo:${next++}:265111:1:1`;
    const claim = await store.claim(key, { leaseMs: 30_000 });
    if (claim.status !== 'claimed') throw new Error(`${key}: ${claim.status}`);
    const state = { key, paymentStatus: 'paid', transactionStatus: 'approved', receivedAt: new Date().toISOString() };
    await store.completeWithState(key, claim.token, key.split(':')[1], state, { retentionMs: 15 * 60_000 });
  };
  // Warm-up: opens the pool's connections and prepares the statements.
  await Promise.all(Array.from({ length: WORKERS }, step));
  const db0 = new Map((backends ? await backends() : []).map((pid) => [pid, ticks(pid)]));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  setTimeout(() => (stop = true), SECONDS * 1000);
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (!stop) {
        await step();
        events++;
        // SQLite answers without I/O waits: yield, or the timer that stops the run never fires.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // Backends opened during the run count from zero.
  const pids = backends ? await backends() : [];
  const db = pids.reduce((sum, pid) => sum + ticks(pid) - (db0.get(pid) ?? 0), 0);
  await close();
  const perEvent = (us) => `${Math.round(us / events)} µs`;
  console.log(
    `${kind.padEnd(9)} batch ${batch.padEnd(7)} ${Math.round(events / seconds).toLocaleString('en-US').padStart(7)} events/s` +
      `  node CPU/event ${perEvent(cpu.user + cpu.system)}` +
      (pids.length === 0 ? '' : kind === 'redis' ? `  Redis CPU/event ${perEvent((db / CLK_TCK) * 1e6)}` : `  PostgreSQL CPU/event ${perEvent((db / CLK_TCK) * 1e6)} (${pids.length} backends)`),
  );
}

console.log(`store loop: ${WORKERS} workers, ${SECONDS} s per run, node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}`);
for (const kind of STORES) {
  for (const batch of ['default', 'false']) {
    try {
      await measure(kind, batch);
    } catch (error) {
      console.log(`${kind.padEnd(9)} batch ${batch.padEnd(7)} skipped: ${error.message}`);
    }
  }
}

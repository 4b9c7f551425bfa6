// The load generator: one long-lived process (pinned to its own core by run.mjs) driving
// autocannon over IPC. It builds each pool of prepared requests once and hands every
// connection its own slice, so each request on the wire is distinct and nothing is signed or
// rebuilt while it is timed.
import { createRequire } from 'node:module';
import { buildPool } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const autocannon = require('autocannon');

const pools = new Map();
/** Svix refuses timestamps more than 5 minutes old: its pool is re-signed when older than this. */
const SVIX_MAX_AGE_MS = 120_000;

function getPool(name, size) {
  const held = pools.get(name);
  const fresh = held && held.items.length >= size && (name !== 'svix' || Date.now() - held.builtAt < SVIX_MAX_AGE_MS);
  if (fresh) return held.items;
  pools.delete(name);
  const items = buildPool(name, size);
  pools.set(name, { items, builtAt: Date.now() });
  return items;
}

/**
 * One autocannon run where connection `c` sends `items[from + c*per ...]` in order. The
 * prepared `{ requestBuffer }` objects go straight into autocannon's request iterator: handing
 * them through `requests` would deep-clone the array per connection and rebuild every buffer.
 */
/**
 * Latency at 10 µs resolution up to 2 s (autocannon's own histogram keeps whole milliseconds,
 * which hides sub-millisecond medians). Recording is one increment per response.
 */
const BUCKET_US = 10;
function latencyRecorder() {
  const buckets = new Uint32Array(200_000);
  let count = 0;
  let sum = 0;
  let max = 0;
  return {
    record(ms) {
      const i = Math.min(buckets.length - 1, Math.floor((ms * 1000) / BUCKET_US));
      buckets[i]++;
      count++;
      sum += ms;
      if (ms > max) max = ms;
    },
    percentile(p) {
      const want = Math.ceil((p / 100) * count);
      let seen = 0;
      for (let i = 0; i < buckets.length; i++) {
        seen += buckets[i];
        if (seen >= want && seen > 0) return ((i + 1) * BUCKET_US) / 1000;
      }
      return null;
    },
    summary() {
      return { p50: this.percentile(50), p99: this.percentile(99), p999: this.percentile(99.9), mean: count ? sum / count : null, max };
    },
  };
}

function cannon(url, items, from, count, { connections, duration, amount, onResponse }) {
  const per = Math.floor(count / connections);
  const clients = [];
  const latency = latencyRecorder();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections,
        pipelining: 1,
        ...(amount === undefined ? { duration } : { amount }),
        method: 'POST',
        setupClient(client) {
          const it = client.requestIterator;
          if (!it || !Array.isArray(it.requests) || typeof it.nextRequest !== 'function') {
            throw new Error('autocannon internals changed: RequestIterator.requests not found (bench/loadgen.mjs)');
          }
          const c = clients.length;
          const slice = items.slice(from + c * per, from + (c + 1) * per);
          it.requests = slice;
          it.currentRequestIndex = 0;
          it.currentRequest = slice[0];
          clients.push({ client, size: slice.length });
        },
      },
      (error, result) => {
        if (error) return reject(error);
        const wrapped = clients.some(({ client, size }) => client.reqsMade > size);
        resolve({ result, wrapped, latency: latency.summary() });
      },
    );
    instance.on('error', reject);
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latency.record(responseTime);
      onResponse?.();
    });
  });
}

process.on('message', async (msg) => {
  if (msg?.type === 'soak') return soak(msg);
  if (msg?.type !== 'run') return;
  try {
    const { url, pool, warmup, duration, connections, poolSize } = msg;
    const items = getPool(pool, poolSize);
    const warmShare = warmup > 0 ? Math.floor(items.length * (warmup / (warmup + duration))) : 0;
    if (warmup > 0) await cannon(url, items, 0, warmShare, { connections, duration: warmup });
    process.send({ type: 'measuring' });
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const { result, wrapped, latency } = await cannon(url, items, warmShare, items.length - warmShare, { connections, duration });
    const cpu = process.cpuUsage(cpu0);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    process.send({
      type: 'result',
      result: {
        rps: result.requests.average,
        total: result.requests.total,
        latency,
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        ok2xx: result['2xx'],
        duration: result.duration,
        loadgenCpu: (cpu.user + cpu.system) / 1000 / wallMs,
        poolWrapped: wrapped,
      },
    });
  } catch (error) {
    process.send({ type: 'error', message: String(error?.stack ?? error) });
  }
});
/** Exactly `amount` distinct requests, reporting progress every `every` responses. */
async function soak({ url, pool, amount, connections, every }) {
  try {
    const items = getPool(pool, amount);
    process.send({ type: 'started' });
    let n = 0;
    const onResponse = () => {
      if (++n % every === 0) process.send({ type: 'progress', responses: n });
    };
    const { result, wrapped } = await cannon(url, items, 0, amount, { connections, amount, onResponse });
    process.send({ type: 'result', result: { total: result.requests.total, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts, poolWrapped: wrapped, duration: result.duration } });
  } catch (error) {
    process.send({ type: 'error', message: String(error?.stack ?? error) });
  }
}

process.send({ type: 'hello' });

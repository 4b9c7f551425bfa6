// Memory soak (`npm run bench:soak`): 1,000,000 distinct signed notifications through the real
// router with the memory store's default configuration (maxEntries 100,000), called in process
// with a readable-stream request and a minimal response, 64 in flight. Prints RSS every 100,000
// events and the peak (VmHWM), and checks that RSS stays flat once the entry cap is reached.
//
// Env: SOAK_EVENTS (1000000), SOAK_EVERY (100000), SOAK_CONCURRENCY (64), SOAK_LIMIT_MB (150).
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CAIBO_SECRET, caiboRequest } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { caiboCallbacks } = require('../dist/index.cjs');

const EVENTS = Number(process.env.SOAK_EVENTS ?? 1_000_000);
const EVERY = Number(process.env.SOAK_EVERY ?? 100_000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 64);
const LIMIT_MB = Number(process.env.SOAK_LIMIT_MB ?? 150);
const MB = 1024 * 1024;

let handled = 0;
// No `store` option: the router's default, a MemoryStore with its default maxEntries.
const router = caiboCallbacks({
  secret: CAIBO_SECRET,
  allowIps: ['127.0.0.1'],
  onStatus: () => {
    handled++;
  },
});

function vm(field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

/** One request through the router; resolves with the status code. */
function send(i) {
  const { headers, body } = caiboRequest(i);
  const bytes = Buffer.from(body);
  const req = Readable.from([bytes], { objectMode: false });
  req.method = 'POST';
  req.url = '/caibo';
  req.headers = { 'content-type': headers['Content-Type'], 'x-signature': headers['X-Signature'], 'content-length': String(bytes.length), host: 'localhost' };
  req.socket = { remoteAddress: '127.0.0.1' };
  return new Promise((resolve) => {
    const res = {
      statusCode: 200,
      headersSent: false,
      writableEnded: false,
      setHeader() {},
      getHeader() {},
      end() {
        this.headersSent = true;
        this.writableEnded = true;
        resolve(this.statusCode);
      },
    };
    router(req, res, () => resolve(404));
  });
}

const samples = [];
let next = 0;
let failures = 0;
const started = performance.now();
let windowStart = started;
async function worker() {
  while (next < EVENTS) {
    const i = next++;
    const status = await send(i);
    if (status !== 200) failures++;
    const done = i + 1;
    if (done % EVERY === 0) {
      const now = performance.now();
      if (globalThis.gc && process.env.SOAK_GC) globalThis.gc();
      const mem = process.memoryUsage();
      samples.push({ events: done, rssMb: mem.rss / MB, heapUsedMb: mem.heapUsed / MB, peakRssMb: vm('VmHWM'), eventsPerS: EVERY / ((now - windowStart) / 1000) });
      windowStart = now;
      const s = samples.at(-1);
      console.log(
        `${String(done).padStart(9)} events  RSS ${s.rssMb.toFixed(1).padStart(6)} MB  heap ${s.heapUsedMb.toFixed(1).padStart(6)} MB  peak ${s.peakRssMb.toFixed(1).padStart(6)} MB  ${Math.round(s.eventsPerS).toLocaleString('en-US').padStart(7)} events/s`,
      );
    }
  }
}

console.log(`soak: ${EVENTS.toLocaleString('en-US')} distinct events, default MemoryStore (maxEntries 100,000), ${CONCURRENCY} in flight, node ${process.version}`);
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
await router.close();
const peak = vm('VmHWM');
// Flat after the cap: RSS over the second half of the run against its first sample past the cap.
const afterCap = samples.filter((s) => s.events > 200_000);
const spread = afterCap.length > 1 ? Math.max(...afterCap.map((s) => s.rssMb)) - Math.min(...afterCap.map((s) => s.rssMb)) : null;
const growth = afterCap.length > 1 ? afterCap.at(-1).rssMb - afterCap[0].rssMb : null;
const seconds = (performance.now() - started) / 1000;
console.log(`\nhandled ${handled.toLocaleString('en-US')}, non-200 ${failures}, ${seconds.toFixed(1)} s`);
console.log(`peak RSS ${peak.toFixed(1)} MB (target < ${LIMIT_MB} MB): ${peak < LIMIT_MB ? 'PASS' : 'MISS'}`);
if (spread !== null) console.log(`after the cap (200k..${EVENTS / 1000}k): RSS range ${spread.toFixed(1)} MB, first→last ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`);
mkdirSync(path.join(here, 'results'), { recursive: true });
const file = path.join(here, 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ events: EVENTS, concurrency: CONCURRENCY, node: process.version, handled, failures, seconds, peakRssMb: peak, afterCapRangeMb: spread, afterCapGrowthMb: growth, samples }, null, 2));
console.log(`results: ${path.relative(process.cwd(), file)}`);
if (failures > 0 || handled !== EVENTS) process.exitCode = 1;

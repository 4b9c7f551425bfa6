// Memory soak (`npm run bench:soak`): 1,000,000 distinct signed notifications over HTTP into the
// router with its default store (a MemoryStore with the default maxEntries of 100,000), on
// node:http, in its own process pinned to core 0; autocannon on core 1 sends the precomputed
// pool. Prints the server's RSS every 100,000 responses and its peak (VmHWM), and whether RSS
// stays flat once the entry cap is reached.
//
// Env: SOAK_EVENTS (1000000), SOAK_EVERY (100000), SOAK_CONNECTIONS (50), SOAK_LIMIT_MB (150),
//      BENCH_NODE_ARGS (node flags for the server).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { caiboRequest, POOL_PATHS } from './lib/pools.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EVENTS = Number(process.env.SOAK_EVENTS ?? 1_000_000);
const EVERY = Number(process.env.SOAK_EVERY ?? 100_000);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 50);
const LIMIT_MB = Number(process.env.SOAK_LIMIT_MB ?? 150);
const CAP = 100_000;

const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pinned = (core, args) => (hasTaskset ? ['taskset', ['-c', String(core), ...args]] : [args[0], args.slice(1)]);

function next(child, types) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => types.includes(msg?.type) && (cleanup(), resolve(msg));
    const onExit = (code) => (cleanup(), reject(new Error(`child exited (${code})`)));
    const cleanup = () => (child.off('message', onMessage), child.off('exit', onExit));
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function vm(pid, field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

function post(port, { headers, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: POOL_PATHS.caibo, method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const nodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean) : [];
const [scmd, sargs] = pinned(0, [process.execPath, ...nodeArgs, path.join(here, 'server.mjs'), 'ours-default']);
const server = spawn(scmd, sargs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_ENV: 'production' } });
const [lcmd, largs] = pinned(1, [process.execPath, path.join(here, 'loadgen.mjs')]);
const loadgen = spawn(lcmd, largs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const { port } = await next(server, ['ready']);
await next(loadgen, ['hello']);
const pid = server.pid;

// Correctness first: a tampered body is refused, a valid one accepted.
const guard = caiboRequest(1, 90000000000000000n);
const tampered = await post(port, { ...guard, body: guard.body.replace('grossAmount=10', 'grossAmount=99') });
const valid = await post(port, guard);
if (tampered !== 401 || valid !== 200) throw new Error(`guard failed: tampered ${tampered}, valid ${valid}`);

console.log(`soak: ${EVENTS.toLocaleString('en-US')} distinct events over HTTP, router's default MemoryStore (maxEntries ${CAP.toLocaleString('en-US')}), ${CONNECTIONS} connections, node ${process.version}, load average ${os.loadavg()[0].toFixed(2)}`);
console.log('building the signed pool…');
const samples = [];
const started = performance.now();
let last = started;
const sample = (responses) => {
  const now = performance.now();
  const s = { events: responses, rssMb: vm(pid, 'VmRSS'), peakRssMb: vm(pid, 'VmHWM'), eventsPerS: EVERY / ((now - last) / 1000) };
  last = now;
  samples.push(s);
  console.log(`${String(responses).padStart(9)} events  RSS ${s.rssMb.toFixed(1).padStart(6)} MB  peak ${s.peakRssMb.toFixed(1).padStart(6)} MB  ${Math.round(s.eventsPerS).toLocaleString('en-US').padStart(7)} events/s`);
};
loadgen.on('message', (msg) => {
  if (msg?.type === 'started') last = performance.now();
  if (msg?.type === 'progress') sample(msg.responses);
});
loadgen.send({ type: 'soak', url: `http://127.0.0.1:${port}${POOL_PATHS.caibo}`, pool: 'caibo', amount: EVENTS, connections: CONNECTIONS, every: EVERY });
const out = await next(loadgen, ['result', 'error']);
loadgen.kill();
if (out.type === 'error') throw new Error(out.message);
const peak = vm(pid, 'VmHWM');
server.send({ type: 'stop' });
const { stats } = await next(server, ['stopped']);
const r = out.result;
const afterCap = samples.filter((s) => s.events >= 2 * CAP);
const range = afterCap.length > 1 ? Math.max(...afterCap.map((s) => s.rssMb)) - Math.min(...afterCap.map((s) => s.rssMb)) : null;
const growth = afterCap.length > 1 ? afterCap.at(-1).rssMb - afterCap[0].rssMb : null;
const handledOk = stats.handled === EVENTS + 1;
console.log(`\nresponses ${r.total.toLocaleString('en-US')}, non-2xx ${r.non2xx + r.errors + r.timeouts}, handler calls ${stats.handled.toLocaleString('en-US')} (want ${(EVENTS + 1).toLocaleString('en-US')} incl. the guard: ${handledOk ? 'ok' : 'MISMATCH'}), duplicates ${stats.duplicate}${r.poolWrapped ? ', POOL WRAPPED' : ''}`);
console.log(`peak RSS ${peak.toFixed(1)} MB (target < ${LIMIT_MB} MB): ${peak < LIMIT_MB ? 'PASS' : 'MISS'}`);
if (range !== null) console.log(`from ${2 * CAP / 1000}k events on (past the cap): RSS range ${range.toFixed(1)} MB, first→last ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`);
mkdirSync(path.join(here, 'results'), { recursive: true });
const file = path.join(here, 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ events: EVENTS, connections: CONNECTIONS, node: process.version, nodeArgs, loadavg: os.loadavg(), responses: r.total, non2xx: r.non2xx + r.errors + r.timeouts, stats, seconds: (performance.now() - started) / 1000, peakRssMb: peak, afterCapRangeMb: range, afterCapGrowthMb: growth, samples }, null, 2));
console.log(`results: ${path.relative(process.cwd(), file)}`);
if (!handledOk || r.non2xx + r.errors + r.timeouts > 0 || peak >= LIMIT_MB) process.exitCode = 1;

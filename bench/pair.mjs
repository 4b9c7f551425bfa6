// Two builds of the router, side by side in one process: alternating batches of callbacks, each
// batch's CPU per callback recorded, the two builds' batches compared pair by pair. On a host
// whose speed drifts (a busy VM host can move every number by 2× within minutes), a drift hits
// both sides of a pair alike, so the median ratio of pairs holds still where separate runs do not.
//
//   npx tsup && node bench/pair.mjs <baseline dist dir> [candidate dist dir, default dist] [pairs, default 30]
//
// `C2` in place of a directory is the careful hand-written receiver (row C2), driven the same
// way: `node bench/pair.mjs C2 dist` gives the router's CPU per callback as a multiple of C2's.
//
// Prints one JSON line: each build's median and minimum CPU µs per callback, and the median of
// candidate ÷ baseline over the pairs (below 1: the candidate is cheaper). A build against itself
// gives the noise floor: 0.99–1.05 on the bench host on 2026-12-07, so repeat a run and trust
// only a difference larger than that. `bad` counts non-200 answers (must be 0).
import { createRequire } from 'node:module';
import path from 'node:path';
import { carefulHandler } from './lib/careful.mjs';
import { driver, prepareRequests } from './lib/drive.mjs';
import { CAIBO_SECRET } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const [baseDir, candidateDir = new URL('../dist', import.meta.url).pathname, pairsArg] = process.argv.slice(2);
if (!baseDir) {
  console.error('usage: node bench/pair.mjs <baseline dist dir> [candidate dist dir] [pairs]');
  process.exit(2);
}
const BATCH = Number(process.env.BATCH ?? 4_000);
const PAIRS = Number(pairsArg ?? 30);
const WARM_PAIRS = 6;
const perSide = (PAIRS + WARM_PAIRS) * BATCH;

const sides = [baseDir, candidateDir].map((dir, k) => {
  // Each side its own events, so neither sees the other's as duplicates.
  const prepared = prepareRequests(perSide, k * 10_000_000);
  if (dir === 'C2') {
    const careful = carefulHandler(CAIBO_SECRET);
    return { dist: 'C2', drive: driver(careful.handler, prepared), samples: [], handled: careful.handled };
  }
  const dist = path.resolve(dir, 'index.cjs');
  // Two paths are two module instances; the same path twice is one module with two routers.
  const { caiboCallbacks, MemoryStore } = require(dist);
  let handled = 0;
  const router = caiboCallbacks({ secret: CAIBO_SECRET, allowIps: ['127.0.0.1'], store: new MemoryStore(), onStatus: () => void handled++ });
  return { dist, drive: driver(router, prepared), samples: [], handled: () => handled };
});

for (let pair = 0; pair < PAIRS + WARM_PAIRS; pair++) {
  // Alternate which side goes first, so neither always runs after the other's garbage.
  for (const side of pair % 2 === 0 ? sides : [...sides].reverse()) {
    const cpu = process.cpuUsage();
    await side.drive.run(BATCH);
    const used = process.cpuUsage(cpu);
    if (pair >= WARM_PAIRS) side.samples.push((used.user + used.system) / BATCH);
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
const [base, candidate] = sides;
console.log(
  JSON.stringify({
    baseline: base.dist === 'C2' ? 'C2' : path.relative(process.cwd(), base.dist),
    candidate: candidate.dist === 'C2' ? 'C2' : path.relative(process.cwd(), candidate.dist),
    baselineUs: { median: +median(base.samples).toFixed(2), min: +Math.min(...base.samples).toFixed(2) },
    candidateUs: { median: +median(candidate.samples).toFixed(2), min: +Math.min(...candidate.samples).toFixed(2) },
    ratio: +median(candidate.samples.map((c, i) => c / base.samples[i])).toFixed(3),
    pairs: PAIRS,
    batch: BATCH,
    bad: base.drive.bad() + candidate.drive.bad(),
    handled: [base.handled(), candidate.handled()],
  }),
);

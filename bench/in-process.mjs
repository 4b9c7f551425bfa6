// The router's own CPU per request, without sockets or an HTTP parser: prepared, signed Caibo
// requests (the bench pool's bodies) are pushed through `Readable` streams into the router, 50 in
// flight, answered into minimal response objects. Steadier than the HTTP rows for a change that
// moves a fraction of a microsecond, and it leaves out what every receiver pays alike.
//
//   npx tsup && node bench/in-process.mjs [path/to/dist/index.cjs]   (C2=1: the careful receiver)
//
// Prints one JSON line: CPU µs per request (user + system) over N measured requests, after a
// warm-up; `bad` counts non-200 answers (must be 0).
import { createRequire } from 'node:module';
import path from 'node:path';
import { carefulHandler } from './lib/careful.mjs';
import { driver, prepareRequests } from './lib/drive.mjs';
import { CAIBO_SECRET } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const dist = path.resolve(process.argv[2] ?? new URL('../dist/index.cjs', import.meta.url).pathname);
const { caiboCallbacks, MemoryStore } = require(dist);
const N = Number(process.env.N ?? 150_000);
const WARM = Number(process.env.WARM ?? 100_000);

let handled = 0;
const careful = carefulHandler(CAIBO_SECRET);
const router = process.env.C2
  ? careful.handler
  : caiboCallbacks({ secret: CAIBO_SECRET, allowIps: ['127.0.0.1'], store: new MemoryStore(), onStatus: () => void handled++ });
const drive = driver(router, prepareRequests(WARM + N));

await drive.run(WARM);
const cpu = process.cpuUsage();
await drive.run(N);
const used = process.cpuUsage(cpu);
console.log(
  JSON.stringify({
    router: process.env.C2 ? 'C2' : path.relative(process.cwd(), dist),
    cpuUsPerRequest: Number(((used.user + used.system) / N).toFixed(2)),
    requests: N,
    bad: drive.bad(),
    handled: process.env.C2 ? careful.handled() : handled,
  }),
);

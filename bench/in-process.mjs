// The router's own CPU per request, without sockets or an HTTP parser: prepared, signed Caibo
// requests (the bench pool's bodies) are pushed through `Readable` streams into the router, 50 in
// flight, answered into minimal response objects. Steadier than the HTTP rows for a change that
// moves a fraction of a microsecond, and it leaves out what every receiver pays alike.
//
//   npx tsup && node bench/in-process.mjs [path/to/dist/index.cjs]   (C2=1: the careful receiver)
//
// Prints one JSON line: CPU µs per request (user + system) over N measured requests, after a
// warm-up; `bad` counts non-200 answers (must be 0).
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import path from 'node:path';
import { carefulReceiver } from './lib/careful.mjs';
import { CAIBO_SECRET, caiboRequest } from './lib/pools.mjs';

const require = createRequire(import.meta.url);
const dist = path.resolve(process.argv[2] ?? new URL('../dist/index.cjs', import.meta.url).pathname);
const { caiboCallbacks, MemoryStore } = require(dist);
const N = Number(process.env.N ?? 150_000);
const WARM = Number(process.env.WARM ?? 100_000);
const IN_FLIGHT = 50;

const prepared = [];
for (let i = 0; i < WARM + N; i++) {
  const { headers, body } = caiboRequest(i);
  const lower = { host: 'bench', 'content-length': String(Buffer.byteLength(body)) };
  for (const name in headers) lower[name.toLowerCase()] = headers[name];
  prepared.push({ headers: lower, body: Buffer.from(body) });
}

let handled = 0;
const careful = carefulReceiver(CAIBO_SECRET);
function c2(req, res) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    res.statusCode = careful.receive(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), req.headers['x-signature']);
    res.end(res.statusCode === 200 ? 'OK' : 'Refused');
  });
}
const router = process.env.C2
  ? c2
  : caiboCallbacks({ secret: CAIBO_SECRET, allowIps: ['127.0.0.1'], store: new MemoryStore(), onStatus: () => void handled++ });

const socket = { remoteAddress: '127.0.0.1', encrypted: false };
/** What the router's answer path touches of a ServerResponse. */
class Answer {
  constructor(done) {
    this.done = done;
    this.statusCode = 200;
    this.headersSent = false;
    this.writableEnded = false;
  }
  setHeader() {}
  getHeader() {}
  writeHead(status) {
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }
  end() {
    this.writableEnded = true;
    this.done(this.statusCode);
  }
}

let next = 0;
let answered = 0;
let bad = 0;
function fire(limit, finished) {
  const { headers, body } = prepared[next++];
  const req = new Readable({ read() {} });
  Object.assign(req, { headers, method: 'POST', url: '/caibo', socket, httpVersion: '1.1' });
  router(
    req,
    new Answer((status) => {
      if (status !== 200) bad++;
      answered++;
      if (next < limit) fire(limit, finished);
      else if (answered === limit) finished();
    }),
  );
  req.push(body);
  req.push(null);
}
const upTo = (limit) => new Promise((resolve) => {
  for (let k = 0; k < IN_FLIGHT; k++) fire(limit, resolve);
});

await upTo(WARM);
const cpu = process.cpuUsage();
await upTo(WARM + N);
const used = process.cpuUsage(cpu);
console.log(
  JSON.stringify({
    router: process.env.C2 ? 'C2' : path.relative(process.cwd(), dist),
    cpuUsPerRequest: Number(((used.user + used.system) / N).toFixed(2)),
    requests: N,
    bad,
    handled: process.env.C2 ? careful.handled() : handled,
  }),
);

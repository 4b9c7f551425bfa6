// Drives a router in process: prepared, signed Caibo requests (the bench pool's bodies) pushed
// through `Readable` streams, answered into minimal response objects. No sockets, no HTTP parser:
// only the router's own work, and what every receiver pays alike (the streams) kept small.
import { Readable } from 'node:stream';
import { caiboRequest } from './pools.mjs';

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

/** `count` requests of the pool, from event `first` on, as the router receives them. */
export function prepareRequests(count, first = 0) {
  const prepared = [];
  for (let i = first; i < first + count; i++) {
    const { headers, body } = caiboRequest(i);
    const lower = { host: 'bench', 'content-length': String(Buffer.byteLength(body)) };
    for (const name in headers) lower[name.toLowerCase()] = headers[name];
    prepared.push({ headers: lower, body: Buffer.from(body) });
  }
  return prepared;
}

/**
 * A `(req, res)` function fed with `prepared`, in order. `run(count)` sends the next `count`
 * requests, `inFlight` at a time, and resolves when all are answered; `bad()` counts non-200s.
 */
export function driver(handler, prepared, inFlight = 50) {
  let next = 0;
  let bad = 0;
  function run(count) {
    const limit = next + count;
    if (limit > prepared.length) throw new Error(`only ${prepared.length} prepared requests`);
    return new Promise((resolve) => {
      let answered = 0;
      const fire = () => {
        const { headers, body } = prepared[next++];
        const req = new Readable({ read() {} });
        Object.assign(req, { headers, method: 'POST', url: '/caibo', socket, httpVersion: '1.1' });
        handler(
          req,
          new Answer((status) => {
            if (status !== 200) bad++;
            answered++;
            if (next < limit) fire();
            else if (answered === count) resolve();
          }),
        );
        req.push(body);
        req.push(null);
      };
      for (let k = 0; k < Math.min(inFlight, count); k++) fire();
    });
  }
  return { run, bad: () => bad };
}

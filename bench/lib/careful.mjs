// The "careful hand-written receiver" (rows C and C2): what a merchant writes without the
// library. Raw body, HMAC-SHA512 in constant time, URLSearchParams, a bounded dedupe of state
// keys with a ring buffer (so eviction stays O(1) once full), and a no-op handler.
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';

export function carefulReceiver(secret, { maxEntries = 100_000 } = {}) {
  const key = createSecretKey(Buffer.from(secret, 'utf8'));
  const seen = new Set();
  const ring = new Array(maxEntries);
  let next = 0;
  let handled = 0;

  /** Returns the HTTP status for one request. */
  function receive(rawBody, signatureHeader) {
    if (typeof signatureHeader !== 'string') return 401;
    const given = Buffer.from(signatureHeader, 'base64');
    const expected = createHmac('sha512', key).update(rawBody).digest();
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 401;
    const fields = new URLSearchParams(rawBody.toString('utf8'));
    const id = fields.get('id');
    const status = fields.get('paymentRequestStatusId');
    if (id === null || status === null || !/^\d{1,32}$/.test(id)) return 400;
    const dedupe = `${id}:${fields.get('transactionId') ?? ''}:${fields.get('transactionStatusId') ?? ''}:${status}`;
    if (seen.has(dedupe)) return 200;
    handled++;
    const old = ring[next];
    if (old !== undefined) seen.delete(old);
    ring[next] = dedupe;
    next = (next + 1) % maxEntries;
    seen.add(dedupe);
    return 200;
  }
  return { receive, handled: () => handled };
}

/** The careful hand-written receiver (row C2) as a `(req, res)` handler, with its handled count. */
export function carefulHandler(secret) {
  const careful = carefulReceiver(secret);
  function handler(req, res) {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      res.statusCode = careful.receive(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), req.headers['x-signature']);
      res.end(res.statusCode === 200 ? 'OK' : 'Refused');
    });
  }
  return { handler, handled: careful.handled };
}

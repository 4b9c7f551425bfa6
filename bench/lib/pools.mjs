// Precomputed request pools: every request a distinct, correctly signed payload, built once
// before any timed run, as the raw HTTP/1.1 bytes autocannon writes to the socket. The load
// generator then only copies pointers: no signing, no string building while it is timed.
import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The secrets the servers and the pools share (bench-only values). */
export const CAIBO_SECRET = 'caibo_test_sk_bench_0123456789abcdef';
export const OCTOKIT_SECRET = 'octokit-bench-secret-0123456789';
export const SVIX_SECRET = `whsec_${Buffer.from('svix-bench-secret-0123456789abcd').toString('base64')}`;

/** Every payload is this many bytes, so every row moves the same bytes per request. */
export const PAYLOAD_BYTES = 500;

/** The route each pool targets. */
export const POOL_PATHS = {
  caibo: '/callbacks/caibo',
  octokit: '/callbacks/github',
  svix: '/callbacks/svix',
};

const FIRST_ID = 16772761082427695n;

/**
 * Caibo's published example (see caibo-protocol.md) with `id` and `transactionId` varied per
 * event (fixed width, so every body has the same length), and `notes` lengthened so the body is
 * PAYLOAD_BYTES long. Not percent-encoded, like the published example. Each body is a new
 * payment request, paid and approved: a final state, so the ordering guard records it.
 */
export function caiboBody(i, base = FIRST_ID) {
  const id = (base + BigInt(i)).toString();
  const tx = String(100_000_000 + i).padStart(10, '0');
  const head =
    `id=${id}&transactionId=${tx}&transactionStatusId=1&paymentRequestStatusId=1&merchantId=16762420400394816` +
    `&unit=USD&grossAmount=10&fee=0.5&netAmount=9.5&referenceId=ORD-${tx}&notes=`;
  const tail =
    '&clientId=16772748432912191&clientName=Client Name&clientEmail=client@email.com&clientPhone=1234567890' +
    '&clientMemberId=12345&message=Stolen Card&code=008';
  const pad = PAYLOAD_BYTES - head.length - tail.length;
  const notes = 'Payment notes for order '.padEnd(pad, 'x').slice(0, pad);
  return head + notes + tail;
}

export function caiboSignature(body, secret = CAIBO_SECRET) {
  return createHmac('sha512', secret).update(body).digest('base64');
}

/** A GitHub-style `check_run` delivery of PAYLOAD_BYTES, varied per event. */
export function octokitBody(i) {
  const head = `{"action":"completed","check_run":{"id":${4_000_000_000 + i},"head_sha":"${(i.toString(16) + 'a'.repeat(40)).slice(0, 40)}","status":"completed","conclusion":"success","name":"bench","details_url":"https://example.com/runs/${i}"},"repository":{"id":1296269,"full_name":"octocat/Hello-World","private":false},"sender":{"login":"octocat","id":1},"note":"`;
  const tail = '"}';
  return head + 'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - tail.length)) + tail;
}

/** A Svix-style JSON message of PAYLOAD_BYTES, varied per event. */
export function svixBody(i) {
  const head = `{"type":"invoice.paid","data":{"id":"inv_${String(i).padStart(12, '0')}","amount":"10.00","currency":"USD","customer":"cus_0123456789","reference":"ORD-${i}"},"note":"`;
  const tail = '"}';
  return head + 'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - tail.length)) + tail;
}

function raw(path, headers, body) {
  let head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n`;
  for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
  head += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  return Buffer.from(head + body);
}

/** The headers and body of Caibo event `i` (also used by the correctness guard). */
export function caiboRequest(i, base) {
  const body = caiboBody(i, base);
  return { headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': caiboSignature(body) }, body };
}

export function octokitRequest(i) {
  const body = octokitBody(i);
  const signature = `sha256=${createHmac('sha256', OCTOKIT_SECRET).update(body).digest('hex')}`;
  return {
    headers: {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'check_run',
      'X-GitHub-Delivery': `72d3162e-cc78-11e3-81ab-${String(i).padStart(12, '0')}`,
      'X-Hub-Signature-256': signature,
    },
    body,
  };
}

let svixSigner;
export function svixRequest(i, now = new Date()) {
  if (svixSigner === undefined) {
    const { Webhook } = require('svix');
    svixSigner = new Webhook(SVIX_SECRET);
  }
  const body = svixBody(i);
  const id = `msg_${String(i).padStart(12, '0')}${randomSuffix}`;
  return {
    headers: {
      'Content-Type': 'application/json',
      'svix-id': id,
      'svix-timestamp': String(Math.floor(now.getTime() / 1000)),
      'svix-signature': svixSigner.sign(id, now, body),
    },
    body,
  };
}
const randomSuffix = randomBytes(4).toString('hex');

const BUILDERS = { caibo: (i) => caiboRequest(i), octokit: octokitRequest, svix: svixRequest };

/**
 * `count` prepared requests for `pool`, as `{ requestBuffer }` objects in the shape autocannon's
 * request iterator sends without rebuilding.
 */
export function buildPool(pool, count) {
  const build = BUILDERS[pool];
  const path = POOL_PATHS[pool];
  const out = new Array(count);
  const now = new Date();
  for (let i = 0; i < count; i++) {
    const { headers, body } = pool === 'svix' ? svixRequest(i, now) : build(i);
    out[i] = { method: 'POST', requestBuffer: raw(path, headers, body) };
  }
  return out;
}

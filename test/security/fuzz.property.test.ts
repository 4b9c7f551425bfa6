/**
 * Property tests: anything a stranger can send to the public callback endpoint, over real HTTP.
 *
 * Invariants, for every generated request:
 * - the status is 200 or one of the Responses table's 4xx codes (never 5xx, never a hang);
 * - 200 only when the request is correctly signed (current or still-configured retired secret);
 * - the handler runs at most once per request, and only for a correctly signed valid event;
 * - Object/Array/Function/String prototypes are untouched;
 * - the server still answers a valid callback at the end (the process stayed up).
 *
 * 10,000 generated cases in all (see RUNS). On failure fast-check prints the seed and path;
 * replay with FC_SEED=<seed> FC_PATH=<path> npx jest test/security/fuzz.property.test.ts.
 */
import fc from 'fast-check';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import {
  assertPrototypesIntact,
  OLD_SECRET,
  prototypeSnapshot,
  SECRET,
  send,
  startServer,
  TABLE_4XX,
  type Reply,
  type SecurityServer,
} from './support';

/** Cases per property; they sum to 10,000. */
const SCALE = Number(process.env.FC_SCALE ?? 1);
const RUNS = {
  bytes: Math.ceil(3000 * SCALE),
  fieldMaps: Math.ceil(2500 * SCALE),
  headers: Math.ceil(2500 * SCALE),
  queries: Math.ceil(2000 * SCALE),
};

const replay: Partial<fc.Parameters<unknown>> = process.env.FC_SEED
  ? { seed: Number(process.env.FC_SEED), ...(process.env.FC_PATH && { path: process.env.FC_PATH }) }
  : {};

/** Runs a property; the thrown error (which Jest prints) carries fast-check's seed and path. */
async function check<T>(property: fc.IAsyncPropertyWithHooks<T>, numRuns: number): Promise<void> {
  await fc.assert(property, { numRuns, ...replay });
}

const FORM = 'application/x-www-form-urlencoded';
const ROUTES = ['/callbacks/caibo', '/callbacks/caibo-gateway', '/callbacks/caibowh', '/callbacks/3ds'] as const;

let s: SecurityServer;
let pristine: Map<string, unknown>;
/** Statuses seen by the current property, so each can prove it reached both acceptance and refusals. */
let tally = new Map<number, number>();
beforeEach(() => {
  tally = new Map();
});

/**
 * Guards against a generator drifting into producing only refusals (or only successes). The
 * minimums are about half of what the generators typically yield (runs are randomly seeded), so
 * a drift fails the test while ordinary variation between seeds does not.
 */
function expectCoverage(minimum200: number, alsoSeen: number[]): void {
  const summary = JSON.stringify(Object.fromEntries(tally));
  if (process.env.FC_TALLY) console.log(summary);
  expect({ summary, ok: (tally.get(200) ?? 0) >= minimum200 }).toEqual({ summary, ok: true });
  for (const status of alsoSeen) expect({ summary, status, seen: tally.has(status) }).toEqual({ summary, status, seen: true });
}

beforeAll(async () => {
  pristine = prototypeSnapshot();
  s = await startServer({
    options: {
      // Rotation in progress: the retired key is still configured, so it still signs correctly.
      secret: [SECRET, OLD_SECRET],
      allowIps: ['127.0.0.0/8', '::1'],
      limit: '256kb',
      testEndpoints: false,
    },
  });
});
afterAll(async () => {
  await s.close();
});

/** Whether `header` is, by the protocol's rules, a correct signature of `payload` under a configured secret. */
function correctlySigned(header: string | string[] | undefined, payload: Buffer | string): boolean {
  if (typeof header !== 'string') return false;
  const value = header.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) return false;
  const given = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  return [SECRET, OLD_SECRET].some((secret) => Buffer.from(signPayload(payload, secret), 'base64').equals(given));
}

/** Sends one request and checks every invariant; returns the reply for property-specific checks. */
async function exchange(
  request: Parameters<typeof send>[1],
  signedOk: boolean,
): Promise<{ reply: Reply; handledDelta: number; seenDelta: number }> {
  const handledBefore = s.handled.length;
  const seenBefore = s.handled.length + s.duplicates.length;
  const reply = await send(s, request);
  tally.set(reply.status, (tally.get(reply.status) ?? 0) + 1);
  const handledDelta = s.handled.length - handledBefore;
  const seenDelta = s.handled.length + s.duplicates.length - seenBefore;
  const where = `${request.method ?? 'POST'} ${request.path} → ${reply.status} ${reply.text.slice(0, 120)}`;
  if (!(reply.status === 200 || TABLE_4XX.has(reply.status))) throw new Error(`status outside the table: ${where}`);
  if (reply.status === 200 && !signedOk) throw new Error(`200 without a correct signature: ${where}`);
  if (handledDelta > 1) throw new Error(`handler ran ${handledDelta} times for one request: ${where}`);
  if (handledDelta === 1 && reply.status !== 200) throw new Error(`handler ran but answered ${where}`);
  if (reply.status === 200 && seenDelta !== 1) throw new Error(`200 without exactly one handled-or-duplicate event: ${where}`);
  if (handledDelta === 1) {
    const event = s.handled[s.handled.length - 1]!;
    if (!event.verified) throw new Error(`handler got an unverified event: ${where}`);
    if (Object.getPrototypeOf(event.data) !== Object.prototype) throw new Error('event.data has a replaced prototype');
    for (const v of Object.values(event.data)) if (typeof v !== 'string') throw new Error('event.data holds a non-string');
    if (event.kind === 'payment' && typeof event.paymentRequestId !== 'string') throw new Error('paymentRequestId is not a string');
  }
  assertPrototypesIntact(pristine);
  return { reply, handledDelta, seenDelta };
}

// ---- arbitraries ---------------------------------------------------------------------------

/** Characters Node's HTTP client accepts in a header value. */
const headerChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
).map((c) => String.fromCharCode(c));
const headerValue = fc.string({ unit: headerChar, maxLength: 120 }).map((v) => v.trim());
const token = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'.split('')), minLength: 1, maxLength: 16 });

const charset = fc.oneof(
  fc.constantFrom('utf-8', 'UTF-8', 'utf8', 'us-ascii', '"utf-8"', 'latin1', 'iso-8859-1', 'utf-16', 'utf-16le', 'shift_jis', ''),
  token,
);
const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(FORM, 'application/json', 'APPLICATION/JSON', `${FORM}; charset=utf-8`) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(FORM, 'application/json'), charset).map(([t, c]) => `${t}; charset=${c}`) },
  { weight: 2, arbitrary: fc.constantFrom('text/plain', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-patch+json', '*/*', '', ';') },
  { weight: 2, arbitrary: headerValue },
);

/** 17-digit ids, as Caibo sends them. */
const id17 = fc.bigInt({ min: 10n ** 16n, max: 10n ** 17n - 1n }).map(String);

/** A body that is a real notification, sometimes damaged, as bytes. */
const notificationBytes = fc
  .record({
    id: id17,
    json: fc.boolean(),
    bom: fc.boolean(),
    flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { freq: 3 }),
  })
  .map(({ id, json, bom, flip }) => {
    const fields = sampleNotification({ id });
    const text = json ? JSON.stringify(fields) : formBody(fields);
    const bytes = Buffer.concat([bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from(text)]);
    if (flip) {
      const at = flip[0] % bytes.length;
      bytes[at] = bytes[at]! ^ flip[1];
    }
    return new Uint8Array(bytes);
  });
const bodyBytes = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 2048 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 512 }).map((t) => new Uint8Array(Buffer.from(t, 'utf8'))) },
  { weight: 3, arbitrary: notificationBytes },
);

type SigMode = 'none' | 'valid' | 'retired' | 'wrongSecret' | 'garbage' | 'empty';
const sigMode = fc.constantFrom<SigMode>('none', 'valid', 'retired', 'wrongSecret', 'garbage', 'empty');

function signatureFor(mode: SigMode, payload: Uint8Array | string, garbage: string): string | undefined {
  switch (mode) {
    case 'none':
      return undefined;
    case 'valid':
      return signPayload(payload, SECRET);
    case 'retired':
      return signPayload(payload, OLD_SECRET);
    case 'wrongSecret':
      return signPayload(payload, 'caibo_test_sk_not_configured');
    case 'garbage':
      return garbage;
    case 'empty':
      return '';
  }
}

// ---- properties ----------------------------------------------------------------------------

describe('hostile input over HTTP (fast-check)', () => {
  it(`arbitrary bytes, content types and charsets (${RUNS.bytes} cases)`, async () => {
    await check(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        bodyBytes,
        contentType,
        sigMode,
        headerValue,
        fc.boolean(),
        async (path, body, type, mode, garbage, chunked) => {
          const signature = signatureFor(mode, body, garbage);
          const headers: Record<string, string> = {};
          if (type !== '') headers['Content-Type'] = type;
          if (signature !== undefined) headers['X-Signature'] = signature;
          await exchange({ path, headers, body, chunked }, correctlySigned(signature, Buffer.from(body)));
        },
      ),
      RUNS.bytes,
    );
    expectCoverage(RUNS.bytes / 200, [400, 401, 415]);
  }, 120_000);

  it(`arbitrary field maps: __proto__, long and thousands of keys, nested JSON, arrays (${RUNS.fieldMaps} cases)`, async () => {
    const hostileKey = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isAdmin', 'polluted') },
      { weight: 4, arbitrary: fc.constantFrom('id', 'transactionId', 'paymentRequestStatusId', 'transactionStatusId', 'merchantId', 'grossAmount', 'unit', 'code', 'clientName', 'cres', 'PaRes', 'MD', 'transStatus', 'eci') },
      { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
      { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 3000 }) },
      { weight: 1, arbitrary: fc.constantFrom('__proto__.polluted', 'constructor[prototype][polluted]', '__proto__[polluted]', 'a.b.c', 'id[]') },
    );
    const scalar = fc.oneof(
      { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
      { weight: 1, arbitrary: fc.string({ minLength: 1000, maxLength: 12_000 }) },
      { weight: 2, arbitrary: id17 },
      { weight: 1, arbitrary: fc.constantFrom('1', '2', '3', '4', '0', '-1', '1e3', '0x1', '', ' ', '\u0000', '16772761082427695') },
    );
    const jsonValue = fc.oneof(
      { weight: 5, arbitrary: scalar },
      { weight: 1, arbitrary: fc.array(scalar, { maxLength: 5 }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
      { weight: 1, arbitrary: fc.constantFrom(16772761082427695n, Number.POSITIVE_INFINITY, -0, null, true) },
    );
    const entries = fc.oneof(
      { weight: 6, arbitrary: fc.array(fc.tuple(hostileKey, jsonValue), { maxLength: 30 }) },
      // Thousands of fields (the cap is 1,000).
      { weight: 1, arbitrary: fc.integer({ min: 900, max: 2500 }).map((n) => Array.from({ length: n }, (_, i) => [`f${i}`, 'x'] as [string, unknown])) },
    );
    await check(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.constantFrom<'form' | 'json'>('form', 'json'),
        fc.boolean(),
        id17,
        entries,
        fc.nat(),
        async (path, format, overSample, id, pairs, flipAt) => {
          // Half the maps extend a real notification, so hostile keys also ride on valid events.
          const base: [string, unknown][] = overSample ? Object.entries(sampleNotification({ id })) : [];
          const all = [...base, ...pairs];
          const body = format === 'json' ? jsonObjectText(all) : formText(all);
          const headers = { 'Content-Type': format === 'json' ? 'application/json' : FORM, 'X-Signature': signPayload(body, SECRET) };
          await exchange({ path, headers, body }, true);
          // The same signature over the body changed by one byte must never be accepted.
          const tampered = Buffer.from(body, 'utf8');
          if (tampered.length > 0) {
            const at = flipAt % tampered.length;
            tampered[at] = tampered[at]! ^ 0x01;
            const { reply } = await exchange({ path, headers, body: tampered }, correctlySigned(headers['X-Signature'], tampered));
            if (reply.status === 200) throw new Error('a one-byte change kept a valid signature');
          }
        },
      ),
      RUNS.fieldMaps,
    );
    expectCoverage(RUNS.fieldMaps / 20, [400, 401]);
  }, 180_000);

  it(`arbitrary and duplicated header values (${RUNS.headers} cases)`, async () => {
    type SigVariant =
      | 'absent'
      | 'valid'
      | 'retired'
      | 'padded'
      | 'urlsafe'
      | 'twice'
      | 'validAndGarbage'
      | 'truncated'
      | 'overlong'
      | 'hex'
      | 'flipped'
      | 'reserialised'
      | 'empty'
      | 'arbitrary';
    const variant = fc.constantFrom<SigVariant>(
      'absent', 'valid', 'retired', 'padded', 'urlsafe', 'twice', 'validAndGarbage', 'truncated', 'overlong', 'hex', 'flipped', 'reserialised', 'empty', 'arbitrary',
    );
    const typeHeader = fc.oneof(
      { weight: 5, arbitrary: fc.constant<string | string[]>(FORM) },
      { weight: 2, arbitrary: contentType.map((t): string | string[] => t) },
      { weight: 1, arbitrary: fc.tuple(contentType, contentType).map(([a, b]): string | string[] => [a, b]) },
    );
    const encoding = fc.oneof(
      { weight: 5, arbitrary: fc.constant<string | string[] | undefined>(undefined) },
      { weight: 1, arbitrary: fc.constantFrom<string | string[] | undefined>('identity', 'IDENTITY', 'gzip', 'deflate', 'br', 'gzip, identity', 'x-gzip', ['identity', 'gzip']) },
      { weight: 1, arbitrary: headerValue.map((v): string | string[] | undefined => v) },
    );
    const extraName = fc.constantFrom('x-forwarded-for', 'x-forwarded-proto', 'forwarded', 'x-real-ip', 'x-caibo-signature', 'signature', 'authorization', 'x-http-method-override', 'accept', 'accept-encoding', 'expect-ct', 'x-signature-256');
    const extras = fc.array(fc.tuple(fc.oneof(extraName, token.map((t) => `x-${t}`)), fc.oneof(headerValue, fc.tuple(headerValue, headerValue).map(([a, b]) => [a, b]))), { maxLength: 4 });
    const method = fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD') });

    await check(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        id17,
        variant,
        headerValue,
        fc.nat(),
        typeHeader,
        encoding,
        extras,
        method,
        async (path, id, sig, garbage, n, type, enc, extra, verb) => {
          const fields = sampleNotification({ id });
          const body = formBody(fields);
          const good = signPayload(body, SECRET);
          const headers: Record<string, string | string[]> = { 'Content-Type': type };
          if (enc !== undefined) headers['Content-Encoding'] = enc;
          for (const [name, value] of extra) headers[name] = value;
          const digest = Buffer.from(good, 'base64');
          const value: string | string[] | undefined = {
            absent: undefined,
            valid: good,
            retired: signPayload(body, OLD_SECRET),
            padded: ` \t${good}\t `,
            urlsafe: good.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
            twice: [good, good],
            validAndGarbage: [good, garbage],
            truncated: good.slice(0, n % good.length),
            overlong: good + 'A'.repeat(1 + (n % 40)),
            hex: digest.toString('hex'),
            flipped: flipChar(good, n),
            reserialised: signPayload(JSON.stringify(fields), SECRET),
            empty: '',
            arbitrary: garbage,
          }[sig];
          if (value !== undefined) headers['X-Signature'] = value;
          const ok = correctlySigned(value, body);
          const { reply } = await exchange({ method: verb, path, headers, body: verb === 'GET' || verb === 'HEAD' ? undefined : body }, ok);
          // Liveness: a correct signature on an otherwise ordinary request is accepted.
          const ordinary = verb === 'POST' && type === FORM && (enc === undefined || enc === 'identity' || enc === 'IDENTITY');
          if (ok && ordinary && reply.status !== 200) throw new Error(`a correct signature (${sig}) was refused: ${reply.status} ${reply.text}`);
        },
      ),
      RUNS.headers,
    );
    expectCoverage(RUNS.headers / 20, [401, 405, 415]);
  }, 180_000);

  it(`arbitrary query strings, GET and POST (${RUNS.queries} cases)`, async () => {
    const queryChar = fc.oneof(
      { weight: 10, arbitrary: fc.constantFrom(...("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?".split(''))) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`) },
      { weight: 1, arbitrary: fc.constantFrom('%', '%z', '%E2%82', '%00', '%F0%9F%92%A9', '__proto__=', 'constructor=', '&&&', '==') },
    );
    const rawQuery = fc.string({ unit: queryChar, maxLength: 300 });
    const sampleQuery = fc.tuple(id17, fc.boolean(), fc.string({ unit: queryChar, maxLength: 40 })).map(([id, extend, tail]) => {
      const q = formBody(sampleNotification({ id }));
      return extend ? `${q}&${tail}` : q;
    });
    await check(
      fc.asyncProperty(
        fc.constantFrom('/callbacks/caibo-gateway', '/callbacks/3ds', '/callbacks/caibo', '/callbacks/caibowh'),
        fc.constantFrom('GET', 'GET', 'POST'),
        fc.oneof(rawQuery, sampleQuery),
        sigMode,
        headerValue,
        async (path, verb, query, mode, garbage) => {
          const signature = signatureFor(mode, query, garbage);
          const headers: Record<string, string> = {};
          if (signature !== undefined) headers['X-Signature'] = signature;
          if (verb === 'POST') {
            // A POST signs its body, never the query: a query signature must not validate it.
            headers['Content-Type'] = FORM;
            const body = formBody(sampleNotification());
            await exchange({ method: 'POST', path: `${path}?${query}`, headers, body }, correctlySigned(signature, body));
          } else {
            await exchange({ method: 'GET', path: `${path}?${query}`, headers }, correctlySigned(signature, Buffer.from(query, 'latin1')));
          }
        },
      ),
      RUNS.queries,
    );
    expectCoverage(RUNS.queries / 40, [400, 401]);
  }, 120_000);

  it('is still up and serving a valid callback afterwards', async () => {
    const body = formBody(sampleNotification({ id: '19999999999999991' }));
    const before = s.handled.length;
    const reply = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET) }, body });
    expect(reply.status).toBe(200);
    expect(s.handled.length).toBe(before + 1);
    expect(s.errors).toEqual([]);
    assertPrototypesIntact(pristine);
  });
});

/** JSON object text from entries, keys possibly repeated, without going through a JS object. */
function jsonObjectText(entries: [string, unknown][]): string {
  const encode = (v: unknown): string =>
    typeof v === 'bigint' ? v.toString() : typeof v === 'number' && !Number.isFinite(v) ? '1e400' : JSON.stringify(v) ?? 'null';
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${encode(v)}`).join(',')}}`;
}

/** Form text from entries: arrays become repeated keys (and `key[]`), as a hostile client would send them. */
function formText(entries: [string, unknown][]): string {
  const parts: string[] = [];
  // Lone surrogates become U+FFFD first, as they would on the wire.
  const enc = (x: string) => encodeURIComponent(Buffer.from(x, 'utf8').toString('utf8'));
  const push = (k: string, v: unknown) => parts.push(`${enc(k)}=${enc(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`);
  for (const [k, v] of entries) {
    if (Array.isArray(v)) for (const item of v) push(`${k}`, item);
    else push(k, typeof v === 'bigint' ? v.toString() : v);
  }
  return parts.join('&');
}

/** Changes one Base64 character of `value` to a different one. */
function flipChar(value: string, n: number): string {
  const i = n % value.length;
  const c = value[i]!;
  const replacement = c === 'A' ? 'B' : 'A';
  return value.slice(0, i) + replacement + value.slice(i + 1);
}

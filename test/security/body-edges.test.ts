/**
 * Body edge cases over real sockets: limits, lying lengths, chunking, compression, BOM, invalid
 * UTF-8, stalled and vanishing clients. Each pins status, error type and handler calls.
 */
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { rawExchange, SECRET, send, startServer, until, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
const LIMIT = 4096;
const BODY_TIMEOUT_MS = 300;

let s: SecurityServer;
let nextId = 18000000000000000n;
const freshFields = (overrides: Record<string, string | undefined> = {}) => sampleNotification({ id: String(nextId++), ...overrides });

beforeAll(async () => {
  s = await startServer({ options: { secret: SECRET, limit: LIMIT, bodyTimeoutMs: BODY_TIMEOUT_MS } });
});
afterAll(async () => {
  await s.close();
});

/** Snapshot counters, then report what one exchange changed. */
function watch() {
  const handled = s.handled.length;
  const rejected = s.rejected.length;
  return () => ({ handlerCalls: s.handled.length - handled, types: s.rejected.slice(rejected).map((r) => r.error.type) });
}

/** Request head for a raw exchange. */
function head(headers: Record<string, string | number>, path = '/callbacks/caibo'): string {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return `POST ${path} HTTP/1.1\r\nHost: localhost\r\n${lines.join('\r\n')}\r\n\r\n`;
}

describe('size limit', () => {
  it('accepts a body of exactly the limit and refuses one byte more with 413', async () => {
    const base = formBody(freshFields({ notes: '' }));
    const exact = base + 'x'.repeat(LIMIT - Buffer.byteLength(base));
    expect(Buffer.byteLength(exact)).toBe(LIMIT);
    let seen = watch();
    const ok = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(exact, SECRET) }, body: exact });
    expect(ok.status).toBe(200);
    expect(seen()).toEqual({ handlerCalls: 1, types: [] });

    const over = `${exact}y`;
    seen = watch();
    const refused = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(over, SECRET) }, body: over });
    expect(refused.status).toBe(413);
    expect(refused.text).toBe('Payload Too Large');
    expect(seen()).toEqual({ handlerCalls: 0, types: ['entity.too.large'] });
  });

  it('answers 413 from Content-Length alone: a client announcing 50 MB and sending 1 KB gets it and is disconnected', async () => {
    const seen = watch();
    // The body timeout is far away for this server's 413 to be the answer rather than a 408.
    const big = await startServer({ options: { secret: SECRET, limit: LIMIT, bodyTimeoutMs: 60_000 } });
    try {
      const result = await rawExchange(
        big.port,
        [head({ 'Content-Type': FORM, 'Content-Length': 50 * 1024 * 1024, 'X-Signature': 'x' }), 'a'.repeat(1024)],
        { waitMs: 5000 },
      );
      // The client never sent the rest, yet it has its answer and the server closed the connection.
      expect(result.status).toBe(413);
      expect(result.response).toMatch(/\r\nconnection: close\r\n/i);
      expect(result.closedByServer).toBe(true);
      expect(big.rejected.map((r) => r.error.type)).toEqual(['entity.too.large']);
      expect(big.handled).toHaveLength(0);
    } finally {
      await big.close();
    }
    expect(seen().handlerCalls).toBe(0);
  });

  it('answers 413 to a chunked body once it passes the limit, without waiting for its end', async () => {
    const seen = watch();
    const chunk = (data: string) => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
    const result = await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Transfer-Encoding': 'chunked', 'X-Signature': 'x' }), chunk('a'.repeat(3000)), chunk('b'.repeat(3000))],
      { waitMs: 3000, gapMs: 20 },
    );
    expect(result.status).toBe(413);
    expect(result.closedByServer).toBe(true);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['entity.too.large'] });
  });
});

describe('Content-Length that lies', () => {
  it('claims more than is sent, then stalls: 408 request.timeout after bodyTimeoutMs, connection closed', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    const result = await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Length': Buffer.byteLength(body) + 100, 'X-Signature': signPayload(body, SECRET) }), body],
      { waitMs: 5000 },
    );
    expect(result.status).toBe(408);
    expect(result.response).toMatch(/\r\n\r\nRequest Timeout$/);
    expect(result.closedByServer).toBe(true);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['request.timeout'] });
  });

  it('claims more than is sent, then the client closes: request.aborted, handler not called', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Length': Buffer.byteLength(body) + 100, 'X-Signature': signPayload(body, SECRET) }), body],
      { destroyAfterWrite: true, gapMs: 20 },
    );
    await until(() => s.rejected.length > 0 && seen().types.length > 0);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['request.aborted'] });
  });

  it('claims less than is sent: only the announced bytes are the body, so the full-body signature fails', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    const cut = Buffer.byteLength(body) - 10;
    const result = await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Length': cut, 'X-Signature': signPayload(body, SECRET) }) + body.slice(0, cut), body.slice(cut)],
      { waitMs: 1500, gapMs: 100 },
    );
    expect(result.status).toBe(401);
    // The leftover bytes are then read as a second request line, which Node refuses.
    expect(result.response).toMatch(/HTTP\/1\.1 400 Bad Request/);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['signature.invalid'] });
  });

  it('with both Content-Length and Transfer-Encoding (a smuggling attempt): Node refuses it before the router', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    const chunked = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const result = await rawExchange(s.port, [
      head({ 'Content-Type': FORM, 'Content-Length': 5, 'Transfer-Encoding': 'chunked', 'X-Signature': signPayload(body, SECRET) }) + chunked,
    ]);
    expect(result.status).toBe(400);
    expect(seen()).toEqual({ handlerCalls: 0, types: [] });
  });
});

describe('chunked bodies', () => {
  it('accepts a signed chunked body, even split inside multi-byte UTF-8 characters', async () => {
    // Raw UTF-8, not percent-encoded (Caibo's own example is not encoded either).
    const body = Buffer.from(`${formBody(freshFields({ notes: undefined }))}&notes=Zahlung für Bestellung – ünïcödé ✓`);
    const seen = watch();
    const at = body.indexOf(Buffer.from('ü')) + 1; // between the two bytes of ü
    expect(at).toBeGreaterThan(1);
    const pieces = [body.subarray(0, at), body.subarray(at, at + 7), body.subarray(at + 7)];
    const frames: (string | Buffer)[] = [head({ 'Content-Type': FORM, 'Transfer-Encoding': 'chunked', 'X-Signature': signPayload(body, SECRET), Connection: 'close' })];
    for (const p of pieces) frames.push(Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
    frames.push('0\r\n\r\n');
    const result = await rawExchange(s.port, frames, { gapMs: 10 });
    expect(result.status).toBe(200);
    expect(seen()).toEqual({ handlerCalls: 1, types: [] });
    expect(s.handled.at(-1)).toMatchObject({ kind: 'payment', notes: 'Zahlung für Bestellung – ünïcödé ✓' });
  });
});

describe('Content-Encoding is refused, never decoded', () => {
  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const)('%s: 415 encoding.unsupported, whether the signature covers the compressed or the plain bytes', async (encoding, compress) => {
    const plain = formBody(freshFields());
    const packed = compress(Buffer.from(plain));
    for (const signedBytes of [packed, Buffer.from(plain)]) {
      const seen = watch();
      const reply = await send(s, {
        path: '/callbacks/caibo',
        headers: { 'Content-Type': FORM, 'Content-Encoding': encoding, 'X-Signature': signPayload(signedBytes, SECRET) },
        body: packed,
      });
      expect(reply.status).toBe(415);
      expect(reply.text).toBe('Content-Encoding is not supported; send the body uncompressed');
      expect(seen()).toEqual({ handlerCalls: 0, types: ['encoding.unsupported'] });
    }
  });

  it('a gzip bomb (64 MB of zeros in 64 KB) is refused from its headers, before a byte of it is read', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(LIMIT * 32);
    const seen = watch();
    // Only the head is sent: the 415 cannot depend on the body, so nothing was (or could be) inflated.
    const result = await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Encoding': 'gzip', 'Content-Length': bomb.length, 'X-Signature': signPayload(bomb, SECRET) })],
      { waitMs: 3000 },
    );
    expect(result.status).toBe(415);
    expect(result.firstByteMs).toBeGreaterThanOrEqual(0);
    expect(result.response).toMatch(/\r\nconnection: close\r\n/i);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['encoding.unsupported'] });
  });

  it('`identity` is no encoding and is accepted', async () => {
    const body = formBody(freshFields());
    const reply = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'Content-Encoding': 'identity', 'X-Signature': signPayload(body, SECRET) }, body });
    expect(reply.status).toBe(200);
  });

  it('a deflate bomb inside a signed 3DS PaRes field is capped while inflating: 400, no crash', async () => {
    const pares = deflateSync(Buffer.alloc(32 * 1024 * 1024, 'A')).toString('base64');
    const body = formBody({ PaRes: pares, MD: 'md-1' });
    const big = await startServer({ options: { secret: SECRET, limit: '1mb' } });
    try {
      const reply = await send(big, { path: '/callbacks/3ds', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET) }, body });
      expect(reply.status).toBe(400);
      expect(big.rejected.map((r) => r.error.type)).toEqual(['payload.invalid']);
      expect(big.handled).toHaveLength(0);
    } finally {
      await big.close();
    }
  });
});

describe('text encoding', () => {
  it('drops a UTF-8 BOM before parsing (form and JSON); the signature still covers the BOM', async () => {
    for (const type of [FORM, 'application/json'] as const) {
      const fields = freshFields();
      const text = type === FORM ? formBody(fields) : JSON.stringify(fields);
      const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
      const seen = watch();
      const reply = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': type, 'X-Signature': signPayload(body, SECRET) }, body });
      expect(reply.status).toBe(200);
      expect(seen()).toEqual({ handlerCalls: 1, types: [] });
      expect(s.handled.at(-1)).toMatchObject({ paymentRequestId: fields.id });
      // Signed without the BOM it is refused: the BOM is part of the signed bytes.
      const unsigned = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': type, 'X-Signature': signPayload(text, SECRET) }, body });
      expect(unsigned.status).toBe(401);
    }
  });

  it.each([
    ['a lone continuation byte', [0x80]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['a UTF-16 surrogate encoded in UTF-8', [0xed, 0xa0, 0x80]],
    ['a truncated 3-byte sequence', [0xe2, 0x82]],
    ['Latin-1 é', [0xe9]],
  ])('refuses invalid UTF-8 (%s) with 400 payload.malformed, even correctly signed', async (_name, bad) => {
    const body = Buffer.concat([Buffer.from(formBody(freshFields({ notes: '' }))), Buffer.from(bad)]);
    const seen = watch();
    const reply = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET) }, body });
    expect(reply.status).toBe(400);
    expect(reply.text).toBe('Body is not valid UTF-8');
    expect(seen()).toEqual({ handlerCalls: 0, types: ['payload.malformed'] });
  });
});

describe('slow and vanishing clients', () => {
  it('a client that sends headers and stalls gets 408 request.timeout after bodyTimeoutMs and is disconnected', async () => {
    const seen = watch();
    const result = await rawExchange(s.port, [head({ 'Content-Type': FORM, 'Content-Length': 500, 'X-Signature': 'x' })], { waitMs: 5000 });
    expect(result.status).toBe(408);
    expect(result.closedByServer).toBe(true);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['request.timeout'] });
  });

  it('a trickling client (a byte at a time) cannot outlast the deadline either', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    const bytes = body.split('').slice(0, 60);
    const result = await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Length': Buffer.byteLength(body), 'X-Signature': signPayload(body, SECRET) }), ...bytes],
      { waitMs: 5000, gapMs: 10 },
    );
    expect(result.status).toBe(408);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['request.timeout'] });
  });

  it('a client that disconnects mid-body: request.aborted, no handler call, and the server carries on', async () => {
    const body = formBody(freshFields());
    const seen = watch();
    await rawExchange(
      s.port,
      [head({ 'Content-Type': FORM, 'Content-Length': Buffer.byteLength(body), 'X-Signature': signPayload(body, SECRET) }), body.slice(0, 40)],
      { destroyAfterWrite: true, gapMs: 20 },
    );
    await until(() => seen().types.length > 0);
    expect(seen()).toEqual({ handlerCalls: 0, types: ['request.aborted'] });
    const again = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET) }, body });
    expect(again.status).toBe(200);
  });

  it('bodyTimeoutMs is validated when the router is created', async () => {
    await expect(startServer({ options: { bodyTimeoutMs: 0 } })).rejects.toThrow('`bodyTimeoutMs` must be a positive integer');
    await expect(startServer({ options: { bodyTimeoutMs: 1.5 } })).rejects.toThrow(TypeError);
  });
});

/**
 * Named X-Signature edge cases over HTTP. Each pins status, error type and handler calls.
 */
import { verifySignature } from '../../src/core/signature';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { OLD_SECRET, rawExchange, SECRET, send, startServer, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
let s: SecurityServer;
let nextId = 17000000000000000n;
/** A fresh notification body, so every accepted request is a new event. */
const freshBody = (overrides: Record<string, string> = {}) => formBody(sampleNotification({ id: String(nextId++), ...overrides }));

beforeAll(async () => {
  s = await startServer({ options: { secret: SECRET, allowIps: ['127.0.0.1'] } });
});
afterAll(async () => {
  await s.close();
});

async function postWith(body: string | Buffer, signature: string | string[] | undefined, path = '/callbacks/caibo') {
  const handled = s.handled.length;
  const rejected = s.rejected.length;
  const headers: Record<string, string | string[]> = { 'Content-Type': FORM };
  if (signature !== undefined) headers['X-Signature'] = signature;
  const reply = await send(s, { path, headers, body });
  return {
    status: reply.status,
    text: reply.text,
    handlerCalls: s.handled.length - handled,
    type: s.rejected.slice(rejected).map((r) => r.error.type)[0],
  };
}

describe('X-Signature edge cases', () => {
  it('accepts the correct signature (the baseline every case below departs from)', async () => {
    const body = freshBody();
    expect(await postWith(body, signPayload(body, SECRET))).toMatchObject({ status: 200, handlerCalls: 1, type: undefined });
  });

  it('refuses a missing header as signature.missing', async () => {
    expect(await postWith(freshBody(), undefined)).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.missing', text: 'Unauthorized' });
  });

  it.each([
    ['empty', ''],
    ['blank', '   \t '],
  ])('refuses an %s header as signature.missing', async (_name, value) => {
    expect(await postWith(freshBody(), value)).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.missing' });
  });

  it('refuses two X-Signature headers, even when both are correct', async () => {
    const body = freshBody();
    const good = signPayload(body, SECRET);
    expect(await postWith(body, [good, good])).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    expect(await postWith(body, [good, 'garbage'])).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    expect(await postWith(body, ['garbage', good])).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
  });

  it('ignores spaces and tabs around the value', async () => {
    const body = freshBody();
    expect(await postWith(body, ` \t ${signPayload(body, SECRET)} \t`)).toMatchObject({ status: 200, handlerCalls: 1 });
  });

  it('ignores line breaks around the value (verifySignature), and HTTP itself refuses folded header lines', async () => {
    const body = freshBody();
    const good = signPayload(body, SECRET);
    expect(verifySignature(body, `\r\n ${good}\n`, [SECRET])).toEqual({ ok: true, secretIndex: 0 });
    expect(verifySignature(body, `${good.slice(0, 40)}\n${good.slice(40)}`, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    // Obsolete line folding (a value continued on the next line) never reaches the router: Node answers 400.
    const handled = s.handled.length;
    const raw = await rawExchange(s.port, [
      `POST /callbacks/caibo HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nX-Signature:\r\n ${good}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    ]);
    expect(raw.status).toBe(400);
    expect(s.handled.length).toBe(handled);
  });

  it('refuses truncated values (dropping only the padding is not truncation: padding is optional)', async () => {
    const body = freshBody();
    const good = signPayload(body, SECRET);
    expect(good).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    for (const cut of [1, 43, 84, 85]) {
      expect(await postWith(body, good.slice(0, cut))).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    }
  });

  it('refuses over-long values (extra characters, padding, a doubled signature)', async () => {
    const body = freshBody();
    const good = signPayload(body, SECRET);
    for (const value of [`${good}A`, `${good}=`, `${good}AAAA`, good + good, `${good} ${good}`]) {
      expect(await postWith(body, value)).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    }
  });

  it('refuses the digest in hex instead of Base64', async () => {
    const body = freshBody();
    const hex = Buffer.from(signPayload(body, SECRET), 'base64').toString('hex');
    expect(hex).toHaveLength(128);
    expect(await postWith(body, hex)).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    expect(await postWith(body, hex.toUpperCase())).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
  });

  it('accepts URL-safe and unpadded Base64 of the correct digest', async () => {
    const body = freshBody();
    const good = signPayload(body, SECRET);
    const urlSafe = good.replace(/\+/g, '-').replace(/\//g, '_');
    expect(await postWith(body, urlSafe.replace(/=+$/, ''))).toMatchObject({ status: 200, handlerCalls: 1 });
    const body2 = freshBody();
    expect(await postWith(body2, signPayload(body2, SECRET).replace(/=+$/, ''))).toMatchObject({ status: 200, handlerCalls: 1 });
  });

  it('refuses a signature of a re-serialised body (another encoding, order or spacing of the same fields)', async () => {
    const fields = sampleNotification({ id: String(nextId++) });
    const sent = formBody(fields);
    const variants = [
      JSON.stringify(fields),
      JSON.stringify(fields, null, 2),
      formBody(Object.fromEntries(Object.entries(fields).reverse())),
      sent.replace(/\+/g, '%20'),
      `${sent}&`,
      `${sent}\n`,
    ];
    for (const other of variants) {
      expect(other).not.toBe(sent);
      expect(await postWith(sent, signPayload(other, SECRET))).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    }
    // And the JSON body signed as form text is refused the same way.
    const json = JSON.stringify(fields);
    const reply = await send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': 'application/json', 'X-Signature': signPayload(sent, SECRET) }, body: json });
    expect(reply.status).toBe(401);
  });

  it('refuses a valid signature once the body is changed by one byte, wherever the byte is', async () => {
    const body = Buffer.from(freshBody());
    const good = signPayload(body, SECRET);
    for (const at of [0, 1, Math.floor(body.length / 2), body.length - 1]) {
      for (const bit of [0x01, 0x20, 0x80]) {
        const tampered = Buffer.from(body);
        tampered[at] = tampered[at]! ^ bit;
        expect(await postWith(tampered, good)).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
      }
    }
    // One byte appended or removed.
    expect(await postWith(Buffer.concat([body, Buffer.from('0')]), good)).toMatchObject({ status: 401, handlerCalls: 0 });
    expect(await postWith(body.subarray(0, body.length - 1), good)).toMatchObject({ status: 401, handlerCalls: 0 });
    // Untouched, it still passes.
    expect(await postWith(body, good)).toMatchObject({ status: 200, handlerCalls: 1 });
  });

  it('refuses a signature made with a key that is not configured', async () => {
    const body = freshBody();
    expect(await postWith(body, signPayload(body, OLD_SECRET))).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
    expect(await postWith(body, signPayload(body, `${SECRET} `))).toMatchObject({ status: 401, handlerCalls: 0, type: 'signature.invalid' });
  });

  it('signs GET callbacks over the raw query: a reordered query is refused', async () => {
    const fields = sampleNotification({ id: String(nextId++) });
    const query = formBody(fields);
    const reordered = formBody(Object.fromEntries(Object.entries(fields).reverse()));
    const get = (q: string, signature: string) =>
      send(s, { method: 'GET', path: `/callbacks/caibo-gateway?${q}`, headers: { 'X-Signature': signature } });
    const handled = s.handled.length;
    expect((await get(reordered, signPayload(query, SECRET))).status).toBe(401);
    expect(s.handled.length).toBe(handled);
    expect((await get(query, signPayload(query, SECRET))).status).toBe(200);
    expect(s.handled.length).toBe(handled + 1);
  });
});

describe('key rotation', () => {
  it('accepts the retired key only while it is still configured, and reports which key matched', async () => {
    const during = await startServer({ options: { secret: [SECRET, OLD_SECRET] } });
    const after = await startServer({ options: { secret: SECRET } });
    try {
      const body = freshBody();
      const oldSig = signPayload(body, OLD_SECRET);
      const headers = { 'Content-Type': FORM, 'X-Signature': oldSig };

      const accepted = await send(during, { path: '/callbacks/caibo', headers, body });
      expect(accepted.status).toBe(200);
      expect(during.handled).toHaveLength(1);
      expect(during.handled[0]).toMatchObject({ verified: true, secretIndex: 1 });

      const refused = await send(after, { path: '/callbacks/caibo', headers, body });
      expect(refused.status).toBe(401);
      expect(after.handled).toHaveLength(0);
      expect(after.rejected.map((r) => r.error.type)).toEqual(['signature.invalid']);

      // The new key works on both.
      const body2 = freshBody();
      const newHeaders = { 'Content-Type': FORM, 'X-Signature': signPayload(body2, SECRET) };
      expect((await send(during, { path: '/callbacks/caibo', headers: newHeaders, body: body2 })).status).toBe(200);
      expect(during.handled[1]).toMatchObject({ secretIndex: 0 });
      expect((await send(after, { path: '/callbacks/caibo', headers: newHeaders, body: body2 })).status).toBe(200);
    } finally {
      await during.close();
      await after.close();
    }
  });
});

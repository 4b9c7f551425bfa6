/**
 * Every row of the Responses table in design.md (429 belongs to the rate-limit issue), over
 * Express 5, Express 4 and Connect. Each case pins status, body, error type and handler calls.
 */
import { deflateSync } from 'node:zlib';
import { MemoryStore } from '../../src/stores/memory';
import type { CallbackStore } from '../../src/stores/types';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { errorTypes, FRAMEWORKS, harness, post, rawRequest, rejectedTypes, SECRET, signed, type Harness, type HarnessOptions } from '../helpers/callbacks';

describe.each(FRAMEWORKS)('Responses table under %s', (framework) => {
  let h: Harness;
  const open = async (options: HarnessOptions = {}) => {
    h = await harness(framework, options);
    return h;
  };
  afterEach(async () => {
    await h?.close();
  });

  describe('200', () => {
    it.each(['caibo', 'caibo-gateway', 'caibowh', '3ds'])('handles a new event on /%s, form and JSON', async (route) => {
      await open();
      const form = await post(h, `/callbacks/${route}`, sampleNotification());
      expect(form.status).toBe(200);
      expect(form.text).toBe('OK');
      expect(form.headers['cache-control']).toBe('no-store');
      const json = await post(h, `/callbacks/${route}`, sampleNotification({ transactionId: '265112' }), { type: 'json' });
      expect(json.status).toBe(200);
      expect(h.handled).toHaveLength(2);
      expect(h.handled[0]).toMatchObject({ kind: 'payment', provider: route, paymentRequestId: '16772761082427695', verified: true, secretIndex: 0 });
      expect(h.handled[1]).toMatchObject({ provider: route, transactionId: '265112' });
      expect(h.handledContexts[0]).toMatchObject({ provider: route });
      expect(h.rejected).toEqual([]);
      expect(h.errors).toEqual([]);
      // The store holds both keys as done.
      expect(await h.store.claim(h.handled[0]!.key, { leaseMs: 1000 })).toEqual({ status: 'done' });
      expect(await h.store.claim(h.handled[1]!.key, { leaseMs: 1000 })).toEqual({ status: 'done' });
    });

    it('answers a duplicate of a completed event 200 without calling the handler', async () => {
      await open();
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      const again = await post(h, '/callbacks/caibo', sampleNotification());
      expect(again.status).toBe(200);
      expect(again.text).toBe('OK');
      expect(h.handled).toHaveLength(1);
      expect(h.duplicates).toHaveLength(1);
      expect(h.duplicates[0]!.key).toBe(h.handled[0]!.key);
    });

    it('treats the same state through another route (and encoding) as the same event', async () => {
      await open();
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect((await post(h, '/callbacks/caibowh', sampleNotification(), { type: 'json' })).status).toBe(200);
      expect((await post(h, '/callbacks/caibo-gateway', sampleNotification({ notes: 'resent' }))).status).toBe(200);
      expect(h.handled).toHaveLength(1);
      expect(h.duplicates.map((e) => e.provider)).toEqual(['caibowh', 'caibo-gateway']);
      // The next state of the same payment is a new event.
      expect((await post(h, '/callbacks/caibo', sampleNotification({ paymentRequestStatusId: '3' }))).status).toBe(200);
      expect(h.handled).toHaveLength(2);
      expect(h.handled[1]).toMatchObject({ paymentStatus: 'cancelled', final: true });
    });

    it('accepts an unknown status code as unknown and not final (never a 4xx)', async () => {
      await open();
      const res = await post(h, '/callbacks/caibo', sampleNotification({ paymentRequestStatusId: '4', transactionStatusId: '7' }));
      expect(res.status).toBe(200);
      expect(h.handled[0]).toMatchObject({ paymentStatus: 'unknown', transactionStatus: 'unknown', final: false });
    });

    it('delivers a 3DS result on /3ds as the 3DS variant (cres, PaRes+MD, plain)', async () => {
      await open();
      const cres = Buffer.from(JSON.stringify({ threeDSServerTransID: 'ds-1', acsTransID: 'acs-1', messageType: 'CRes', transStatus: 'Y' })).toString('base64url');
      const pares = deflateSync('<PARes><TX><status>N</status><eci>07</eci></TX></PARes>').toString('base64');
      expect((await post(h, '/callbacks/3ds', { cres, threeDSSessionData: 'sess' })).status).toBe(200);
      expect((await post(h, '/callbacks/3ds', { PaRes: pares, MD: 'md-9' })).status).toBe(200);
      expect((await post(h, '/callbacks/3ds', { transactionId: 'tx-5', transStatus: 'A', eci: '06' }, { type: 'json' })).status).toBe(200);
      expect(h.handled.map((e) => e.kind)).toEqual(['3ds', '3ds', '3ds']);
      expect(h.handled[0]).toMatchObject({ version: '2', transactionId: 'ds-1', authenticated: true, sessionData: 'sess' });
      expect(h.handled[1]).toMatchObject({ version: '1', transactionId: 'md-9', transStatus: 'N', eci: '07' });
      expect(h.handled[2]).toMatchObject({ version: 'unknown', transactionId: 'tx-5', transStatus: 'A' });
      // Repeating a 3DS result is a duplicate.
      expect((await post(h, '/callbacks/3ds', { cres, threeDSSessionData: 'sess' })).status).toBe(200);
      expect(h.handled).toHaveLength(3);
      // The 3DS fields are not read as a 3DS result on the other routes.
      const elsewhere = await post(h, '/callbacks/caibo', { cres, threeDSSessionData: 'sess' });
      expect(elsewhere.status).toBe(400);
      expect(rejectedTypes(h)).toEqual(['payload.invalid']);
    });
  });

  describe('409 in flight', () => {
    it('answers a copy that arrives while the first is being handled with 409 + Retry-After', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      await open({ onStatus: () => gate, retryAfterSeconds: 7 });
      const first = post(h, '/callbacks/caibo', sampleNotification()).then((r) => r);
      await waitFor(() => h.handled.length === 1);
      const second = await post(h, '/callbacks/caibowh', sampleNotification());
      expect(second.status).toBe(409);
      expect(second.headers['retry-after']).toBe('7');
      expect(second.text).toBe('The first copy of this event is still being handled');
      expect(rejectedTypes(h)).toEqual(['event.in_flight']);
      expect(h.rejected[0]!.context.event?.key).toBe(h.handled[0]!.key);
      release();
      expect((await first).status).toBe(200);
      expect(h.handled).toHaveLength(1);
      // After completion the retry is an ordinary duplicate.
      expect((await post(h, '/callbacks/caibowh', sampleNotification())).status).toBe(200);
      expect(h.handled).toHaveLength(1);
    });
  });

  describe('405', () => {
    it.each([
      ['GET', '/callbacks/caibo', 'POST'],
      ['PUT', '/callbacks/caibo-gateway', 'GET, POST'],
      ['DELETE', '/callbacks/3ds', 'GET, POST'],
      ['GET', '/callbacks/caibowh', 'POST'],
      ['GET', '/callbacks/test/json', 'POST'],
      ['POST', '/callbacks/test/text', 'GET'],
      ['HEAD', '/callbacks/caibo-gateway', 'GET, POST'],
    ])('answers %s %s with 405 and Allow: %s', async (method, path, allow) => {
      await open();
      const res = await h.http()[method.toLowerCase() as 'get' | 'put' | 'delete' | 'post' | 'head'](path);
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe(allow);
      if (method !== 'HEAD') expect(res.text).toBe('Method Not Allowed');
      expect(rejectedTypes(h)).toEqual(['method.not_allowed']);
      expect(h.handled).toHaveLength(0);
    });
  });

  describe('403', () => {
    it('refuses a source address outside allowIps before reading the body', async () => {
      await open({ allowIps: ['203.0.113.0/24', '2001:db8::/32'] });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(403);
      expect(res.text).toBe('Forbidden');
      expect(rejectedTypes(h)).toEqual(['ip.forbidden']);
      expect(h.rejected[0]!.context.clientIp).toMatch(/127\.0\.0\.1$/);
      expect(h.handled).toHaveLength(0);
    });

    it('lets an allowed address in, as IPv4 and as an IPv4-mapped IPv6 rule', async () => {
      await open({ allowIps: ['127.0.0.0/8'] });
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      await h.close();
      await open({ allowIps: ['::ffff:127.0.0.1'] });
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect(h.handled).toHaveLength(1);
    });

    it('matches an IPv4 rule against an IPv4-mapped IPv6 client address (dual-stack server)', async () => {
      await open({ allowIps: ['127.0.0.1'], host: '::' });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(200);
      expect(h.handledContexts[0]!.clientIp).toBe('::ffff:127.0.0.1');
      await h.close();
      await open({ allowIps: ['10.0.0.0/8'], host: '::' });
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(403);
      expect(rejectedTypes(h)).toEqual(['ip.forbidden']);
    });

    it('refuses an event for another merchant with merchant.mismatch', async () => {
      await open({ merchantId: '16762420400394816' });
      const other = await post(h, '/callbacks/caibo', sampleNotification({ merchantId: '16762420400394817' }));
      expect(other.status).toBe(403);
      expect(other.text).toBe('Forbidden');
      expect(rejectedTypes(h)).toEqual(['merchant.mismatch']);
      expect(h.handled).toHaveLength(0);
      const missing = await post(h, '/callbacks/caibo', sampleNotification({ merchantId: undefined }));
      expect(missing.status).toBe(403);
      const mine = await post(h, '/callbacks/caibo', sampleNotification());
      expect(mine.status).toBe(200);
      expect(h.handled).toHaveLength(1);
    });
  });

  describe('401', () => {
    it('refuses a request without X-Signature with signature.missing', async () => {
      await open();
      const res = await post(h, '/callbacks/caibo', sampleNotification(), { signature: null });
      expect(res.status).toBe(401);
      expect(res.text).toBe('Unauthorized');
      expect(rejectedTypes(h)).toEqual(['signature.missing']);
      expect(h.handled).toHaveLength(0);
    });

    it('refuses a wrong signature, a wrong secret and a tampered body with signature.invalid and one generic body', async () => {
      await open();
      const wrongSecret = await post(h, '/callbacks/caibo', sampleNotification(), { secret: 'caibo_test_sk_someone_else' });
      const garbage = await post(h, '/callbacks/caibo', sampleNotification(), { signature: 'bm90IGEgc2lnbmF0dXJl' });
      const { body } = signed(sampleNotification());
      const tampered = await h
        .http()
        .post('/callbacks/caibo')
        .set({ 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signPayload(body, SECRET) })
        .send(body.replace('grossAmount=10', 'grossAmount=1000'));
      for (const res of [wrongSecret, garbage, tampered]) {
        expect(res.status).toBe(401);
        expect(res.text).toBe('Unauthorized');
      }
      expect(rejectedTypes(h)).toEqual(['signature.invalid', 'signature.invalid', 'signature.invalid']);
      expect(h.handled).toHaveLength(0);
    });
  });

  describe('413', () => {
    it('refuses a body over the limit with entity.too.large', async () => {
      await open({ limit: 1024 });
      const res = await post(h, '/callbacks/caibo', sampleNotification({ notes: 'x'.repeat(2000) }));
      expect(res.status).toBe(413);
      expect(res.text).toBe('Payload Too Large');
      expect(rejectedTypes(h)).toEqual(['entity.too.large']);
      expect(h.handled).toHaveLength(0);
    });

    it('refuses a large body over the default 100kb limit', async () => {
      await open();
      const res = await post(h, '/callbacks/caibo', sampleNotification({ notes: 'x'.repeat(150 * 1024) }));
      expect(res.status).toBe(413);
      expect(rejectedTypes(h)).toEqual(['entity.too.large']);
      expect(h.handled).toHaveLength(0);
    });
  });

  describe('chunked bodies', () => {
    it('reads a chunked body (no Content-Length) and still enforces the limit while reading', async () => {
      await open({ limit: 2048 });
      const { body, headers } = signed(sampleNotification());
      const ok = await rawRequest(h.url, 'POST', '/callbacks/caibo', { ...headers, 'Transfer-Encoding': 'chunked' }, body);
      expect(ok.status).toBe(200);
      expect(h.handled).toHaveLength(1);
      const big = signed(sampleNotification({ notes: 'n'.repeat(4096) }));
      const tooBig = await rawRequest(h.url, 'POST', '/callbacks/caibo', { ...big.headers, 'Transfer-Encoding': 'chunked' }, big.body);
      expect(tooBig.status).toBe(413);
      expect(rejectedTypes(h)).toEqual(['entity.too.large']);
      expect(h.handled).toHaveLength(1);
    });
  });

  describe('hooks that throw', () => {
    it('do not change the answer', async () => {
      await open({
        onRejected: () => {
          throw new Error('hook bug');
        },
        onDuplicate: () => {
          throw new Error('hook bug');
        },
      });
      expect((await post(h, '/callbacks/caibo', sampleNotification(), { signature: null })).status).toBe(401);
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect(h.handled).toHaveLength(1);
      expect(h.duplicates).toHaveLength(1);
    });
  });

  describe('415', () => {
    it.each([
      ['text/plain', 'content_type.unsupported'],
      ['application/xml', 'content_type.unsupported'],
      ['multipart/form-data; boundary=x', 'content_type.unsupported'],
      ['not a media type', 'content_type.unsupported'],
      ['application/x-www-form-urlencoded; charset=iso-8859-1', 'charset.unsupported'],
      ['application/json; charset=utf-16', 'charset.unsupported'],
    ])('refuses Content-Type %j with %s', async (contentType, type) => {
      await open();
      const res = await post(h, '/callbacks/caibo', formBody(sampleNotification()), { type: contentType });
      expect(res.status).toBe(415);
      expect(res.text).toBe(
        type === 'charset.unsupported'
          ? 'Only the utf-8 charset is supported'
          : 'Content-Type must be one of: application/x-www-form-urlencoded, application/json',
      );
      expect(rejectedTypes(h)).toEqual([type]);
      expect(h.handled).toHaveLength(0);
    });

    it('refuses a POST with no Content-Type', async () => {
      await open();
      const { body, headers } = signed(sampleNotification());
      const res = await rawRequest(h.url, 'POST', '/callbacks/caibo', { 'X-Signature': headers['X-Signature']! }, body);
      expect(res.status).toBe(415);
      expect(res.text).toMatch(/Content-Type must be one of: application\/x-www-form-urlencoded, application\/json/);
      expect(rejectedTypes(h)).toEqual(['content_type.unsupported']);
    });

    it('accepts utf-8 spelled in any case, and refuses a compressed body with encoding.unsupported', async () => {
      await open();
      expect((await post(h, '/callbacks/caibo', sampleNotification(), { type: 'application/x-www-form-urlencoded; charset=UTF-8' })).status).toBe(200);
      const gz = await post(h, '/callbacks/caibo', sampleNotification({ transactionId: '1' }), { headers: { 'Content-Encoding': 'gzip' } });
      expect(gz.status).toBe(415);
      expect(gz.text).toMatch(/Content-Encoding/);
      expect(rejectedTypes(h)).toEqual(['encoding.unsupported']);
      expect(h.handled).toHaveLength(1);
    });
  });

  describe('400', () => {
    it('refuses JSON that does not parse with payload.malformed', async () => {
      await open();
      const res = await post(h, '/callbacks/caibo', '{"id":16772761082427695,', { type: 'json' });
      expect(res.status).toBe(400);
      expect(res.text).toBe('Body is not valid JSON');
      expect(rejectedTypes(h)).toEqual(['payload.malformed']);
      expect(h.handled).toHaveLength(0);
    });

    it('refuses a body that is not UTF-8 with payload.malformed', async () => {
      await open();
      expect((await post(h, '/callbacks/caibo', sampleNotification({ clientName: 'Zoë Ñandú' }))).status).toBe(200);
      expect(h.handled[0]!.kind === 'payment' && h.handled[0]!.client.name).toBe('Zoë Ñandú');
      const bytes = Buffer.concat([Buffer.from(`${formBody(sampleNotification({ transactionId: '9' }))}&notes=`), Buffer.from([0xc3, 0x28])]);
      const bad = await rawRequest(h.url, 'POST', '/callbacks/caibo', { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signPayload(bytes, SECRET) }, bytes);
      expect(bad.status).toBe(400);
      expect(bad.text).toBe('Body is not valid UTF-8');
      expect(rejectedTypes(h)).toEqual(['payload.malformed']);
      expect(h.handled).toHaveLength(1);
    });

    it('refuses a body that fails the schema with payload.invalid, naming the field', async () => {
      await open();
      const res = await post(h, '/callbacks/caibo', sampleNotification({ paymentRequestStatusId: undefined }));
      expect(res.status).toBe(400);
      expect(res.text).toMatch(/paymentRequestStatusId/);
      const dup = await post(h, '/callbacks/caibo', `${formBody(sampleNotification())}&id=1`);
      expect(dup.status).toBe(400);
      expect(dup.text).toMatch(/"id" is repeated/);
      expect(rejectedTypes(h)).toEqual(['payload.invalid', 'payload.invalid']);
      expect(h.handled).toHaveLength(0);
    });
  });

  describe('500 handler.failed', () => {
    it('answers 500 with a generic body, releases the claim, and runs the handler again on redelivery', async () => {
      let calls = 0;
      await open({
        onStatus: () => {
          calls++;
          if (calls === 1) throw new Error('database is down (order 12345)');
        },
      });
      const first = await post(h, '/callbacks/caibo', sampleNotification());
      expect(first.status).toBe(500);
      expect(first.text).toBe('Internal Server Error');
      expect(first.text).not.toMatch(/database/);
      expect(errorTypes(h)).toEqual(['handler.failed']);
      expect((h.errors[0]!.error.cause as Error).message).toBe('database is down (order 12345)');
      expect(h.errors[0]!.context.event?.key).toBe('16772761082427695:265111:1:1');
      const redelivery = await post(h, '/callbacks/caibo', sampleNotification());
      expect(redelivery.status).toBe(200);
      expect(calls).toBe(2);
      expect(h.handled).toHaveLength(2);
      // Completed now: a third copy is a duplicate.
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect(calls).toBe(2);
      expect(errorTypes(h)).toEqual(['handler.failed']);
    });

    it('answers 200 with ackOnError, still reports the failure and still releases the claim', async () => {
      let calls = 0;
      await open({
        ackOnError: true,
        onStatus: async () => {
          calls++;
          if (calls === 1) throw new Error('boom');
        },
      });
      const first = await post(h, '/callbacks/caibo', sampleNotification());
      expect(first.status).toBe(200);
      expect(first.text).toBe('OK');
      expect(errorTypes(h)).toEqual(['handler.failed']);
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect(calls).toBe(2);
    });
  });

  describe('503 store.unavailable', () => {
    it('answers 503 + Retry-After and never calls the handler when store.claim rejects', async () => {
      const failing: CallbackStore = {
        claim: () => Promise.reject(new Error('ECONNREFUSED 127.0.0.1:6390')),
        complete: () => Promise.resolve(),
        release: () => Promise.resolve(),
      };
      await open({ store: failing as unknown as MemoryStore, retryAfterSeconds: 11 });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('11');
      expect(res.text).toBe('Service Unavailable');
      expect(res.text).not.toMatch(/ECONNREFUSED/);
      expect(errorTypes(h)).toEqual(['store.unavailable']);
      expect(h.handled).toHaveLength(0);
    });

    it('answers 503 when the store fails to initialise', async () => {
      const broken: CallbackStore = {
        init: () => Promise.reject(new Error('no such table')),
        claim: () => Promise.resolve({ status: 'claimed', token: 't' }),
        complete: () => Promise.resolve(),
        release: () => Promise.resolve(),
      };
      await open({ store: broken as unknown as MemoryStore });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(errorTypes(h)).toEqual(['store.unavailable']);
      expect(h.handled).toHaveLength(0);
    });

    it('answers 200 when complete fails after the handler ran (a retry would run it twice), and reports it', async () => {
      const store = new MemoryStore();
      const flaky: CallbackStore = {
        claim: (k, o) => store.claim(k, o),
        complete: () => Promise.reject(new Error('write failed')),
        release: (k, t) => store.release(k, t),
      };
      await open({ store: flaky as unknown as MemoryStore });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(200);
      expect(h.handled).toHaveLength(1);
      expect(errorTypes(h)).toEqual(['store.unavailable']);
      await store.close();
    });

    it('answers 503 after router.close()', async () => {
      await open();
      await h.router.close();
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(h.handled).toHaveLength(0);
    });
  });
});

async function waitFor(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  if (!predicate()) throw new Error('timed out');
}


/**
 * Which requests the router serves: the documented paths (with a trailing slash), GET with a
 * signed query on /caibo-gateway and /3ds, fall-through to next() for anything else, and the
 * diagnostic test routes.
 */
import { MemoryStore } from '../../src/stores/memory';
import type { CallbackStore } from '../../src/stores/types';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { FRAMEWORKS, getSigned, harness, post, rejectedTypes, SECRET, type Harness } from '../helpers/callbacks';

/** A real MemoryStore that counts calls, to prove the test routes never touch the store. */
class CountingStore implements CallbackStore {
  readonly inner = new MemoryStore();
  calls = 0;
  claim(key: string, opts: { leaseMs: number }) {
    this.calls++;
    return this.inner.claim(key, opts);
  }
  complete(key: string, token: string, opts: { retentionMs: number }) {
    this.calls++;
    return this.inner.complete(key, token, opts);
  }
  release(key: string, token: string) {
    this.calls++;
    return this.inner.release(key, token);
  }
  close() {
    return this.inner.close();
  }
}

describe.each(FRAMEWORKS)('routing under %s', (framework) => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('passes other paths, including near misses, to next()', async () => {
    h = await harness(framework);
    for (const path of ['/callbacks', '/callbacks/', '/callbacks/other', '/callbacks/caibo/extra', '/callbacks/CAIBO', '/caibo', '/callbacks/test']) {
      const res = await post(h, path, sampleNotification());
      expect([path, res.status, res.text]).toEqual([path, 404, 'fell through']);
    }
    expect(h.handled).toHaveLength(0);
    expect(h.rejected).toHaveLength(0);
  });

  it('serves the documented paths with a trailing slash and a query string', async () => {
    h = await harness(framework);
    expect((await post(h, '/callbacks/caibo/', sampleNotification())).status).toBe(200);
    expect((await post(h, '/callbacks/caibowh/?source=caibo', sampleNotification({ transactionId: '2' }))).status).toBe(200);
    expect(h.handled.map((e) => e.provider)).toEqual(['caibo', 'caibowh']);
  });

  it('serves the router at another mount point', async () => {
    h = await harness(framework, { mountPath: '/hooks/payments' });
    expect((await post(h, '/hooks/payments/caibo', sampleNotification())).status).toBe(200);
    expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(404);
    expect(h.handled).toHaveLength(1);
  });

  describe('GET with the fields in a signed query string', () => {
    it.each(['caibo-gateway', '3ds'])('handles GET /%s', async (route) => {
      h = await harness(framework);
      const res = await getSigned(h, `/callbacks/${route}`, sampleNotification());
      expect(res.status).toBe(200);
      expect(h.handled).toHaveLength(1);
      expect(h.handled[0]).toMatchObject({ provider: route, paymentRequestId: '16772761082427695', secretIndex: 0 });
      expect(h.handled[0]!.data.notes).toBe('Payment notes');
      // The same state by POST is a duplicate.
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      expect(h.handled).toHaveLength(1);
    });

    it('refuses a GET whose query is unsigned or signed with another secret', async () => {
      h = await harness(framework);
      expect((await getSigned(h, '/callbacks/caibo-gateway', sampleNotification(), { signature: null })).status).toBe(401);
      expect((await getSigned(h, '/callbacks/3ds', sampleNotification(), { secret: 'other' })).status).toBe(401);
      // Signing the body instead of the query does not help: GET has no body.
      const query = formBody(sampleNotification());
      const reordered = `${query.split('&').reverse().join('&')}`;
      const res = await h.http().get(`/callbacks/caibo-gateway?${reordered}`).set('X-Signature', signPayload(query, SECRET));
      expect(res.status).toBe(401);
      expect(rejectedTypes(h)).toEqual(['signature.missing', 'signature.invalid', 'signature.invalid']);
      expect(h.handled).toHaveLength(0);
    });

    it('handles a 3DS result sent by GET', async () => {
      h = await harness(framework);
      const res = await getSigned(h, '/callbacks/3ds', { transactionId: 'tx-1', transStatus: 'Y', eci: '05' });
      expect(res.status).toBe(200);
      expect(h.handled[0]).toMatchObject({ kind: '3ds', transactionId: 'tx-1', authenticated: true });
    });
  });

  describe('test routes', () => {
    it('/test/json reports what it parsed, the signature outcome and the key, without the handler or the store', async () => {
      const store = new CountingStore();
      h = await harness(framework, { store: store as unknown as MemoryStore });
      const res = await post(h, '/callbacks/test/json', '{"id":16772761082427695,"paymentRequestStatusId":1,"transactionId":"265111","transactionStatusId":"1"}', { type: 'json' });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toMatchObject({
        route: '/test/json',
        signature: 'valid',
        secretIndex: 0,
        valid: true,
        key: '16772761082427695:265111:1:1',
        paymentStatus: 'paid',
        transactionStatus: 'approved',
        final: true,
      });
      expect(res.body.fields.id).toBe('16772761082427695');
      expect(h.handled).toHaveLength(0);
      expect(store.calls).toBe(0);
      // Sending it twice is no duplicate: nothing was recorded.
      expect((await post(h, '/callbacks/test/json', '{"id":"1","paymentRequestStatusId":"1"}', { type: 'json' })).body.valid).toBe(true);
      expect(store.calls).toBe(0);
      await store.close();
    });

    it('/test/form reports a missing or invalid signature and an invalid payload with 200', async () => {
      const store = new CountingStore();
      h = await harness(framework, { store: store as unknown as MemoryStore });
      const unsigned = await post(h, '/callbacks/test/form', sampleNotification(), { signature: null });
      expect(unsigned.status).toBe(200);
      expect(unsigned.body).toMatchObject({ signature: 'missing', secretIndex: null, valid: true });
      const badSig = await post(h, '/callbacks/test/form', sampleNotification(), { secret: 'nope' });
      expect(badSig.body).toMatchObject({ signature: 'invalid', valid: true });
      const invalid = await post(h, '/callbacks/test/form', sampleNotification({ id: 'abc' }));
      expect(invalid.status).toBe(200);
      expect(invalid.body).toMatchObject({ signature: 'valid', valid: false, error: { type: 'payload.invalid' } });
      expect(h.handled).toHaveLength(0);
      expect(h.rejected).toHaveLength(0);
      expect(store.calls).toBe(0);
      await store.close();
    });

    it('/test/form and /test/json each take only their own media type', async () => {
      h = await harness(framework);
      expect((await post(h, '/callbacks/test/form', sampleNotification(), { type: 'json' })).status).toBe(415);
      expect((await post(h, '/callbacks/test/json', sampleNotification())).status).toBe(415);
      expect(rejectedTypes(h)).toEqual(['content_type.unsupported', 'content_type.unsupported']);
    });

    it('GET /test/text reports as text/plain', async () => {
      const store = new CountingStore();
      h = await harness(framework, { store: store as unknown as MemoryStore });
      const res = await getSigned(h, '/callbacks/test/text', sampleNotification({ paymentRequestStatusId: '4' }));
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.text).toMatch(/^route: \/test\/text$/m);
      expect(res.text).toMatch(/^signature: valid$/m);
      expect(res.text).toMatch(/^key: 16772761082427695:265111:1:4$/m);
      expect(res.text).toMatch(/^paymentStatus: unknown$/m);
      expect(res.text).toMatch(/^final: false$/m);
      expect(h.handled).toHaveLength(0);
      expect(store.calls).toBe(0);
      await store.close();
    });

    it('are off with testEndpoints: false (they fall through)', async () => {
      h = await harness(framework, { testEndpoints: false });
      expect((await post(h, '/callbacks/test/json', '{"id":"1","paymentRequestStatusId":"1"}', { type: 'json' })).status).toBe(404);
      expect((await post(h, '/callbacks/test/form', sampleNotification())).status).toBe(404);
      expect((await getSigned(h, '/callbacks/test/text', sampleNotification())).status).toBe(404);
      // The real routes still work.
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
    });

    describe('under NODE_ENV=production', () => {
      const saved = process.env.NODE_ENV;
      beforeEach(() => {
        process.env.NODE_ENV = 'production';
      });
      afterEach(() => {
        process.env.NODE_ENV = saved;
      });

      it('are off by default', async () => {
        h = await harness(framework);
        expect((await post(h, '/callbacks/test/form', sampleNotification())).text).toBe('fell through');
        expect((await getSigned(h, '/callbacks/test/text', sampleNotification())).status).toBe(404);
        expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
      });

      it('are on again with testEndpoints: true', async () => {
        h = await harness(framework, { testEndpoints: true });
        const res = await post(h, '/callbacks/test/form', sampleNotification());
        expect(res.status).toBe(200);
        expect(res.body.signature).toBe('valid');
      });
    });
  });
});

/**
 * Exactly-once under load and the fixture Caibo publishes: 20 simultaneous copies of one event,
 * the published example with its 17-digit ids, and secret rotation.
 */
import { PUBLISHED_EXAMPLE_BODY, sampleNotification } from '../../src/testing';
import { FRAMEWORKS, harness, NEXT_SECRET, post, rejectedTypes, SECRET, type Harness } from '../helpers/callbacks';

describe.each(FRAMEWORKS)('delivery under %s', (framework) => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('runs the handler once for 20 simultaneous copies of one event, with no 5xx', async () => {
    h = await harness(framework, {
      // A handler slow enough that the copies overlap it.
      onStatus: () => new Promise((resolve) => setTimeout(resolve, 50)),
    });
    const routes = ['caibo', 'caibo-gateway', 'caibowh', '3ds'];
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(h, `/callbacks/${routes[i % routes.length]}`, sampleNotification(), { type: i % 2 === 0 ? 'form' : 'json' }),
      ),
    );
    const statuses = answers.map((r) => r.status);
    expect(h.handled).toHaveLength(1);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    expect(statuses).toContain(200);
    for (const r of answers.filter((a) => a.status === 409)) expect(r.headers['retry-after']).toBe('5');
    expect(h.rejected.every((r) => r.error.type === 'event.in_flight')).toBe(true);
    expect(h.errors).toEqual([]);
    // Once handled, every redelivery is a plain duplicate.
    const after = await Promise.all(Array.from({ length: 5 }, () => post(h, '/callbacks/caibo', sampleNotification())));
    expect(after.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(h.handled).toHaveLength(1);
  });

  it('delivers the published example byte for byte with exact 17-digit ids', async () => {
    h = await harness(framework);
    const res = await post(h, '/callbacks/caibo', PUBLISHED_EXAMPLE_BODY);
    expect(res.status).toBe(200);
    expect(h.handled).toHaveLength(1);
    const event = h.handled[0]!;
    expect(event).toMatchObject({
      kind: 'payment',
      key: '16772761082427695:265111:1:1',
      paymentRequestId: '16772761082427695',
      merchantId: '16762420400394816',
      transactionId: '265111',
      paymentStatus: 'paid',
      transactionStatus: 'approved',
      final: true,
      grossAmount: '10',
      fee: '0.5',
      netAmount: '9.5',
      currency: 'USD',
      notes: 'Payment notes',
      failure: { message: 'Stolen Card', code: '008' },
      client: { id: '16772748432912191', name: 'Client Name', email: 'client@email.com', phone: '1234567890', memberId: '12345' },
      verified: true,
    });
    expect(event.data.id).toBe('16772761082427695');
    expect(event.data.clientId).toBe('16772748432912191');
  });

  it('takes the published example as JSON with bare-number ids, exactly', async () => {
    h = await harness(framework);
    const fields = sampleNotification();
    const json = JSON.stringify(fields).replace(/"(id|merchantId|clientId|transactionId)":"(\d+)"/g, '"$1":$2');
    expect(json).toContain('"id":16772761082427695');
    expect((await post(h, '/callbacks/caibowh', json, { type: 'json' })).status).toBe(200);
    expect(h.handled[0]).toMatchObject({ paymentRequestId: '16772761082427695', merchantId: '16762420400394816', client: { id: '16772748432912191' } });
    // Same state as the form copy: a duplicate.
    expect((await post(h, '/callbacks/caibo', PUBLISHED_EXAMPLE_BODY)).status).toBe(200);
    expect(h.handled).toHaveLength(1);
  });

  describe('secret rotation', () => {
    it('accepts every listed secret and reports which one matched', async () => {
      h = await harness(framework, { secret: [NEXT_SECRET, SECRET] });
      expect((await post(h, '/callbacks/caibo', sampleNotification({ transactionId: '1' }), { secret: NEXT_SECRET })).status).toBe(200);
      expect((await post(h, '/callbacks/caibo', sampleNotification({ transactionId: '2' }), { secret: SECRET })).status).toBe(200);
      expect(h.handled.map((e) => e.secretIndex)).toEqual([0, 1]);
      expect(h.handled.every((e) => e.verified)).toBe(true);
    });

    it('refuses a retired secret no longer in the list', async () => {
      h = await harness(framework, { secret: [NEXT_SECRET] });
      const res = await post(h, '/callbacks/caibo', sampleNotification(), { secret: SECRET });
      expect(res.status).toBe(401);
      expect(rejectedTypes(h)).toEqual(['signature.invalid']);
      expect(h.handled).toHaveLength(0);
    });
  });
});

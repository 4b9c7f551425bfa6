import { harness, post, type Harness } from '../helpers/callbacks';
import { payment } from './scenario';

describe('Caibo-Callbacks-Outcome header', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('tells handled from duplicate on 200s while the test endpoints are on, and is absent on refusals', async () => {
    h = await harness('express5', { testEndpoints: true });
    const first = await post(h, '/callbacks/caibo', payment(1)).expect(200);
    expect(first.headers['caibo-callbacks-outcome']).toBe('handled');
    const again = await post(h, '/callbacks/caibowh', payment(1)).expect(200);
    expect(again.headers['caibo-callbacks-outcome']).toBe('duplicate');
    const refused = await post(h, '/callbacks/caibo', payment(2), { secret: 'wrong' }).expect(401);
    expect(refused.headers['caibo-callbacks-outcome']).toBeUndefined();
    expect(h.handled).toHaveLength(1);
  });

  it('says failed for a handler failure acknowledged under ackOnError', async () => {
    h = await harness('connect', { testEndpoints: true, ackOnError: true, onStatus: () => Promise.reject(new Error('db down')) });
    const res = await post(h, '/callbacks/caibo', payment(3)).expect(200);
    expect(res.headers['caibo-callbacks-outcome']).toBe('failed');
  });

  it('is not sent when the test endpoints are off (production)', async () => {
    h = await harness('express4', { testEndpoints: false });
    const res = await post(h, '/callbacks/caibo', payment(4)).expect(200);
    expect(res.headers['caibo-callbacks-outcome']).toBeUndefined();
    expect(h.handled).toHaveLength(1);
  });
});

import { CallbackMetrics, LATENCY_BUCKETS_MS, quantile } from '../../src/metrics';
import { CALLBACK_ROUTES, TEST_ROUTES } from '../../src/routes';
import type { Outcome } from '../../src/pipeline';
import { CallbackError } from '../../src/errors';
import { harness, type Harness } from '../helpers/callbacks';
import { EXPECTED, runScenario } from './scenario';

describe('router.metrics()', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('starts at zero with no rates', async () => {
    h = await harness('connect');
    const m = h.router.metrics();
    expect(m).toMatchObject({ received: 0, handled: 0, duplicate: 0, rejected: 0, failed: 0, handlerFailures: 0, storeErrors: 0, reasons: {} });
    expect(m.rates).toEqual({ successRate: null, errorRate: null, retryRate: null, responseTime: { meanMs: null, p50Ms: null, p99Ms: null } });
    expect(Object.keys(m.latency).sort()).toEqual(['/3ds', '/caibo', '/caibo-gateway', '/caibowh']);
  });

  it('counts each outcome and each error type of a run, and derives the four rates', async () => {
    h = await runScenario();
    const m = h.router.metrics();
    expect(m.received).toBe(EXPECTED.received);
    expect(m.handled).toBe(EXPECTED.handled);
    expect(m.duplicate).toBe(EXPECTED.duplicate);
    expect(m.rejected).toBe(EXPECTED.rejected);
    expect(m.failed).toBe(EXPECTED.failed);
    expect(m.handled + m.duplicate + m.rejected + m.failed).toBe(m.received);
    expect(m.reasons).toEqual(EXPECTED.reasons);
    expect(m.handlerFailures).toBe(1);
    expect(m.storeErrors).toBe(2);
    // The handler ran for 10, 11, 12 and 3 (and threw for 1): handled counts the ones that returned.
    expect(h.handled.map((e) => (e.kind === 'payment' ? e.paymentRequestId.slice(-2) : '')).sort()).toEqual(['01', '03', '10', '11', '12']);

    for (const [route, n] of Object.entries(EXPECTED.perRoute)) {
      const hist = m.latency[route]!;
      expect([route, hist.count]).toEqual([route, n]);
      expect(hist.cumulative).toHaveLength(LATENCY_BUCKETS_MS.length + 1);
      expect(hist.cumulative.at(-1)).toBe(n);
      // Cumulative counts never decrease.
      expect(hist.cumulative.every((c, i) => i === 0 || c >= hist.cumulative[i - 1]!)).toBe(true);
      if (n > 0) expect(hist.sumMs).toBeGreaterThan(0);
    }

    expect(m.rates.successRate).toBeCloseTo((4 + 3) / 14, 10);
    expect(m.rates.errorRate).toBeCloseTo((5 + 2) / 14, 10);
    expect(m.rates.retryRate).toBeCloseTo(3 / 14, 10);
    const { meanMs, p50Ms, p99Ms } = m.rates.responseTime;
    expect(meanMs).toBeGreaterThan(0);
    expect(p50Ms).toBeGreaterThan(0);
    expect(p99Ms!).toBeGreaterThanOrEqual(p50Ms!);
  });

  it('returns a copy: later requests do not change an earlier snapshot', async () => {
    h = await runScenario();
    const before = h.router.metrics();
    const copy = JSON.parse(JSON.stringify(before));
    await h.http().get('/callbacks/caibo').expect(405);
    expect(before).toEqual(copy);
    expect(h.router.metrics().received).toBe(before.received + 1);
    expect(h.router.metrics().reasons['method.not_allowed']).toBe(2);
  });
});

describe('CallbackMetrics', () => {
  const caibo = CALLBACK_ROUTES[0]!;
  const outcome = (kind: Outcome['kind'], status = 200, error?: CallbackError): Outcome => ({
    kind,
    status,
    body: '',
    contentType: 'text/plain',
    headers: {},
    ...(error && { error }),
  });

  it('puts each duration in the first bucket whose bound it does not exceed', () => {
    const metrics = new CallbackMetrics();
    for (const ms of [0.2, 1, 1.01, 2.5, 30000, 30001, 99999]) metrics.record(caibo, outcome('handled'), ms);
    const { cumulative, count, sumMs } = metrics.snapshot().latency['/caibo']!;
    expect(count).toBe(7);
    expect(sumMs).toBeCloseTo(0.2 + 1 + 1.01 + 2.5 + 30000 + 30001 + 99999, 6);
    expect(cumulative[0]).toBe(2); // <= 1 ms
    expect(cumulative[1]).toBe(4); // <= 2.5 ms
    expect(cumulative[LATENCY_BUCKETS_MS.length - 1]).toBe(5); // <= 30 s
    expect(cumulative[LATENCY_BUCKETS_MS.length]).toBe(7); // +Inf
  });

  it('ignores the test routes', () => {
    const metrics = new CallbackMetrics();
    metrics.record(TEST_ROUTES[0]!, outcome('test'), 1);
    metrics.record(TEST_ROUTES[0]!, outcome('rejected', 405, new CallbackError('method.not_allowed', 'no')), 1);
    expect(metrics.snapshot().received).toBe(0);
    expect(metrics.snapshot().reasons).toEqual({});
  });

  it('counts a handler failure acknowledged with 200 as failed, and a store failure after the handler as handled', () => {
    const metrics = new CallbackMetrics();
    metrics.record(caibo, outcome('failed', 200, new CallbackError('handler.failed', 'x')), 1);
    metrics.record(caibo, outcome('handled', 200, new CallbackError('store.unavailable', 'x')), 1);
    const m = metrics.snapshot();
    expect(m).toMatchObject({ received: 2, handled: 1, failed: 1, handlerFailures: 1, storeErrors: 1 });
    expect(m.rates.successRate).toBe(0.5);
  });

  it('estimates quantiles by interpolating within the bucket, as histogram_quantile does', () => {
    const counts = new Array(LATENCY_BUCKETS_MS.length + 1).fill(0);
    counts[2] = 10; // ten requests in (2.5 ms, 5 ms]
    expect(quantile(0.5, counts, 10)).toBeCloseTo(3.75, 10);
    expect(quantile(1, counts, 10)).toBeCloseTo(5, 10);
    counts[LATENCY_BUCKETS_MS.length] = 90; // ninety beyond the last bound
    expect(quantile(0.99, counts, 100)).toBe(30000);
    expect(quantile(0.5, counts, 0)).toBeNull();
  });
});

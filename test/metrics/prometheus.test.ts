import { Counter, Registry, type OpenMetricsContentType } from 'prom-client';
import { registerCaiboMetrics } from '../../src/prometheus';
import { LATENCY_BUCKETS_MS } from '../../src/metrics';
import { statusOf, type CallbackErrorType } from '../../src/errors';
import { harness, type Harness } from '../helpers/callbacks';
import { EXPECTED, runScenario } from './scenario';

/** Parses Prometheus text exposition into `name{labels}` → value. */
function scrape(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

describe('caibo-callbacks/prometheus', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('a scrape after a run matches the requests sent, by reason and by route', async () => {
    h = await runScenario();
    const registry = new Registry();
    registerCaiboMetrics(h.router, { registry });
    const text = await registry.metrics();
    const s = scrape(text);

    expect(s.get('caibo_callbacks_received_total')).toBe(EXPECTED.received);
    expect(s.get('caibo_callbacks_handled_total')).toBe(EXPECTED.handled);
    expect(s.get('caibo_callbacks_duplicates_total')).toBe(EXPECTED.duplicate);
    expect(s.get('caibo_callbacks_handler_failures_total')).toBe(1);
    expect(s.get('caibo_callbacks_store_errors_total')).toBe(2);
    for (const [reason, n] of Object.entries(EXPECTED.reasons)) {
      const family = statusOf(reason as CallbackErrorType) >= 500 ? 'errors_total' : 'rejected_total';
      expect([reason, s.get(`caibo_callbacks_${family}{reason="${reason}"}`)]).toEqual([reason, n]);
    }
    const rejectedSeries = [...s.keys()].filter((k) => k.startsWith('caibo_callbacks_rejected_total{'));
    expect(rejectedSeries).toHaveLength(5);
    expect(rejectedSeries.reduce((sum, k) => sum + s.get(k)!, 0)).toBe(EXPECTED.rejected);

    for (const [route, n] of Object.entries(EXPECTED.perRoute)) {
      expect([route, s.get(`caibo_callbacks_request_duration_seconds_count{route="${route}"}`)]).toEqual([route, n]);
      expect(s.get(`caibo_callbacks_request_duration_seconds_bucket{route="${route}",le="+Inf"}`)).toBe(n);
    }
    // Bucket bounds are exported in seconds, and the sum in seconds too.
    expect(s.has(`caibo_callbacks_request_duration_seconds_bucket{route="/caibo",le="0.001"}`)).toBe(true);
    expect(s.has(`caibo_callbacks_request_duration_seconds_bucket{route="/caibo",le="30"}`)).toBe(true);
    const snapshot = h.router.metrics();
    expect(s.get('caibo_callbacks_request_duration_seconds_sum{route="/caibo"}')).toBeCloseTo(snapshot.latency['/caibo']!.sumMs / 1000, 9);
    expect(text).toContain('# TYPE caibo_callbacks_request_duration_seconds histogram');
    expect(text).toContain('# TYPE caibo_callbacks_rejected_total counter');
    expect(LATENCY_BUCKETS_MS).toHaveLength(14);
  });

  it('reads fresh counts on every scrape', async () => {
    h = await harness('express4');
    const registry = new Registry();
    registerCaiboMetrics(h.router, { registry });
    expect(scrape(await registry.metrics()).get('caibo_callbacks_received_total')).toBe(0);
    await h.http().get('/callbacks/caibowh').expect(405);
    const s = scrape(await registry.metrics());
    expect(s.get('caibo_callbacks_received_total')).toBe(1);
    expect(s.get('caibo_callbacks_rejected_total{reason="method.not_allowed"}')).toBe(1);
  });

  it('takes a prefix and constant labels, lives beside prom-client metrics, and unregisters', async () => {
    h = await harness('connect');
    const registry = new Registry();
    const own = new Counter({ name: 'shop_orders_total', help: 'orders', registers: [registry] });
    own.inc(3);
    const unregister = registerCaiboMetrics(h.router, { registry, prefix: 'shop_caibo_', labels: { instance: 'eu-1' } });
    await h.http().get('/callbacks/caibo').expect(405);

    const s = scrape(await registry.metrics());
    expect(s.get('shop_orders_total')).toBe(3);
    expect(s.get('shop_caibo_received_total{instance="eu-1"}')).toBe(1);
    expect(s.get('shop_caibo_rejected_total{instance="eu-1",reason="method.not_allowed"}')).toBe(1);
    expect(s.get('shop_caibo_request_duration_seconds_count{instance="eu-1",route="/caibo"}')).toBe(1);

    const json = await registry.getMetricsAsJSON();
    expect(json.find((m) => m.name === 'shop_caibo_received_total')).toMatchObject({ type: 'counter', values: [{ value: 1 }] });

    // A second router under the same names is a clear error, not a silent overwrite.
    expect(() => registerCaiboMetrics(h.router, { registry, prefix: 'shop_caibo_' })).toThrow(/already been registered/);
    expect(scrape(await registry.metrics()).get('shop_caibo_received_total{instance="eu-1"}')).toBe(1);

    unregister();
    const after = await registry.metrics();
    expect(after).not.toContain('shop_caibo_');
    expect(scrape(after).get('shop_orders_total')).toBe(3);
  });

  it('survives registry.resetMetrics(): the counts belong to the router and keep counting', async () => {
    h = await harness('express5');
    const registry = new Registry();
    registerCaiboMetrics(h.router, { registry });
    await h.http().get('/callbacks/caibo').expect(405);
    registry.resetMetrics();
    expect(scrape(await registry.metrics()).get('caibo_callbacks_received_total')).toBe(1);
  });

  it('serves the OpenMetrics format too', async () => {
    h = await harness('express5');
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    registerCaiboMetrics(h.router, { registry });
    await h.http().get('/callbacks/caibo').expect(405);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE caibo_callbacks_received counter');
    expect(scrape(text).get('caibo_callbacks_received_total')).toBe(1);
    expect(text.trimEnd().endsWith('# EOF')).toBe(true);
  });

  it('refuses a missing router, registry or a bad prefix with a TypeError that says what to pass', async () => {
    h = await harness('express5');
    const registry = new Registry();
    expect(() => registerCaiboMetrics(undefined as never, { registry })).toThrow(/pass the router returned by caiboCallbacks/);
    expect(() => registerCaiboMetrics(h.router, {} as never)).toThrow(/pass \{ registry \}/);
    expect(() => registerCaiboMetrics(h.router, { registry, prefix: 'bad-prefix' })).toThrow(/not a valid Prometheus metric name prefix/);
  });
});

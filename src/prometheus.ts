import type { Metric, Registry } from 'prom-client';
import { statusOf, type CallbackErrorType } from './errors';
import type { MetricsSnapshot } from './metrics';

/**
 * `caibo-callbacks/prometheus`: exposes `router.metrics()` through a prom-client registry.
 *
 * The metrics are collectors that read a fresh snapshot on every scrape, registered with
 * `registry.registerMetric()`. This module never loads prom-client itself (the import above is
 * types only), so there is no second copy of prom-client to disagree with the merchant's, and the
 * request path pays nothing for Prometheus.
 */

/** Anything with the router's `metrics()` method (the router itself). */
export interface MetricsSource {
  metrics(): MetricsSnapshot;
}

/** Options for {@link registerCaiboMetrics}. */
export interface PrometheusOptions {
  /** The prom-client `Registry` to register with (`register`, prom-client's global one, works too). Required. */
  registry: Pick<Registry, 'registerMetric' | 'removeSingleMetric'>;
  /**
   * Prefix of every metric name. Use a different one per router when one process runs several.
   * Defaults to `'caibo_callbacks_'`.
   */
  prefix?: string;
  /** Labels added to every series (say `{ instance: 'eu-1' }`). Defaults to none. */
  labels?: Record<string, string>;
}

type Labels = Record<string, string | number>;
interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}
type MetricKind = 'counter' | 'histogram';

/** A collector in the shape prom-client's registry reads: `get()` on every scrape. */
interface Collector {
  name: string;
  help: string;
  type: MetricKind;
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: MetricKind; aggregator: 'sum'; values: Sample[] }>;
  /** `registry.resetMetrics()` calls this; the counts belong to the router, so there is nothing to reset. */
  reset(): void;
}

function collector(name: string, help: string, type: MetricKind, values: () => Sample[]): Collector {
  const metric: Collector = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name: metric.name, help, type, aggregator: 'sum', values: values() }),
    reset() {},
  };
  return metric;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Registers the router's counters and latency histograms with a prom-client registry:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `<prefix>received_total` | counter | |
 * | `<prefix>handled_total` | counter | |
 * | `<prefix>duplicates_total` | counter | |
 * | `<prefix>rejected_total` | counter | `reason`: each 4xx error type |
 * | `<prefix>errors_total` | counter | `reason`: each 5xx error type |
 * | `<prefix>handler_failures_total` | counter | |
 * | `<prefix>store_errors_total` | counter | |
 * | `<prefix>request_duration_seconds` | histogram | `route` |
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerCaiboMetrics } from 'caibo-callbacks/prometheus';
 * const registry = new Registry();
 * registerCaiboMetrics(router, { registry });
 * app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()));
 * ```
 *
 * Returns a function that removes the metrics from the registry again.
 */
export function registerCaiboMetrics(router: MetricsSource, options: PrometheusOptions): () => void {
  if (router === null || (typeof router !== 'object' && typeof router !== 'function') || typeof router.metrics !== 'function') {
    throw new TypeError('registerCaiboMetrics: pass the router returned by caiboCallbacks(...) as the first argument');
  }
  const { registry, prefix = 'caibo_callbacks_', labels = {} } = options ?? ({} as PrometheusOptions);
  if (registry === undefined || typeof registry.registerMetric !== 'function') {
    throw new TypeError('registerCaiboMetrics: pass { registry }, a prom-client Registry (new Registry(), or prom-client\'s `register`)');
  }
  if (!NAME.test(`${prefix}x`)) throw new TypeError(`registerCaiboMetrics: prefix "${prefix}" is not a valid Prometheus metric name prefix`);

  const one = (value: number): Sample[] => [{ value, labels: { ...labels } }];
  const byReason = (snapshot: MetricsSnapshot, server: boolean): Sample[] =>
    Object.entries(snapshot.reasons)
      .filter(([type]) => statusOf(type as CallbackErrorType) >= 500 === server)
      .map(([reason, value]) => ({ value: value ?? 0, labels: { ...labels, reason } }));

  const histogramName = `${prefix}request_duration_seconds`;
  const metrics: Collector[] = [
    collector(`${prefix}received_total`, 'Callbacks received on the four callback routes.', 'counter', () => one(router.metrics().received)),
    collector(`${prefix}handled_total`, 'New events whose handler ran and returned.', 'counter', () => one(router.metrics().handled)),
    collector(
      `${prefix}duplicates_total`,
      'Deliveries of events already handled (Caibo retries), answered 200 without calling the handler.',
      'counter',
      () => one(router.metrics().duplicate),
    ),
    collector(`${prefix}rejected_total`, 'Callbacks refused with a 4xx, by error type.', 'counter', () => byReason(router.metrics(), false)),
    collector(`${prefix}errors_total`, 'Server-side failures, by error type.', 'counter', () => byReason(router.metrics(), true)),
    collector(`${prefix}handler_failures_total`, 'Times the onStatus handler threw.', 'counter', () => one(router.metrics().handlerFailures)),
    collector(`${prefix}store_errors_total`, 'Times the dedupe store could not be reached.', 'counter', () => one(router.metrics().storeErrors)),
    collector(histogramName, 'Time from request to response, by route.', 'histogram', () => {
      const snapshot = router.metrics();
      const samples: Sample[] = [];
      for (const [route, h] of Object.entries(snapshot.latency)) {
        snapshot.bucketsMs.forEach((ms, i) => {
          samples.push({ metricName: `${histogramName}_bucket`, value: h.cumulative[i]!, labels: { ...labels, route, le: ms / 1000 } });
        });
        samples.push({ metricName: `${histogramName}_bucket`, value: h.count, labels: { ...labels, route, le: '+Inf' } });
        samples.push({ metricName: `${histogramName}_sum`, value: h.sumMs / 1000, labels: { ...labels, route } });
        samples.push({ metricName: `${histogramName}_count`, value: h.count, labels: { ...labels, route } });
      }
      return samples;
    }),
  ];

  const registered: string[] = [];
  try {
    for (const metric of metrics) {
      // prom-client's registry reads any object with name, help, type and get(); its Metric type lists only its own classes.
      registry.registerMetric(metric as unknown as Metric);
      registered.push(metric.name);
    }
  } catch (error) {
    for (const name of registered) registry.removeSingleMetric(name);
    throw error;
  }
  return () => {
    for (const name of registered) registry.removeSingleMetric(name);
  };
}

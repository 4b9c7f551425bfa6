import type { CallbackErrorType } from './errors';
import type { Outcome } from './pipeline';
import { CALLBACK_ROUTES, type RouteSpec } from './routes';

/**
 * In-process counters for the router, read through `router.metrics()`. Recording sits on the
 * request path, so it is a handful of integer additions into storage allocated up front: no
 * per-request objects, no timers, no locks. Only the four callback routes are counted; the
 * diagnostic test routes are not callbacks and are left out.
 */

/**
 * Upper bounds of the latency histogram buckets, in milliseconds. The same bounds as
 * prom-client's defaults (5 ms to 10 s), with 1 ms and 2.5 ms added below (a callback answered
 * from a local store takes about a millisecond) and 30 s above (the longest provider timeout).
 */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]);

/** The latency of one route: a histogram with {@link LATENCY_BUCKETS_MS} bounds. */
export interface RouteLatencySnapshot {
  /** Requests observed on this route. */
  count: number;
  /** Sum of their durations, in ms. */
  sumMs: number;
  /**
   * Cumulative counts, one per bound in `bucketsMs` (requests that took at most that long),
   * then one for `+Inf` (equal to `count`), as in Prometheus.
   */
  cumulative: number[];
}

/** Response time over every route, estimated from the histogram. */
export interface ResponseTimeSnapshot {
  /** Mean duration in ms, or `null` before the first request. */
  meanMs: number | null;
  /** Median, interpolated within its bucket as Prometheus' `histogram_quantile` does; `null` before the first request. */
  p50Ms: number | null;
  /** 99th percentile, interpolated the same way; `null` before the first request. */
  p99Ms: number | null;
}

/**
 * The four figures Caibo's guide asks merchants to monitor, as fractions of `received`
 * (`null` before the first request).
 */
export interface CallbackRates {
  /** (handled + duplicate + queued + stale) / received: callbacks acknowledged (handled, already handled, safely queued, or recognised as stale). */
  successRate: number | null;
  /** (rejected + failed) / received: every callback not acknowledged as done. `successRate + errorRate` is 1. */
  errorRate: number | null;
  /** duplicate / received: deliveries of events already handled, i.e. Caibo's retries. */
  retryRate: number | null;
  /** Response time (mean, p50, p99) over every route. */
  responseTime: ResponseTimeSnapshot;
}

/**
 * What `router.metrics()` returns: counts since the router was created. Each callback is
 * exactly one of `handled`, `duplicate`, `rejected` or `failed`, so they add up to `received`.
 */
export interface MetricsSnapshot {
  /** When counting started (the router's creation), ISO 8601. */
  since: string;
  /** Requests on the four callback routes (the test routes are not counted). */
  received: number;
  /** New events whose handler ran and returned. */
  handled: number;
  /** Deliveries of an event already completed: answered 200 without calling the handler. */
  duplicate: number;
  /** Deferred mode: new events written to the inbox and acknowledged (the worker runs them). */
  queued: number;
  /** Non-final events after a final one (ordering guard): acknowledged, `onStale` instead of the handler. */
  stale: number;
  /** Requests refused with a 4xx (bad signature, IP, payload, in flight, ...). */
  rejected: number;
  /** Server-side failures: every 5xx, and a handler failure acknowledged under `ackOnError`. */
  failed: number;
  /** Times `onStatus` threw (`handler.failed`), whether answered 500 or, with `ackOnError`, 200. */
  handlerFailures: number;
  /**
   * Store failures (`store.unavailable`): a failed claim (answered 503), and a failed
   * `complete()` after the handler ran (answered 200, counted in `handled` too).
   */
  storeErrors: number;
  /** Every error `type` seen, with its count; types never seen are absent. */
  reasons: Partial<Record<CallbackErrorType, number>>;
  /** The bucket upper bounds of every histogram, in ms. */
  bucketsMs: readonly number[];
  /** A latency histogram per route, keyed by route path (`/caibo`, `/caibo-gateway`, `/caibowh`, `/3ds`). */
  latency: Record<string, RouteLatencySnapshot>;
  /** Success, error and retry rates, and response time. */
  rates: CallbackRates;
}

/** One route's histogram: plain counters, written in place. */
class RouteLatency {
  /** Non-cumulative counts; the last slot is `+Inf`. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  count = 0;
  sumMs = 0;

  observe(ms: number): void {
    let i = 0;
    // A linear scan over 14 bounds is faster than a binary search at this size.
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += ms;
  }
}

/** The router's counters. One instance per router; `record` is called once per request. */
export class CallbackMetrics {
  private readonly since = new Date().toISOString();
  private readonly routes = new Map<string, RouteLatency>();
  private received = 0;
  private handled = 0;
  private duplicate = 0;
  private queued = 0;
  private stale = 0;
  private rejected = 0;
  private failed = 0;
  private readonly reasons = new Map<CallbackErrorType, number>();

  constructor(routes: readonly RouteSpec[] = CALLBACK_ROUTES) {
    for (const route of routes) if (route.provider !== null) this.routes.set(route.path, new RouteLatency());
  }

  /** Counts one finished request. Requests on routes it does not count (the test routes) are ignored. */
  record(route: RouteSpec, outcome: Outcome, durationMs: number): void {
    const latency = this.routes.get(route.path);
    if (latency === undefined) return;
    this.received++;
    const kind = outcome.kind;
    if (kind === 'handled') this.handled++;
    else if (kind === 'duplicate') this.duplicate++;
    else if (kind === 'queued') this.queued++;
    else if (kind === 'stale') this.stale++;
    else if (kind === 'rejected') this.rejected++;
    else this.failed++;
    const error = outcome.error;
    if (error !== undefined) this.reasons.set(error.type, (this.reasons.get(error.type) ?? 0) + 1);
    latency.observe(durationMs);
  }

  /** A copy of the counters with the derived rates. */
  snapshot(): MetricsSnapshot {
    const latency: Record<string, RouteLatencySnapshot> = {};
    const total = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
    let count = 0;
    let sumMs = 0;
    for (const [path, h] of this.routes) {
      let running = 0;
      const cumulative = Array.from(h.counts, (n) => (running += n));
      latency[path] = { count: h.count, sumMs: h.sumMs, cumulative };
      for (let i = 0; i < total.length; i++) total[i]! += h.counts[i]!;
      count += h.count;
      sumMs += h.sumMs;
    }
    const received = this.received;
    const rate = (n: number): number | null => (received === 0 ? null : n / received);
    return {
      since: this.since,
      received,
      handled: this.handled,
      duplicate: this.duplicate,
      queued: this.queued,
      stale: this.stale,
      rejected: this.rejected,
      failed: this.failed,
      handlerFailures: this.reasons.get('handler.failed') ?? 0,
      storeErrors: this.reasons.get('store.unavailable') ?? 0,
      reasons: Object.fromEntries(this.reasons),
      bucketsMs: LATENCY_BUCKETS_MS,
      latency,
      rates: {
        successRate: rate(this.handled + this.duplicate + this.queued + this.stale),
        errorRate: rate(this.rejected + this.failed),
        retryRate: rate(this.duplicate),
        responseTime: {
          meanMs: count === 0 ? null : sumMs / count,
          p50Ms: quantile(0.5, total, count),
          p99Ms: quantile(0.99, total, count),
        },
      },
    };
  }
}

/**
 * Estimates a quantile from non-cumulative bucket counts by linear interpolation inside the
 * bucket that holds it, the way Prometheus' `histogram_quantile` does. In the `+Inf` bucket the
 * estimate is the highest finite bound.
 */
export function quantile(q: number, counts: ArrayLike<number>, count: number): number | null {
  if (count === 0) return null;
  const rank = q * count;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i]!;
    if (below + inBucket >= rank && inBucket > 0) {
      if (i === LATENCY_BUCKETS_MS.length) return LATENCY_BUCKETS_MS[i - 1]!;
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_MS[i - 1]!;
      const upper = LATENCY_BUCKETS_MS[i]!;
      return lower + ((upper - lower) * (rank - below)) / inBucket;
    }
    below += inBucket;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]!;
}

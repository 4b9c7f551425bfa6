import type { DeliveryResult } from './deliver';

/** One row of the summary: the requests that ended the same way. */
export interface SummaryRow {
  /** `200 handled`, `200 duplicate`, `401 Unauthorized`, `ERR ECONNREFUSED`, ... */
  result: string;
  status: number;
  count: number;
  p50Ms: number;
  p99Ms: number;
}

/** Everything `send` reports. */
export interface Summary {
  method: string;
  url: string;
  requests: number;
  /** Wall-clock time of the whole run, in ms. */
  elapsedMs: number;
  /** Responses saying the handler ran (`Caibo-Callbacks-Outcome: handled`). */
  handled: number;
  /** Responses saying the event had been handled before. */
  duplicate: number;
  /** 2xx responses that did not say which (the router's outcome header is off in production). */
  unlabelled: number;
  /** Non-2xx responses, network errors, and 200s whose handler failed under `ackOnError`. */
  failed: number;
  /** Counts per HTTP status (`0` for no response). */
  statuses: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  rows: SummaryRow[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1]!;
}

function label(r: DeliveryResult): string {
  if (r.status === 0) return `ERR ${r.detail}`;
  if (r.status >= 200 && r.status < 300) return `${r.status} ${r.outcome ?? r.detail}`;
  return `${r.status} ${r.detail}`;
}

const sortNumbers = (values: number[]): Float64Array => Float64Array.from(values).sort();

/** Groups results by how they ended, with latency percentiles per group and overall. */
export function summarise(method: string, url: string, results: readonly DeliveryResult[], elapsedMs: number): Summary {
  const groups = new Map<string, { status: number; durations: number[] }>();
  const statuses: Record<string, number> = {};
  let handled = 0;
  let duplicate = 0;
  let unlabelled = 0;
  let failed = 0;
  for (const r of results) {
    const key = label(r);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { status: r.status, durations: [] }));
    group.durations.push(r.durationMs);
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const ok = r.status >= 200 && r.status < 300;
    if (!ok || r.outcome === 'failed') failed++;
    else if (r.outcome === 'handled') handled++;
    else if (r.outcome === 'duplicate') duplicate++;
    else unlabelled++;
  }
  const rows = [...groups].map(([result, g]) => {
    const sorted = sortNumbers(g.durations);
    return { result, status: g.status, count: g.durations.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
  });
  const order = (row: SummaryRow): number => ['handled', 'duplicate', 'failed'].indexOf(row.result.slice(4)) >>> 0;
  // By status; among 2xx, handled, duplicate, failed first; then the most frequent.
  rows.sort((a, b) => a.status - b.status || order(a) - order(b) || b.count - a.count);
  const all = sortNumbers(results.map((r) => r.durationMs));
  const sum = all.reduce((s, v) => s + v, 0);
  return {
    method,
    url,
    requests: results.length,
    elapsedMs,
    handled,
    duplicate,
    unlabelled,
    failed,
    statuses,
    latencyMs: { p50: percentile(all, 0.5), p99: percentile(all, 0.99), max: all.length ? all[all.length - 1]! : 0, mean: all.length ? sum / all.length : 0 },
    rows,
  };
}

const ms = (v: number): string => v.toFixed(v < 10 ? 2 : 1);

/** Renders a fixed-width table. */
export function table(head: readonly string[], body: readonly string[][], rightAligned: ReadonlySet<number>): string {
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The summary as a table of results with latencies, and a closing line with the totals. */
export function formatSummary(s: Summary): string {
  const body = s.rows.map((r) => [r.result, String(r.count), ms(r.p50Ms), ms(r.p99Ms)]);
  body.push(['total', String(s.requests), ms(s.latencyMs.p50), ms(s.latencyMs.p99)]);
  const seconds = s.elapsedMs / 1000;
  const rate = seconds > 0 ? Math.round(s.requests / seconds) : s.requests;
  const parts = [`${s.handled} handled`, `${s.duplicate} duplicate`];
  if (s.unlabelled > 0) parts.push(`${s.unlabelled} ok (outcome not reported: the router's test endpoints are off)`);
  parts.push(`${s.failed} failed`);
  return [
    `${s.method} ${s.url}`,
    '',
    table(['result', 'count', 'p50 ms', 'p99 ms'], body, new Set([1, 2, 3])),
    '',
    `${s.requests} requests in ${seconds.toFixed(2)} s (${rate}/s): ${parts.join(', ')}`,
  ].join('\n');
}

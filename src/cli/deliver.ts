import { OUTCOME_HEADER } from '../http/outcome-header';

/** One request to send: its exact body (or query), already signed. */
export interface Delivery {
  url: string;
  method: 'GET' | 'POST';
  body: string | undefined;
  headers: Record<string, string>;
}

/** What came back for one request. */
export interface DeliveryResult {
  /** The HTTP status, or `0` when no response arrived. */
  status: number;
  /** The router's `Caibo-Callbacks-Outcome` header (`handled`, `duplicate`, `failed`), when sent. */
  outcome: string | null;
  /** The response body's first line (short), or the network error's code. */
  detail: string;
  /** From sending the request to reading the whole response, in ms. */
  durationMs: number;
}

const DETAIL_MAX = 60;

/** Sends one request and never throws: a network failure is a result with status 0. */
export async function deliver(delivery: Delivery, timeoutMs: number): Promise<DeliveryResult> {
  const started = performance.now();
  try {
    const res = await fetch(delivery.url, {
      method: delivery.method,
      headers: delivery.headers,
      body: delivery.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    const firstLine = text.split('\n', 1)[0]!.trim();
    return {
      status: res.status,
      outcome: res.headers.get(OUTCOME_HEADER),
      detail: firstLine.length > DETAIL_MAX ? `${firstLine.slice(0, DETAIL_MAX - 1)}…` : firstLine,
      durationMs: performance.now() - started,
    };
  } catch (error) {
    return { status: 0, outcome: null, detail: networkCode(error), durationMs: performance.now() - started };
  }
}

function networkCode(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'timeout';
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/**
 * Runs `count` deliveries with at most `concurrency` in flight, in index order: each worker
 * takes the next index as soon as its previous request finished. `onResult` sees every result.
 */
export async function deliverAll(
  count: number,
  concurrency: number,
  make: (index: number) => Delivery,
  timeoutMs: number,
  onResult: (index: number, result: DeliveryResult) => void,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      onResult(index, await deliver(make(index), timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

import type { BatchDeadline } from './batch';

/** Raised when a store operation does not settle within its `operationTimeoutMs`. */
export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
  /** The operation that timed out: `claim`, `complete`, `release`. */
  readonly operation: string;
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;

  constructor(store: string, operation: string, timeoutMs: number) {
    super(`${store}: ${operation} did not finish within ${timeoutMs} ms`);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Settles with `operation`, or rejects with a {@link StoreTimeoutError} after `timeoutMs`. A hung
 * connection must not hold the request (the router answers 503 and the provider redelivers).
 * `onLate` receives the result of an operation that succeeds after it was abandoned, so a claim
 * that lands late can be released instead of blocking the key for a whole lease.
 */
export function withTimeout<T>(
  operation: Promise<T>,
  timeoutMs: number,
  describe: { store: string; operation: string },
  onLate?: (value: T) => void,
): Promise<T> {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return operation;
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new StoreTimeoutError(describe.store, describe.operation, timeoutMs));
    }, timeoutMs);
    operation.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) onLate?.(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!timedOut) reject(error);
      },
    );
  });
}

/**
 * The deadline a store gives its batcher: each batched operation fails with a
 * {@link StoreTimeoutError} naming it after `timeoutMs`, as an unbatched one does through
 * {@link withTimeout}; `onLate` gets what lands after that.
 */
export function batchDeadline<I, O>(
  store: string,
  timeoutMs: number,
  operation: (item: I) => string,
  onLate?: (item: I, result: O) => void,
): BatchDeadline<I, O> {
  return { timeoutMs, error: (item) => new StoreTimeoutError(store, operation(item), timeoutMs), onLate };
}

/** Validates an `operationTimeoutMs` option (`0` disables the limit). */
export function checkTimeout(store: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${store}: operationTimeoutMs must be a non-negative number of milliseconds (0 disables it), got ${String(value)}`);
  }
  return value;
}

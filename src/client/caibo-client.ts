import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseLosslessJson } from 'lossless-json';
import { CallbackError } from '../errors';
import { statusResponseSchema, type PaymentStatusResponse } from '../core/status';

/** Options for {@link CaiboClient}. */
export interface CaiboClientOptions {
  /** Your Caibo API key (`caibo_test_sk_…` or `caibo_live_sk_…`), sent as `X-API-Key`. Required. */
  apiKey: string;
  /** The API origin. Defaults to `https://apay.caibo.digital`. */
  baseUrl?: string;
  /** How long one attempt may take, in ms. Defaults to `10_000`. */
  timeoutMs?: number;
  /** Retries after the first attempt, on 429, 5xx, timeouts and network errors. Defaults to `3`. */
  maxRetries?: number;
  /** Backoff: the first delay and the cap, in ms (exponential, full jitter). Defaults to `{ initialMs: 500, maxMs: 10_000 }`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** The fetch implementation. Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

const DIGITS = /^\d{1,32}$/;

/**
 * A signal aborted when either is. `AbortSignal.any` arrived in Node 20.3; `engines` allows 20.0,
 * so older 20.x get the same behaviour from a small fallback.
 */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const controller = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

/** fetch's timeout is a DOMException, which is not always `instanceof Error` across realms. */
function isTimeout(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms, or `null`. */
function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (header === null) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * A client for Caibo's status API, the documented backup for callbacks that arrive late or never:
 * `GET {baseUrl}/payment-requests/status/{id}` with `X-API-Key`. Answers are parsed losslessly
 * (17-digit ids stay exact), attempts time out, and 429/5xx are retried with backoff that honours
 * `Retry-After`. Poll periodically, not continuously.
 */
export class CaiboClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: CaiboClientOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('CaiboClient: pass { apiKey, baseUrl?, timeoutMs? }');
    const { apiKey, baseUrl = 'https://apay.caibo.digital', timeoutMs = 10_000, maxRetries = 3, backoff = {} } = options;
    if (typeof apiKey !== 'string' || apiKey.trim() === '') throw new TypeError('CaiboClient: `apiKey` is required (your Caibo API key)');
    if (apiKey.trim() !== apiKey) throw new TypeError('CaiboClient: `apiKey` has leading or trailing whitespace: trim it');
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new TypeError(`CaiboClient: \`baseUrl\` "${baseUrl}" is not a URL`);
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new TypeError('CaiboClient: `timeoutMs` must be a positive integer');
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new TypeError('CaiboClient: `maxRetries` must be a non-negative integer');
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
    this.maxRetries = maxRetries;
    this.initialMs = backoff.initialMs ?? 500;
    this.maxMs = backoff.maxMs ?? 10_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /**
   * Fetches the current state of a payment request. `id` must be the id as a string: as a number
   * a 17-digit id is already corrupted.
   *
   * @throws {CallbackError} `api.unauthorized` (401/403), `api.not_found` (404), `api.rate_limited`
   * (429 after the retries), `api.unavailable` (5xx or network after the retries), `api.timeout`,
   * `api.invalid_response`.
   */
  async getPaymentStatus(id: string, options: { signal?: AbortSignal } = {}): Promise<PaymentStatusResponse> {
    if (typeof id !== 'string' || !DIGITS.test(id)) {
      throw new TypeError('CaiboClient.getPaymentStatus: `id` must be the payment request id as a string of digits (numbers lose precision)');
    }
    const url = `${this.baseUrl}/payment-requests/status/${id}`;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.maxRetries;
      let error: CallbackError;
      let wait: number | null = null;
      try {
        const response = await this.fetchImpl(url, {
          headers: { 'X-API-Key': this.apiKey, Accept: 'application/json' },
          signal: options.signal ? eitherSignal(options.signal, AbortSignal.timeout(this.timeoutMs)) : AbortSignal.timeout(this.timeoutMs),
        });
        const body = await response.text();
        if (response.ok) return this.parse(body, id);
        if (response.status === 401 || response.status === 403) {
          throw new CallbackError('api.unauthorized', `Caibo status API refused the API key (${response.status}); check apiKey and its environment (test or live)`, { expose: true });
        }
        if (response.status === 404) throw new CallbackError('api.not_found', `Payment request ${id} was not found`, { expose: true });
        if (response.status === 429) {
          error = new CallbackError('api.rate_limited', 'Caibo status API rate limit reached', { expose: true });
          wait = retryAfterMs(response.headers.get('retry-after'));
        } else if (response.status >= 500) {
          error = new CallbackError('api.unavailable', `Caibo status API answered ${response.status}`, { expose: true });
          wait = retryAfterMs(response.headers.get('retry-after'));
        } else {
          throw new CallbackError('api.invalid_response', `Caibo status API answered ${response.status}`, { expose: true });
        }
      } catch (caught) {
        if (caught instanceof CallbackError) {
          if (caught.type !== 'api.rate_limited' && caught.type !== 'api.unavailable') throw caught;
          error = caught;
        } else if (options.signal?.aborted) {
          throw caught;
        } else if (isTimeout(caught)) {
          error = new CallbackError('api.timeout', `Caibo status API did not answer within ${this.timeoutMs} ms`, { expose: true, cause: caught });
        } else {
          error = new CallbackError('api.unavailable', 'Caibo status API could not be reached', { expose: true, cause: caught });
        }
      }
      // A Retry-After beyond the backoff cap is honoured by giving up now, not by waiting less.
      if (last || (wait !== null && wait > this.maxMs)) throw error;
      await sleep(wait ?? this.backoffMs(attempt), undefined, options.signal ? { signal: options.signal } : undefined);
    }
  }

  /** Exponential backoff with full jitter, capped. */
  private backoffMs(attempt: number): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** attempt);
    return Math.round(Math.random() * ceiling);
  }

  private parse(body: string, id: string): PaymentStatusResponse {
    let value: unknown;
    try {
      value = parseLosslessJson(body, null, (digits: string) => digits);
    } catch (cause) {
      throw new CallbackError('api.invalid_response', 'Caibo status API answered with invalid JSON', { expose: true, cause });
    }
    const result = statusResponseSchema.safeParse(value);
    if (!result.success) {
      const where = result.error.issues[0]?.path.join('.') || 'body';
      throw new CallbackError('api.invalid_response', `Caibo status API answer has an invalid ${where}`, { expose: true, cause: result.error });
    }
    if (result.data.id !== id) throw new CallbackError('api.invalid_response', 'Caibo status API answered for another payment request', { expose: true });
    return result.data;
  }
}

import bytes from 'bytes';
import type { CallbackError } from './errors';
import type { CaiboEvent, CaiboProvider } from './core/events';
import { prepareSecrets, type PreparedSecret, type SignatureCheck } from './core/signature';
import { compileAllowlist, type IpMatcher } from './security/ip-allowlist';
import { silentLogger, type Logger } from './logger';
import { MemoryStore } from './stores/memory';
import type { CallbackStore } from './stores/types';

/** What the handler and hooks learn about the delivery besides the event. */
export interface CallbackContext {
  /** The route the callback arrived on. */
  provider: CaiboProvider;
  /** The client address the allowlist saw (`req.ip` under Express, else the socket address). */
  clientIp: string | undefined;
}

/** What a hook learns about a request that did not reach the handler, or failed in it. */
export interface RejectionContext {
  /** The route, when the path was one of ours. */
  provider: CaiboProvider | 'test' | undefined;
  /** The path relative to the mount point. */
  path: string;
  /** The client address the allowlist saw. */
  clientIp: string | undefined;
  /** The event, when it had been parsed before the failure. */
  event?: CaiboEvent;
}

/** What a custom signature check receives. */
export interface VerifyInput {
  /** The signed bytes under the default scheme: the raw body, or the raw query string for GET. */
  payload: Buffer;
  /** The raw body (empty for GET). */
  rawBody: Buffer;
  /** The raw query string, without `?`. */
  query: string;
  /** The request headers, lowercased. */
  headers: Record<string, string | string[] | undefined>;
  /** The configured secrets, in order. */
  secrets: readonly string[];
}

/** Per-route overrides, for when Caibo support tells you a route works differently. */
export interface ProviderOptions {
  /**
   * Replaces the signature check: return `true`/`false`, or the index of the secret that matched
   * (`-1` for none). `false` turns the check off for this route: its events arrive with
   * `verified: false`, and you should confirm them with the status API. Defaults to the
   * documented scheme (Base64 HMAC-SHA512 of the raw bytes in `X-Signature`).
   */
  verify?: false | ((input: VerifyInput) => boolean | number);
  /** Replaces the allowlist for this route; `false` allows any address. Defaults to `allowIps`. */
  allowIps?: readonly string[] | false;
}

/** Options for {@link caiboCallbacks}. */
export interface CaiboCallbacksOptions {
  /**
   * The key Caibo signs callbacks with (your API key). A list rotates keys: every listed key is
   * accepted and the event's `secretIndex` says which matched. Required.
   */
  secret: string | readonly string[];
  /**
   * Source addresses allowed to call, as IPs and CIDRs, IPv4 and IPv6 (an IPv4-mapped IPv6
   * address matches its IPv4 rule). Empty or absent allows every address. Defaults to `[]`.
   */
  allowIps?: readonly string[];
  /** Where seen events are recorded. Defaults to a new {@link MemoryStore}. */
  store?: CallbackStore;
  /**
   * Called once per new event, after the store claim; may be async. When it throws, the claim is
   * released and Caibo is answered 500, so its retry runs the handler again. Required.
   */
  onStatus: (event: CaiboEvent, context: CallbackContext) => unknown;
  /** How long a claim holds before another delivery may take over, in ms. Defaults to `30_000`. */
  leaseMs?: number;
  /** How long a completed key is remembered, in ms. Defaults to 30 days. */
  retentionMs?: number;
  /** The largest body read, in bytes or as a string such as `'100kb'`. Defaults to `'100kb'`. */
  limit?: number | string;
  /** When set, payment events whose `merchantId` differs are refused with 403. Defaults to no check. */
  merchantId?: string;
  /** Serve `/test/json`, `/test/form` and `/test/text`. Defaults to `process.env.NODE_ENV !== 'production'`. */
  testEndpoints?: boolean;
  /** Answer 200 even when the handler throws (the claim is still released). Defaults to `false`. */
  ackOnError?: boolean;
  /** The `Retry-After` value, in seconds, on 409 and 503 answers. Defaults to `5`. */
  retryAfterSeconds?: number;
  /** Per-route overrides of the signature check and allowlist. Defaults to none. */
  providers?: Partial<Record<CaiboProvider, ProviderOptions>>;
  /** Called for server-side failures (handler threw, store failed, misconfiguration). */
  onError?: (error: CallbackError, context: RejectionContext) => void;
  /** Called for every 4xx refusal (bad signature, bad IP, bad payload, in flight). */
  onRejected?: (error: CallbackError, context: RejectionContext) => void;
  /** Called when a completed event is delivered again (the handler is not called). */
  onDuplicate?: (event: CaiboEvent, context: CallbackContext) => void;
  /** A pino-shaped logger (`info`/`warn`/`error`); `console` works too. Defaults to silent. */
  logger?: Logger;
}

/** A route's resolved signature and allowlist policy. */
export interface ProviderPolicy {
  /** `default`: the documented HMAC scheme; `off`: not checked (events are unverified); else a custom check. */
  verify: 'default' | 'off' | ((input: VerifyInput) => SignatureCheck);
  allowlist: IpMatcher;
}

/** The options, validated and compiled once at start-up. */
export interface Config {
  secrets: readonly string[];
  preparedSecrets: readonly PreparedSecret[];
  store: CallbackStore;
  onStatus: CaiboCallbacksOptions['onStatus'];
  leaseMs: number;
  retentionMs: number;
  limit: number;
  merchantId: string | undefined;
  testEndpoints: boolean;
  ackOnError: boolean;
  retryAfter: string;
  /** The default policy, used by the test routes and any route without overrides. */
  defaultPolicy: ProviderPolicy;
  providers: Record<CaiboProvider, ProviderPolicy>;
  onError: CaiboCallbacksOptions['onError'];
  onRejected: CaiboCallbacksOptions['onRejected'];
  onDuplicate: CaiboCallbacksOptions['onDuplicate'];
  logger: Logger;
}

const PROVIDERS: readonly CaiboProvider[] = ['caibo', 'caibo-gateway', 'caibowh', '3ds'];
const DAY = 24 * 60 * 60 * 1000;

function fail(message: string): never {
  throw new TypeError(`caiboCallbacks: ${message}`);
}

function checkSecrets(secret: unknown): string[] {
  const list = typeof secret === 'string' ? [secret] : Array.isArray(secret) ? [...(secret as unknown[])] : undefined;
  if (list === undefined || list.length === 0) {
    fail('`secret` is required: pass your Caibo API key (or a list of keys while rotating)');
  }
  return list.map((s, i) => {
    const where = list.length > 1 ? `secret[${i}]` : '`secret`';
    if (typeof s !== 'string') fail(`${where} must be a string`);
    if (s.trim() === '') fail(`${where} is blank: check that the environment variable holding it is set`);
    if (s.trim() !== s) fail(`${where} has leading or trailing whitespace: trim it, or signatures will never match`);
    return s;
  });
}

function checkPositiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(`\`${name}\` must be a positive integer (milliseconds)`);
  return value;
}

function checkStore(store: unknown): CallbackStore {
  if (store === undefined) return new MemoryStore();
  const s = store as Partial<CallbackStore> | null;
  for (const method of ['claim', 'complete', 'release'] as const) {
    if (s === null || typeof s !== 'object' || typeof s[method] !== 'function') {
      fail(`\`store\` must implement claim(), complete() and release(); it has no ${method}(). Did you pass the class instead of an instance (new MemoryStore())?`);
    }
  }
  return s as CallbackStore;
}

function checkHook<T>(name: string, hook: T): T {
  if (hook !== undefined && typeof hook !== 'function') fail(`\`${name}\` must be a function`);
  return hook;
}

function checkLogger(logger: unknown): Logger {
  if (logger === undefined) return silentLogger;
  const l = logger as Partial<Logger> | null;
  if (l === null || typeof l !== 'object' || ['info', 'warn', 'error'].some((m) => typeof l[m as keyof Logger] !== 'function')) {
    fail('`logger` must have info(), warn() and error() methods (pino and console both do)');
  }
  return l as Logger;
}

function customVerify(fn: (input: VerifyInput) => boolean | number, secrets: number): (input: VerifyInput) => SignatureCheck {
  return (input) => {
    const result = fn(input);
    if (result === true) return { ok: true, secretIndex: 0 };
    if (typeof result === 'number' && Number.isInteger(result) && result >= 0 && result < secrets) return { ok: true, secretIndex: result };
    return { ok: false, reason: input.headers['x-signature'] === undefined ? 'missing' : 'invalid' };
  };
}

/** Validates the options and compiles them into a {@link Config}, throwing fix-it `TypeError`s. */
export function resolveOptions(options: CaiboCallbacksOptions): Config {
  if (options === null || typeof options !== 'object') {
    fail('call it with an options object: caiboCallbacks({ secret, allowIps, onStatus })');
  }
  const secrets = checkSecrets(options.secret);
  if (typeof options.onStatus !== 'function') fail('`onStatus` is required: the function called once per new event');
  if (options.allowIps !== undefined && !Array.isArray(options.allowIps)) fail('`allowIps` must be a list of IPs and CIDRs');

  let limit: number;
  const rawLimit = options.limit ?? '100kb';
  const parsedLimit = typeof rawLimit === 'number' ? rawLimit : bytes.parse(rawLimit);
  if (typeof parsedLimit !== 'number' || !Number.isFinite(parsedLimit) || parsedLimit <= 0) {
    fail('`limit` must be a positive number of bytes or a size such as "100kb"');
  } else {
    limit = Math.floor(parsedLimit);
  }
  if (options.merchantId !== undefined && (typeof options.merchantId !== 'string' || !/^\d{1,32}$/.test(options.merchantId))) {
    fail('`merchantId` must be your merchant id as a string of digits (ids lose precision as numbers)');
  }
  const retryAfter = options.retryAfterSeconds ?? 5;
  if (!Number.isInteger(retryAfter) || retryAfter < 0) fail('`retryAfterSeconds` must be a non-negative integer');

  const defaultAllowlist = compileAllowlist(options.allowIps);
  const prepared = prepareSecrets(secrets);
  const defaultPolicy: ProviderPolicy = { verify: 'default', allowlist: defaultAllowlist };
  const providers = {} as Record<CaiboProvider, ProviderPolicy>;
  const overrides = options.providers ?? {};
  for (const name of Object.keys(overrides)) {
    if (!PROVIDERS.includes(name as CaiboProvider)) fail(`\`providers.${name}\` is not a route; use one of ${PROVIDERS.join(', ')}`);
  }
  for (const name of PROVIDERS) {
    const o = overrides[name] ?? {};
    if (o.verify !== undefined && o.verify !== false && typeof o.verify !== 'function') {
      fail(`\`providers.${name}.verify\` must be a function or false`);
    }
    if (o.allowIps !== undefined && o.allowIps !== false && !Array.isArray(o.allowIps)) {
      fail(`\`providers.${name}.allowIps\` must be a list of IPs and CIDRs, or false`);
    }
    providers[name] = {
      verify: o.verify === undefined ? 'default' : o.verify === false ? 'off' : customVerify(o.verify, secrets.length),
      allowlist: o.allowIps === undefined ? defaultAllowlist : compileAllowlist(o.allowIps === false ? [] : o.allowIps),
    };
  }

  return {
    secrets,
    preparedSecrets: prepared,
    store: checkStore(options.store),
    onStatus: options.onStatus,
    leaseMs: checkPositiveInt('leaseMs', options.leaseMs, 30_000),
    retentionMs: checkPositiveInt('retentionMs', options.retentionMs, 30 * DAY),
    limit: limit!,
    merchantId: options.merchantId,
    testEndpoints: options.testEndpoints ?? process.env.NODE_ENV !== 'production',
    ackOnError: options.ackOnError ?? false,
    retryAfter: String(retryAfter),
    defaultPolicy,
    providers,
    onError: checkHook('onError', options.onError),
    onRejected: checkHook('onRejected', options.onRejected),
    onDuplicate: checkHook('onDuplicate', options.onDuplicate),
    logger: checkLogger(options.logger),
  };
}

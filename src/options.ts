import bytes from 'bytes';
import type { CallbackError } from './errors';
import type { CaiboEvent, CaiboProvider, CaiboRoute } from './core/events';
import { prepareSecrets, type PreparedSecret, type SignatureCheck } from './core/signature';
import { compileAllowlist, type IpMatcher } from './security/ip-allowlist';
import { silentLogger, type Logger } from './logger';
import { compileRateLimit, type RateLimitCheck, type RateLimitOptions } from './security/rate-limit';
import { redactingLogger } from './security/redact';
import { createWarner, type Warner } from './security/warnings';
import { MemoryStore } from './stores/memory';
import type { CallbackStore, InboxStore, PaymentState, PaymentStateStore } from './stores/types';
import { storeOps, type StoreOps } from './stores/ops';
import { CaiboClient } from './client/caibo-client';
import { createCodec, type PayloadCodec } from './deferred/codec';

/** What the handler and hooks learn about the delivery besides the event. */
export interface CallbackContext {
  /** The route the callback arrived on (`status-api` for reconciliation). */
  provider: CaiboProvider;
  /** The client address the allowlist saw (`req.ip` under Express, else the socket address). */
  clientIp: string | undefined;
  /**
   * Aborted when the handler's time budget (`handlerTimeoutMs`) runs out: pass it to the slow
   * calls you make so they stop; the router has then answered 503 and Caibo will retry.
   */
  signal?: AbortSignal;
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
  providers?: Partial<Record<CaiboRoute, ProviderOptions>>;
  /** Called for server-side failures (handler threw, store failed, misconfiguration). */
  onError?: (error: CallbackError, context: RejectionContext) => void;
  /** Called for every 4xx refusal (bad signature, bad IP, bad payload, in flight). */
  onRejected?: (error: CallbackError, context: RejectionContext) => void;
  /** Called when a completed event is delivered again (the handler is not called). */
  onDuplicate?: (event: CaiboEvent, context: CallbackContext) => void;
  /**
   * A pino-shaped logger (`info`/`warn`/`error`); `console` works too. Secrets and card-like
   * numbers are scrubbed from messages it receives. Defaults to silent (misconfiguration
   * warnings then go to `process.emitWarning`).
   */
  logger?: Logger;
  /**
   * How long the whole body may take to arrive, in ms; a client that sends headers and stalls is
   * answered 408 `request.timeout` and disconnected. Defaults to `10_000`.
   */
  bodyTimeoutMs?: number;
  /**
   * Refuses floods with 429 `rate.limited` before any body is read, per client address (the
   * address `allowIps` sees). Takes express-rate-limit options (`windowMs`, `limit`, `store` to
   * share counts across instances, `keyGenerator`, `ipv6Subnet`, `skip`...); `{}` uses
   * `{ windowMs: 60_000, limit: 600 }`. Defaults to off.
   */
  rateLimit?: RateLimitOptions | false;
  /**
   * Refuses requests that did not arrive over HTTPS with 403 `https.required`. Under Express,
   * `X-Forwarded-Proto` counts through the app's `trust proxy` setting (`req.protocol`);
   * elsewhere only a TLS socket counts. Defaults to `false`.
   */
  requireHttps?: boolean;
  /**
   * The handler's time budget in inline mode, in ms; kept below Caibo's shortest timeout (10 s)
   * so Caibo never gives up first. On expiry `context.signal` is aborted and Caibo is answered
   * 503 with `Retry-After`; when the handler settles, its key is completed (it succeeded) or
   * released (it failed), so the retry is answered as a duplicate or runs it again — never lost,
   * never doubled. Defaults to `8_000`.
   */
  handlerTimeoutMs?: number;
  /**
   * The ordering guard: per payment request the store keeps the last final state (`paid`,
   * `cancelled`); a later non-final state (`unpaid`, a pending transaction) is acknowledged but
   * not delivered — `onStale` is called instead. Defaults to `true`.
   */
  orderingGuard?: boolean;
  /** Called instead of `onStatus` for a non-final event that arrives after a final one. */
  onStale?: (event: CaiboEvent, current: PaymentState) => void;
  /**
   * A status-API client. Enables `router.reconcile(ids)` and `reconcileEvery`. Defaults to none.
   */
  client?: CaiboClient;
  /**
   * With `client`: every `reconcileEvery` ms, payment requests whose last event seen by this
   * process was not final (and older than the interval) are looked up with the status API and
   * their state passes through the same dedupe, guard and handler. Defaults to off.
   */
  reconcileEvery?: number;
  /**
   * `inline`: the handler runs before the answer (200 once it returned). `deferred`: the verified
   * event is written to the store's durable inbox before the 200, and a worker in this process
   * runs the handler with retries (`maxAttempts`, `backoff`); needs a store with the inbox
   * methods (all built-in stores; the memory store's inbox is not durable). Defaults to `'inline'`.
   */
  mode?: 'inline' | 'deferred';
  /** Deferred mode: handler runs before an event is dead. Defaults to `8`. */
  maxAttempts?: number;
  /** Deferred mode: retry delays, exponential with jitter. Defaults to `{ initialMs: 1_000, maxMs: 300_000 }`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Deferred mode: called when an event exhausted its attempts (`router.replay(key)` runs it again). */
  onDead?: (event: CaiboEvent, error: CallbackError) => void;
  /** Deferred mode: handler runs at once in this process. Defaults to `4`. */
  concurrency?: number;
  /** Deferred mode: how often the worker looks for due events (retries, other processes' expired leases), in ms. Defaults to `1_000`. */
  pollIntervalMs?: number;
  /**
   * Encrypts inbox payloads (deferred mode) with AES-256-GCM. `keys` are 32-byte keys as Buffers,
   * base64 or hex: the first encrypts, every listed key decrypts (rotate by prepending a new key).
   * Defaults to no encryption.
   */
  encryption?: { keys: readonly (string | Uint8Array)[] };
  /**
   * `drop` removes the payer fields (`clientName`, `clientEmail`, `clientPhone`, `clientMemberId`,
   * `notes`) before an event is stored; inline handlers still receive them. Defaults to `'keep'`.
   */
  payerData?: 'keep' | 'drop';
}

/** The resolved deferred-mode settings. */
export interface DeferredConfig {
  inbox: InboxStore;
  maxAttempts: number;
  backoff: { initialMs: number; maxMs: number };
  onDead: CaiboCallbacksOptions['onDead'];
  concurrency: number;
  pollIntervalMs: number;
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
  providers: Record<CaiboRoute, ProviderPolicy>;
  onError: CaiboCallbacksOptions['onError'];
  onRejected: CaiboCallbacksOptions['onRejected'];
  onDuplicate: CaiboCallbacksOptions['onDuplicate'];
  logger: Logger;
  /** Misconfiguration warnings, each reported once. */
  warner: Warner;
  bodyTimeoutMs: number;
  /** The compiled limiter, or `null` when `rateLimit` is off. */
  rateLimit: RateLimitCheck | null;
  requireHttps: boolean;
  handlerTimeoutMs: number;
  orderingGuard: boolean;
  /** Where the ordering guard keeps final states: the store when it can, else this process's memory. */
  paymentStates: PaymentStateStore;
  /** The calls the pipeline makes on `store` and `paymentStates` (synchronous for the memory store). */
  ops: StoreOps;
  onStale: CaiboCallbacksOptions['onStale'];
  client: CaiboClient | undefined;
  reconcileEvery: number | undefined;
  /** Deferred-mode settings, or `null` in inline mode. */
  deferred: DeferredConfig | null;
  /** Writes and reads inbox payloads (encryption, payer-data minimisation). */
  codec: PayloadCodec;
}

const PROVIDERS: readonly CaiboRoute[] = ['caibo', 'caibo-gateway', 'caibowh', '3ds'];
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

function hasPaymentStates(store: CallbackStore): store is CallbackStore & PaymentStateStore {
  const s = store as Partial<PaymentStateStore>;
  return typeof s.getPaymentState === 'function' && typeof s.setPaymentState === 'function';
}

function paymentStatesOf(store: CallbackStore, guard: boolean, warner: Warner): PaymentStateStore {
  if (hasPaymentStates(store)) return store;
  if (guard) {
    warner.warn(
      'ERR_CAIBO_LOCAL_ORDERING_GUARD',
      'The store has no getPaymentState/setPaymentState, so the ordering guard keeps final states in this process only (not shared, lost on restart). Use a built-in store, or implement them.',
    );
  }
  return new MemoryStore({ maxEntries: 100_000 });
}

function isInbox(store: CallbackStore): store is CallbackStore & InboxStore {
  const s = store as Partial<InboxStore>;
  return ['enqueue', 'lease', 'ack', 'fail', 'list', 'replay'].every((m) => typeof s[m as keyof InboxStore] === 'function');
}

function checkDeferred(options: CaiboCallbacksOptions, store: CallbackStore, warner: Warner): DeferredConfig | null {
  const mode = options.mode ?? 'inline';
  if (mode !== 'inline' && mode !== 'deferred') fail("`mode` must be 'inline' or 'deferred'");
  const backoff = options.backoff ?? {};
  const settings = {
    maxAttempts: checkPositiveInt('maxAttempts', options.maxAttempts, 8),
    backoff: {
      initialMs: checkPositiveInt('backoff.initialMs', backoff.initialMs, 1_000),
      maxMs: checkPositiveInt('backoff.maxMs', backoff.maxMs, 300_000),
    },
    onDead: checkHook('onDead', options.onDead),
    concurrency: checkPositiveInt('concurrency', options.concurrency, 4),
    pollIntervalMs: checkPositiveInt('pollIntervalMs', options.pollIntervalMs, 1_000),
  };
  if (mode === 'inline') return null;
  if (!isInbox(store)) {
    fail("`mode: 'deferred'` needs a store with an inbox (enqueue, lease, ack, fail, list, replay): use SqliteStore, RedisStore or PostgresStore");
  }
  if (!store.durable) {
    warner.warn(
      'ERR_CAIBO_INBOX_NOT_DURABLE',
      "mode: 'deferred' on a store whose inbox is not durable (the memory store): events acknowledged but not yet handled are lost if the process dies. Use SqliteStore, RedisStore or PostgresStore.",
    );
  }
  return { ...settings, inbox: store };
}

function checkCodec(options: CaiboCallbacksOptions): PayloadCodec {
  const { encryption, payerData = 'keep' } = options;
  if (payerData !== 'keep' && payerData !== 'drop') fail("`payerData` must be 'keep' or 'drop'");
  if (encryption !== undefined && (encryption === null || !Array.isArray(encryption.keys) || encryption.keys.length === 0)) {
    fail('`encryption.keys` must be a non-empty list of 32-byte keys (Buffer, base64 or hex)');
  }
  return createCodec({ keys: encryption?.keys ?? null, dropPayerData: payerData === 'drop' });
}

function checkClient(client: unknown): CaiboClient | undefined {
  if (client === undefined) return undefined;
  if (!(client instanceof CaiboClient)) fail('`client` must be a CaiboClient: new CaiboClient({ apiKey })');
  return client;
}

function checkReconcileEvery(options: CaiboCallbacksOptions): number | undefined {
  if (options.reconcileEvery === undefined) return undefined;
  if (options.client === undefined) fail('`reconcileEvery` needs `client`: new CaiboClient({ apiKey })');
  return checkPositiveInt('reconcileEvery', options.reconcileEvery, 0);
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

/**
 * express-rate-limit reports its own misconfigurations (`ERR_ERL_*`) through a logger: they go
 * out once each like our own warnings; anything else goes to our logger.
 */
function fromRateLimit(warner: Warner, logger: Logger, level: 'warn' | 'error', error: unknown, message?: string): void {
  const code = (error as { code?: unknown } | null)?.code;
  const text = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && code.startsWith('ERR_ERL_')) warner.warn(code as `ERR_ERL_${string}`, text);
  else logger[level]({ err: { name: error instanceof Error ? error.name : 'Error', message: text } }, message ?? 'express-rate-limit');
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
  if (options.requireHttps !== undefined && typeof options.requireHttps !== 'boolean') fail('`requireHttps` must be true or false');
  // Without a logger nothing is logged, so nothing needs scrubbing: the silent logger is used as is
  // (the router skips building log lines for it).
  const logger = options.logger === undefined ? silentLogger : redactingLogger(checkLogger(options.logger), secrets);
  const store = checkStore(options.store);
  const warner = createWarner(options.logger === undefined ? undefined : logger);
  const paymentStates = paymentStatesOf(store, options.orderingGuard ?? true, warner);
  const rateLimitLogger = {
    warn: (error: unknown, message?: string) => fromRateLimit(warner, logger, 'warn', error, message),
    error: (error: unknown, message?: string) => fromRateLimit(warner, logger, 'error', error, message),
  };
  const retryAfter = options.retryAfterSeconds ?? 5;
  if (!Number.isInteger(retryAfter) || retryAfter < 0) fail('`retryAfterSeconds` must be a non-negative integer');

  const defaultAllowlist = compileAllowlist(options.allowIps);
  const prepared = prepareSecrets(secrets);
  const defaultPolicy: ProviderPolicy = { verify: 'default', allowlist: defaultAllowlist };
  const providers = {} as Record<CaiboRoute, ProviderPolicy>;
  const overrides = options.providers ?? {};
  for (const name of Object.keys(overrides)) {
    if (!PROVIDERS.includes(name as CaiboRoute)) fail(`\`providers.${name}\` is not a route; use one of ${PROVIDERS.join(', ')}`);
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
    store,
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
    logger,
    warner,
    bodyTimeoutMs: checkPositiveInt('bodyTimeoutMs', options.bodyTimeoutMs, 10_000),
    rateLimit: compileRateLimit(options.rateLimit, rateLimitLogger),
    requireHttps: options.requireHttps ?? false,
    handlerTimeoutMs: checkPositiveInt('handlerTimeoutMs', options.handlerTimeoutMs, 8_000),
    orderingGuard: options.orderingGuard ?? true,
    paymentStates,
    ops: storeOps(store, paymentStates),
    onStale: checkHook('onStale', options.onStale),
    client: checkClient(options.client),
    reconcileEvery: checkReconcileEvery(options),
    deferred: checkDeferred(options, store, warner),
    codec: checkCodec(options),
  };
}

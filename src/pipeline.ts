import contentType from 'content-type';
import { CallbackError } from './errors';
import type { CaiboEvent, CaiboPaymentEvent } from './core/events';
import { parseBody, parseForm, type BodyFormat, type Fields } from './core/fields';
import { normaliseNotification, parseNotification, type ReceiptInfo } from './core/notification';
import { isThreeDSResult, normaliseThreeDS } from './core/three-ds';
import { verifySignature, type SignatureCheck } from './core/signature';
import type { CallbackContext, Config, ProviderPolicy, RejectionContext } from './options';
import type { RouteSpec } from './routes';
import type { ClaimResult, InboxStore, PaymentState } from './stores/types';
import { isThenable, type MaybePromise } from './stores/ops';

/**
 * The framework-free request pipeline. The adapter calls {@link checkMethod} and
 * {@link checkSource} before reading anything, {@link bodyFormat} before reading the body, then
 * {@link processRequest} with the raw bytes.
 */

/** The small view of a request the pipeline needs. */
export interface RequestView {
  method: string;
  route: RouteSpec;
  /** The path as requested, relative to the mount point. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The raw body exactly as received (empty for GET). */
  rawBody: Buffer;
  /** The raw query string after `?`, or `''`. */
  query: string;
  /** The body format {@link bodyFormat} chose (ignored for GET). */
  format: BodyFormat | null;
  clientIp: string | undefined;
  receivedAt: Date;
}

/** How a request ended, for the response, the hooks, the logger and metrics. */
export type OutcomeKind = 'handled' | 'queued' | 'duplicate' | 'stale' | 'rejected' | 'failed' | 'test';

/** What the adapter writes back. */
export interface Outcome {
  kind: OutcomeKind;
  status: number;
  body: string;
  contentType: string;
  headers: Record<string, string>;
  event?: CaiboEvent;
  error?: CallbackError;
}

/** The content type of every plain-text answer. */
export const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

/** The policy (signature scheme, allowlist) for a route. */
export function policyFor(config: Config, route: RouteSpec): ProviderPolicy {
  return route.provider === null ? config.defaultPolicy : config.providers[route.provider];
}

/** The first cheap check: is the method served on this route? */
export function checkMethod(route: RouteSpec, method: string): CallbackError | null {
  if (!(route.methods as readonly string[]).includes(method)) {
    return new CallbackError('method.not_allowed', `${method} is not served on ${route.path}`, {
      headers: { Allow: route.methods.join(', ') },
    });
  }
  return null;
}

/** The source-address check, made before anything is read. */
export function checkSource(config: Config, route: RouteSpec, clientIp: string | undefined): CallbackError | null {
  if (!policyFor(config, route).allowlist.match(clientIp)) {
    return new CallbackError('ip.forbidden', `Source address ${clientIp ?? '(unknown)'} is not in allowIps`);
  }
  return null;
}

const FORMAT_OF: Record<string, BodyFormat> = {
  'application/x-www-form-urlencoded': 'form',
  'application/json': 'json',
};
const UTF8 = new Set(['utf-8', 'utf8', 'us-ascii']);

/**
 * Chooses how the body will be parsed from its headers, before it is read. Unsupported media
 * types, charsets and content encodings are refused here: compressed bodies are refused rather
 * than inflated, so no decompression bomb is ever expanded.
 */
export function bodyFormat(route: RouteSpec, headers: RequestView['headers'], method: string): BodyFormat | null | CallbackError {
  if (method === 'GET') return null;
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && String(encoding).trim().toLowerCase() !== 'identity') {
    return new CallbackError('encoding.unsupported', 'Content-Encoding is not supported; send the body uncompressed', { expose: true });
  }
  const header = headers['content-type'];
  let parsed: contentType.ParsedMediaType;
  try {
    if (typeof header !== 'string') throw new Error('no content type');
    parsed = parseContentType(header);
  } catch {
    return new CallbackError('content_type.unsupported', `Content-Type must be one of: ${accepted(route)}`, { expose: true });
  }
  const format = FORMAT_OF[parsed.type];
  if (format === undefined || !route.accepts.includes(format)) {
    return new CallbackError('content_type.unsupported', `Content-Type must be one of: ${accepted(route)}`, { expose: true });
  }
  const charset = parsed.parameters.charset?.toLowerCase();
  if (charset !== undefined && !UTF8.has(charset)) {
    return new CallbackError('charset.unsupported', 'Only the utf-8 charset is supported', { expose: true });
  }
  return format;
}

/** The last Content-Type header parsed, with its parse: Caibo sends the same one every time. */
let lastContentType: { header: string; parsed: contentType.ParsedMediaType } | undefined;

/** `contentType.parse`, remembered for the last header (its result is only read). Throws as it does. */
function parseContentType(header: string): contentType.ParsedMediaType {
  if (lastContentType !== undefined && lastContentType.header === header) return lastContentType.parsed;
  const parsed = contentType.parse(header);
  lastContentType = { header, parsed };
  return parsed;
}

function accepted(route: RouteSpec): string {
  return route.accepts.map((f) => (f === 'json' ? 'application/json' : 'application/x-www-form-urlencoded')).join(', ');
}

function headerValue(headers: RequestView['headers'], name: string): string | string[] | undefined {
  return headers[name];
}

/** Runs the route's signature policy over the signed bytes. `null` means the route is not checked. */
function checkSignature(config: Config, policy: ProviderPolicy, view: RequestView, payload: Buffer): SignatureCheck | null {
  if (policy.verify === 'off') return null;
  if (policy.verify === 'default') return verifySignature(payload, headerValue(view.headers, 'x-signature'), config.preparedSecrets);
  return policy.verify({ payload, rawBody: view.rawBody, query: view.query, headers: view.headers, secrets: config.secrets });
}

function signatureError(check: SignatureCheck & { ok: false }): CallbackError {
  return check.reason === 'missing'
    ? new CallbackError('signature.missing', 'No X-Signature header')
    : new CallbackError('signature.invalid', 'X-Signature does not match the raw body under any configured secret');
}

/** Parses the fields and builds the event; throws `payload.*` errors. */
function toEvent(route: RouteSpec, fields: Fields, info: ReceiptInfo): CaiboEvent {
  if (route.provider === '3ds' && isThreeDSResult(fields)) return normaliseThreeDS(fields, info);
  return normaliseNotification(parseNotification(fields), fields, info);
}

function readFields(view: RequestView): Fields {
  if (view.method === 'GET') return parseForm(view.query);
  return parseBody(view.rawBody, view.format ?? 'form');
}

/** An outcome for a refusal or failure. */
export function errorOutcome(error: CallbackError, event?: CaiboEvent): Outcome {
  const kind: OutcomeKind = error.status < 500 ? 'rejected' : 'failed';
  return { kind, status: error.status, body: error.publicMessage, contentType: TEXT, headers: error.headers, error, ...(event && { event }) };
}

function ok(kind: OutcomeKind, event: CaiboEvent): Outcome {
  return { kind, status: 200, body: 'OK', contentType: TEXT, headers: {}, event };
}

/** Calls a merchant hook without letting it break the response. */
function safely(config: Config, name: string, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    config.logger.error({ hook: name, err: describe(error) }, `caibo-callbacks: ${name} hook threw`);
  }
}

/** An error's name and message only: never its properties, which may carry request data. */
export function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: 'Error', message: String(error) };
}

/** Reports an outcome's error through `onRejected` or `onError`. */
export function report(config: Config, outcome: Outcome, context: RejectionContext): void {
  const error = outcome.error;
  if (error === undefined) return;
  if (error.status < 500) {
    if (config.onRejected) safely(config, 'onRejected', () => config.onRejected!(error, context));
  } else if (config.onError) {
    safely(config, 'onError', () => config.onError!(error, context));
  }
}

/** The diagnostic answer of a test route: what was parsed, the signature outcome, the dedupe key. */
function testReport(config: Config, view: RequestView): Outcome {
  const policy = config.defaultPolicy;
  const payload = view.method === 'GET' ? Buffer.from(view.query, 'latin1') : view.rawBody;
  const sent = headerValue(view.headers, 'x-signature') !== undefined;
  const check = sent ? checkSignature(config, policy, view, payload) : null;
  const signature = !sent ? 'missing' : check === null || check.ok ? 'valid' : 'invalid';
  const report: Record<string, unknown> = {
    route: view.path,
    signature,
    secretIndex: check && check.ok ? check.secretIndex : null,
  };
  try {
    const fields = readFields(view);
    report.fields = { ...fields };
    const event = toEvent({ ...view.route, provider: 'caibo' }, fields, {
      provider: 'caibo',
      verified: signature === 'valid',
      secretIndex: check && check.ok ? check.secretIndex : null,
      receivedAt: view.receivedAt,
    });
    report.valid = true;
    report.key = event.key;
    if (event.kind === 'payment') {
      report.paymentStatus = event.paymentStatus;
      report.transactionStatus = event.transactionStatus;
      report.final = event.final;
    }
  } catch (error) {
    if (!(error instanceof CallbackError)) throw error;
    report.valid = false;
    report.error = { type: error.type, message: error.publicMessage };
  }
  if (view.route.report === 'text') {
    const lines = Object.entries(report).map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
    return { kind: 'test', status: 200, body: `${lines.join('\n')}\n`, contentType: TEXT, headers: {} };
  }
  return { kind: 'test', status: 200, body: JSON.stringify(report), contentType: JSON_TYPE, headers: {} };
}

/**
 * Verifies, parses and dedupes one request, and runs the handler for a new event. Never throws:
 * every failure becomes an {@link Outcome} with the status from the Responses table.
 */
export function processRequest(config: Config, view: RequestView): MaybePromise<Outcome> {
  if (view.route.report !== undefined) return testReport(config, view);
  const provider = view.route.provider!;
  const policy = config.providers[provider];

  // The signature is checked over the raw bytes before anything is parsed.
  const payload = view.method === 'GET' ? Buffer.from(view.query, 'latin1') : view.rawBody;
  const check = checkSignature(config, policy, view, payload);
  if (check !== null && !check.ok) return errorOutcome(signatureError(check));

  let event: CaiboEvent;
  try {
    event = toEvent(view.route, readFields(view), {
      provider,
      verified: check !== null,
      secretIndex: check === null ? null : check.secretIndex,
      receivedAt: view.receivedAt,
    });
  } catch (error) {
    if (error instanceof CallbackError) return errorOutcome(error);
    throw error;
  }

  if (config.merchantId !== undefined && event.kind === 'payment' && event.merchantId !== config.merchantId) {
    return errorOutcome(new CallbackError('merchant.mismatch', 'merchantId does not match the configured merchant'), event);
  }

  return deliver(config, event, { provider, clientIp: view.clientIp });
}

/**
 * Hands a verified event to the handler path of the configured mode: run it now (inline) or
 * write it to the inbox for the worker (deferred). Callbacks and status-API polls both come
 * through here, so they share one dedupe.
 */
export function deliver(config: Config, event: CaiboEvent, context: CallbackContext): MaybePromise<Outcome> {
  return config.deferred === null ? runOnce(config, event, context) : enqueue(config, config.deferred.inbox, event, context);
}

/**
 * Deferred mode: the event is written to the durable inbox before the 200; the worker runs the
 * handler. A store failure answers 503 so Caibo retries: nothing is acknowledged unrecorded.
 */
async function enqueue(config: Config, inbox: InboxStore, event: CaiboEvent, context: CallbackContext): Promise<Outcome> {
  let result;
  try {
    result = await inbox.enqueue(event.key, config.codec.encode(event), { retentionMs: config.retentionMs });
  } catch (cause) {
    return errorOutcome(unavailable(config, cause), event);
  }
  if (result === 'duplicate') {
    if (config.onDuplicate) safely(config, 'onDuplicate', () => config.onDuplicate!(event, context));
    return ok('duplicate', event);
  }
  return ok('queued', event);
}

/**
 * Runs `step`, then `next` with its value: at once when the value is not a promise (the memory
 * store's path, which then allocates no promise), else when it resolves. A throw or rejection of
 * `step` goes to `onError`; `next` handles its own failures.
 */
function andThen<T, U>(step: () => MaybePromise<T>, next: (value: T) => MaybePromise<U>, onError: (error: unknown) => MaybePromise<U>): MaybePromise<U> {
  let value: MaybePromise<T>;
  try {
    value = step();
  } catch (error) {
    return onError(error);
  }
  return isThenable(value) ? Promise.resolve(value).then(next, onError) : next(value);
}

/**
 * The exactly-once core: claim the key, run the handler, complete the key. A crash or a throw
 * never marks an event done; a failed claim never runs the handler.
 */
export function runOnce(config: Config, event: CaiboEvent, context: CallbackContext): MaybePromise<Outcome> {
  return andThen(
    () => config.ops.claim(event.key, { leaseMs: config.leaseMs }),
    (claim) => afterClaim(config, event, context, claim),
    (cause) => errorOutcome(unavailable(config, cause), event),
  );
}

function afterClaim(config: Config, event: CaiboEvent, context: CallbackContext, claim: ClaimResult): MaybePromise<Outcome> {
  if (claim.status === 'done') {
    if (config.onDuplicate) safely(config, 'onDuplicate', () => config.onDuplicate!(event, context));
    return ok('duplicate', event);
  }
  if (claim.status === 'in_flight') {
    return errorOutcome(
      new CallbackError('event.in_flight', 'The first copy of this event is still being handled', {
        headers: { 'Retry-After': config.retryAfter },
        expose: true,
      }),
      event,
    );
  }
  const token = claim.token;
  return andThen(
    () => staleAgainst(config, event),
    (stale) => {
      if (stale === null) return runHandler(config, event, context, token);
      // Acknowledged, recorded as done (a redelivery is a duplicate), but not delivered as a regression.
      if (config.onStale) safely(config, 'onStale', () => config.onStale!(event, stale));
      return complete(config, event, token, ok('stale', event));
    },
    (cause) => releaseQuietly(config, event.key, token).then(() => errorOutcome(unavailable(config, cause), event)),
  );
}

/**
 * What the handler sees besides the event. The signal is made on first use: most handlers never
 * read it, and an AbortController per request showed in the profile. One made after the budget
 * ran out starts aborted.
 */
class HandlerContext implements CallbackContext {
  readonly provider: CallbackContext['provider'];
  readonly clientIp: string | undefined;
  // Truly private: a handler that spreads or logs its context sees provider and clientIp only.
  #controller: AbortController | undefined;
  #timedOut: CallbackError | undefined;

  constructor(context: CallbackContext) {
    this.provider = context.provider;
    this.clientIp = context.clientIp;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#timedOut !== undefined) this.#controller.abort(this.#timedOut);
    }
    return this.#controller.signal;
  }

  /** The budget ran out: abort the signal, now or when it is first read. */
  timeOut(reason: CallbackError): void {
    this.#timedOut = reason;
    this.#controller?.abort(reason);
  }
}

/** Calls the handler; a handler that returns without a promise has finished: no time budget to arm. */
function runHandler(config: Config, event: CaiboEvent, context: CallbackContext, token: string): MaybePromise<Outcome> {
  const handlerContext = new HandlerContext(context);
  let returned: unknown;
  try {
    returned = config.onStatus(event, handlerContext);
  } catch (error) {
    return handlerFailed(config, event, token, error);
  }
  if (!isThenable(returned)) return complete(config, event, token, ok('handled', event));
  return awaitHandler(config, event, context, token, handlerContext, returned);
}

/** An async handler, within its time budget (`handlerTimeoutMs`). */
async function awaitHandler(
  config: Config,
  event: CaiboEvent,
  context: CallbackContext,
  token: string,
  handlerContext: HandlerContext,
  returned: PromiseLike<unknown>,
): Promise<Outcome> {
  const handlerRun = settled(returned);
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), config.handlerTimeoutMs);
    // The budget alone must not keep the process alive; the request and handler do that.
    timer.unref();
  });
  const first = await Promise.race([handlerRun, budget]);
  clearTimeout(timer);

  if (first === 'timeout') {
    handlerContext.timeOut(new CallbackError('handler.timeout', `onStatus did not finish within ${config.handlerTimeoutMs} ms`));
    // The lease still holds: a retry meanwhile gets 409. When the handler settles, its key is
    // completed or released, so the next retry is a duplicate or runs it again.
    void handlerRun.then(async (result) => {
      if (result !== 'ok') return releaseQuietly(config, event.key, token);
      const late = await complete(config, event, token, ok('handled', event));
      if (late.error) report(config, late, { provider: context.provider, path: '', clientIp: context.clientIp, event });
    });
    return errorOutcome(
      new CallbackError('handler.timeout', `onStatus did not finish within ${config.handlerTimeoutMs} ms; Caibo will retry`, {
        headers: { 'Retry-After': config.retryAfter },
      }),
      event,
    );
  }
  if (first !== 'ok') return handlerFailed(config, event, token, first.error);
  return complete(config, event, token, ok('handled', event));
}

/** The handler threw or rejected: release the claim so the next delivery runs it again. */
async function handlerFailed(config: Config, event: CaiboEvent, token: string, cause: unknown): Promise<Outcome> {
  await releaseQuietly(config, event.key, token);
  const error = new CallbackError('handler.failed', 'onStatus threw; the claim was released so the next delivery runs it again', { cause });
  if (config.ackOnError) {
    const outcome = ok('failed', event);
    outcome.error = error;
    return outcome;
  }
  return errorOutcome(error, event);
}

/** The handler's outcome as a value, so a late settle never becomes an unhandled rejection. */
async function settled(run: PromiseLike<unknown>): Promise<'ok' | { error: unknown }> {
  try {
    await run;
    return 'ok';
  } catch (error) {
    return { error };
  }
}

/**
 * The ordering guard: for a non-final payment event, the last final state of its payment
 * request, if one was recorded (the event is then stale); `null` otherwise.
 */
export function staleAgainst(config: Config, event: CaiboEvent): MaybePromise<PaymentState | null> {
  if (!config.orderingGuard || event.kind !== 'payment' || event.final) return null;
  const current = config.ops.getPaymentState(event.paymentRequestId);
  const check = (state: PaymentState | null): PaymentState | null => (state !== null && state.key !== event.key ? state : null);
  return isThenable(current) ? Promise.resolve(current).then(check) : check(current);
}

/**
 * Marks the key done and, for a final payment state, records it for the ordering guard. The
 * handler has run by now: a store failure here must not turn into an error answer (Caibo would
 * redeliver and, once the lease expires, run it twice), so the outcome stays 200 and the
 * failure is reported.
 */
function complete(config: Config, event: CaiboEvent, token: string, outcome: Outcome): MaybePromise<Outcome> {
  const failed = (cause: unknown): Outcome => {
    outcome.error = unavailable(config, cause);
    return outcome;
  };
  const opts = { retentionMs: config.retentionMs };
  return andThen(
    // A handled final state is recorded with the key in one step where the store can.
    () =>
      outcome.kind === 'handled' && recordsFinalState(config, event)
        ? config.ops.completeWithState(event.key, token, event.paymentRequestId, finalState(event), opts)
        : config.ops.complete(event.key, token, opts),
    () => outcome,
    failed,
  );
}

/** Whether the ordering guard records this event's state once it is handled. */
function recordsFinalState(config: Config, event: CaiboEvent): event is CaiboPaymentEvent {
  return config.orderingGuard && event.kind === 'payment' && event.final;
}

function finalState(event: CaiboPaymentEvent): PaymentState {
  return { key: event.key, paymentStatus: event.paymentStatus, transactionStatus: event.transactionStatus, receivedAt: event.receivedAt };
}

/** Records a handled final payment state for the ordering guard (both modes). */
export function rememberFinalState(config: Config, event: CaiboEvent): MaybePromise<void> {
  if (!recordsFinalState(config, event)) return;
  return config.ops.setPaymentState(event.paymentRequestId, finalState(event), { retentionMs: config.retentionMs });
}

async function releaseQuietly(config: Config, key: string, token: string): Promise<void> {
  try {
    await config.ops.release(key, token);
  } catch (releaseError) {
    config.logger.error({ key, err: describe(releaseError) }, 'caibo-callbacks: could not release the claim; the lease will expire instead');
  }
}

function unavailable(config: Config, cause: unknown): CallbackError {
  return new CallbackError('store.unavailable', 'The store could not be reached', {
    cause,
    headers: { 'Retry-After': config.retryAfter },
  });
}

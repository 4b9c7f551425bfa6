import type { IncomingMessage, ServerResponse } from 'node:http';
import { CallbackError } from '../errors';
import { resolveOptions, type CaiboCallbacksOptions, type Config, type RejectionContext } from '../options';
import { bodyFormat, checkMethod, checkSource, describe, errorOutcome, processRequest, report, type Outcome } from '../pipeline';
import { routeTable, type RouteSpec } from '../routes';
import { reconcile, ReconcileScheduler, type ReconcileResult } from '../reconcile';
import { DeferredWorker, type DeferredEntry } from '../deferred/worker';
import { CallbackMetrics, type MetricsSnapshot } from '../metrics';
import { markOutcome } from './outcome-header';
import { isHttps } from '../security/https';
import { redactText } from '../security/redact';
import { ProbedApps, requestWarnings, startupWarnings } from '../security/warnings';
import type { CaiboEvent } from '../core/events';
import { clientIp } from './client-ip';
import { InFlight } from './in-flight';
import { readBody, type MaybeParsedRequest } from './read-body';
import { AnswerQueue } from './answers';
import { silentLogger } from '../logger';
import { isThenable } from '../stores/ops';

/** The `next` callback of Connect and Express. */
export type NextFunction = (error?: unknown) => void;

/**
 * The router: a `(req, res, next)` middleware for Express 4, Express 5, Connect or plain
 * `node:http`, carrying its operational methods.
 */
export interface CaiboCallbacksRouter {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /**
   * Graceful shutdown: stops taking new work (later requests answer 503, so Caibo retries them
   * elsewhere or later), waits up to `timeoutMs` (default 10 s) for requests in flight, stops the
   * reconcile timer and closes the store (if it has `close`).
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Looks payment requests up with the status API (`client` option) and passes each state through
   * the same dedupe, ordering guard and handler as callbacks.
   */
  reconcile(ids: readonly string[]): Promise<ReconcileResult[]>;
  /** Deferred mode: events acknowledged and not yet handled (pending or running), oldest first. */
  pending(limit?: number): Promise<DeferredEntry[]>;
  /** Deferred mode: events that exhausted `maxAttempts`. */
  dead(limit?: number): Promise<DeferredEntry[]>;
  /** Deferred mode: runs a dead event again (attempts reset). Resolves `false` if `key` is not dead. */
  replay(key: string): Promise<boolean>;
  /**
   * Counts since the router was created: received, handled, duplicate, rejected and failed
   * callbacks, each error `type`, a latency histogram per route, and the success, error and
   * retry rates and response time Caibo's guide asks merchants to monitor.
   */
  metrics(): MetricsSnapshot;
}

function looksLikeRequest(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'headers' in value && 'method' in value && 'socket' in value;
}


/**
 * Creates the router that turns Caibo callbacks into exactly-once calls of `onStatus`.
 *
 * ```ts
 * app.use('/callbacks', caiboCallbacks({ secret, allowIps, store, onStatus }));
 * ```
 *
 * Mount it before any global body parser (or keep `req.rawBody` with the parser's `verify`
 * hook): the signature covers the raw bytes.
 */
export function caiboCallbacks(options: CaiboCallbacksOptions): CaiboCallbacksRouter {
  if (looksLikeRequest(options)) {
    // app.use(caiboCallbacks) without the call: Express calls us with (req, res, next).
    // eslint-disable-next-line prefer-rest-params -- the public signature takes one argument; a misuse passes three
    const next = arguments[2] as NextFunction | undefined;
    const error = new TypeError(
      'caiboCallbacks was mounted without being called: use app.use("/callbacks", caiboCallbacks({ secret, allowIps, onStatus }))',
    );
    if (typeof next === 'function') next(error);
    else throw error;
    return undefined as unknown as CaiboCallbacksRouter;
  }
  const config = resolveOptions(options);
  const routes = routeTable(config.testEndpoints);
  startupWarnings(config.warner, {
    allowAll: Object.values(config.providers).some((p) => p.allowlist === config.defaultPolicy.allowlist && p.allowlist.allowAll),
    production: process.env.NODE_ENV === 'production',
  });
  const probedApps = new ProbedApps();
  let closed = false;
  const inflight = new InFlight();
  const scheduler = config.reconcileEvery === undefined ? undefined : new ReconcileScheduler(config, config.reconcileEvery);
  const worker = config.deferred === null ? undefined : new DeferredWorker(config, config.deferred);
  const metrics = new CallbackMetrics();
  const answers = new AnswerQueue((error) => {
    try {
      config.logger.error({ err: describe(error) }, 'caibo-callbacks: an answer could not be written; the connection was closed');
    } catch {
      // The logger failed too: the connection is closed already, nothing else to do.
    }
  });
  let initFailed = false;
  const startInit = (): Promise<void> | undefined => {
    const attempt = config.store.init?.();
    // An init failure surfaces on each request as store.unavailable, not as an unhandled rejection.
    attempt?.catch(() => {
      initFailed = true;
    });
    return attempt;
  };
  let ready: Promise<void> | undefined = startInit();
  /** The store's init; after a failure (the store was down at start) the next request tries again. */
  const whenReady = (): Promise<void> | undefined => {
    if (initFailed) {
      initFailed = false;
      ready = startInit();
    }
    return ready;
  };
  const runtime: Runtime = { config, metrics, answers, scheduler, worker, isClosed: () => closed, whenReady };
  // The worker's first poll picks up what a previous process left: expired leases, due retries.
  if (worker !== undefined) void Promise.resolve(ready).then(() => worker.start(), () => worker.start());

  const router = function caiboCallbacksRouter(req: IncomingMessage, res: ServerResponse, next?: NextFunction): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    const route = routes.get(path);
    if (route === undefined) {
      if (next) next();
      else {
        res.statusCode = 404;
        res.end('Not Found');
      }
      return;
    }
    requestWarnings(config.warner, req as Parameters<typeof requestWarnings>[1], probedApps);
    inflight.start();
    handle(runtime, route, path, query, req, res).then(inflight.end, (error: unknown) => {
      inflight.end();
      // The pipeline turns failures into outcomes: this is reached by a bug, or by the app's logger
      // throwing while an answer is logged. It answers 500 (unless one was sent), never a hang.
      // The answer is queued first: the logger may be what failed, and a throw here would be an
      // unhandled rejection, which ends the process.
      answers.push(res, errorOutcome(new CallbackError('handler.failed', 'Unexpected failure', { cause: error })));
      try {
        config.logger.error({ err: describe(error) }, 'caibo-callbacks: unexpected failure');
      } catch {
        // Nothing left to tell it with.
      }
    });
  } as CaiboCallbacksRouter;

  router.close = async ({ timeoutMs = 10_000 } = {}) => {
    closed = true;
    await scheduler?.close();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    // Idle means every answer is made; drained, that each is written (they go out once per turn).
    await Promise.race([Promise.allSettled([inflight.idle().then(() => answers.drained()), worker?.close()]), deadline]);
    clearTimeout(timer);
    worker?.abortAll();
    await config.store.close?.();
  };
  router.reconcile = async (ids) => {
    if (closed) throw new CallbackError('store.unavailable', 'The router is closed');
    const results = await reconcile(config, ids);
    for (const result of results) scheduler?.observe(result.event);
    if (results.some((r) => r.outcome === 'queued')) worker?.kick();
    return results;
  };
  const deferredOnly = (name: string): never => {
    throw new TypeError(`router.${name}() is for mode: 'deferred'`);
  };
  router.pending = async (limit) => (worker ?? deferredOnly('pending')).pending(limit);
  router.dead = async (limit) => (worker ?? deferredOnly('dead')).dead(limit);
  router.replay = async (key) => (worker ?? deferredOnly('replay')).replay(key);
  router.metrics = () => metrics.snapshot();
  return router;
}

/** What one router shares with each request it handles. */
interface Runtime {
  config: Config;
  metrics: CallbackMetrics;
  /** Where answers wait for the end of the turn. */
  answers: AnswerQueue;
  scheduler: ReconcileScheduler | undefined;
  worker: DeferredWorker | undefined;
  isClosed: () => boolean;
  /** The store's `init()`, retried after a failure. */
  whenReady: () => Promise<void> | undefined;
}

/** One request, as {@link finish} and {@link refuse} need it: one object, no closures per request. */
interface Exchange {
  runtime: Runtime;
  route: RouteSpec;
  path: string;
  req: IncomingMessage;
  res: ServerResponse;
  clientIp: string | undefined;
  started: number;
}

/** Queues the answer (written at the end of this turn), then tells the hooks, the metrics and the logger. */
function finish(x: Exchange, outcome: Outcome): void {
  const { config, metrics, answers, scheduler, worker } = x.runtime;
  if (config.testEndpoints) markOutcome(x.res, outcome);
  answers.push(x.res, outcome);
  if (outcome.status === 200) scheduler?.observe(outcome.event);
  if (outcome.kind === 'queued') worker?.kick();
  if (outcome.error !== undefined) {
    const context: RejectionContext = { provider: x.route.provider ?? 'test', path: x.path, clientIp: x.clientIp };
    if (outcome.event) context.event = outcome.event;
    report(config, outcome, context);
  }
  const durationMs = performance.now() - x.started;
  metrics.record(x.route, outcome, durationMs);
  if (config.logger !== silentLogger) log(config, x.route, outcome, durationMs);
}

/** Refused before the body is read: a body still coming is drained while the connection closes. */
function refuse(x: Exchange, error: CallbackError): void {
  if (hasBody(x.req)) x.res.setHeader('Connection', 'close');
  x.req.resume();
  finish(x, errorOutcome(error));
}

async function handle(runtime: Runtime, route: RouteSpec, path: string, query: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { config } = runtime;
  const method = req.method ?? 'GET';
  const ip = clientIp(req);
  const x: Exchange = { runtime, route, path, req, res, clientIp: ip, started: performance.now() };

  // Cheap refusals first, in the design's order: method, HTTPS, rate limit, source IP.
  const wrongMethod = checkMethod(route, method);
  if (wrongMethod !== null) return refuse(x, wrongMethod);
  if (config.requireHttps && !isHttps(req)) {
    return refuse(x, new CallbackError('https.required', 'Callbacks must arrive over HTTPS'));
  }
  if (config.rateLimit !== null) {
    const verdict = await config.rateLimit(req, res);
    if (verdict.kind === 'limited') return refuse(x, new CallbackError('rate.limited', `Too many requests from ${ip ?? '(unknown)'}`));
    if (verdict.kind === 'error') {
      return refuse(
        x,
        new CallbackError('store.unavailable', 'The rate-limit store failed', {
          cause: verdict.error,
          headers: { 'Retry-After': config.retryAfter },
        }),
      );
    }
  }
  const wrongSource = checkSource(config, route, ip);
  if (wrongSource !== null) return refuse(x, wrongSource);
  if (runtime.isClosed()) {
    return finish(
      x,
      errorOutcome(new CallbackError('store.unavailable', 'The router is closed', { headers: { 'Retry-After': config.retryAfter } })),
    );
  }

  const format = bodyFormat(route, req.headers, method);
  if (format instanceof CallbackError) return refuse(x, format);

  let rawBody: Buffer;
  try {
    if (method === 'GET') rawBody = Buffer.alloc(0);
    else {
      // node:http emits `request` when the headers are parsed and pushes the body that came in the
      // same packet right after: one yield, and a callback's body is usually all buffered, which
      // readBody then takes without listeners.
      await undefined;
      const body = readBody(req as MaybeParsedRequest, config.limit, config.bodyTimeoutMs);
      rawBody = Buffer.isBuffer(body) ? body : await body;
    }
  } catch (error) {
    const failure = error instanceof CallbackError ? error : new CallbackError('request.aborted', 'Body read failed', { cause: error });
    // Stop reading a body we will not use; an oversized or stalled one is not awaited, the connection closes.
    if (failure.type === 'entity.too.large' || failure.type === 'request.timeout') res.setHeader('Connection', 'close');
    req.resume();
    return finish(x, errorOutcome(failure));
  }

  const ready = runtime.whenReady();
  if (ready !== undefined) {
    try {
      await ready;
    } catch (cause) {
      return finish(
        x,
        errorOutcome(new CallbackError('store.unavailable', 'The store failed to initialise', { cause, headers: { 'Retry-After': config.retryAfter } })),
      );
    }
  }

  const result = processRequest(config, {
    method,
    route,
    path,
    headers: req.headers,
    rawBody,
    query,
    format,
    clientIp: ip,
    receivedAt: new Date(),
  });
  // The memory store and a synchronous handler answer at once: no promise to wait for.
  finish(x, isThenable(result) ? await result : result);
}

/** Whether a request announces a body (one we may not have read). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The payer values of an event, for scrubbing from text we did not write. */
function payerValues(event: CaiboEvent | undefined): string[] {
  if (event === undefined) return [];
  const data = event.data;
  return [data.clientName, data.clientEmail, data.clientPhone, data.clientId, data.clientMemberId].filter(
    (v): v is string => typeof v === 'string',
  );
}

/** One line per attempt, with no secret, signature or payer data: ids and status codes only. */
function log(config: Config, route: RouteSpec, outcome: Outcome, durationMs: number): void {
  const fields: Record<string, unknown> = {
    route: route.path,
    outcome: outcome.kind,
    status: outcome.status,
    durationMs: Math.round(durationMs * 100) / 100,
  };
  if (outcome.event) {
    fields.key = outcome.event.key;
    fields.secretIndex = outcome.event.secretIndex;
  }
  if (outcome.error) fields.errorType = outcome.error.type;
  // A 200 can carry a 5xx error: the handler ran but the store did not record it, so the key stays
  // leased and redeliveries get 409 until the lease ends. An operator must see that.
  const unrecorded = outcome.status < 500 && outcome.error !== undefined && outcome.error.status >= 500;
  if (outcome.status >= 500 || outcome.kind === 'failed' || unrecorded) {
    if (outcome.error) {
      // A handler's or driver's own message may quote the event: scrub its payer data.
      const err = describe(outcome.error.cause ?? outcome.error);
      fields.err = { name: err.name, message: redactText(err.message, payerValues(outcome.event)) };
    }
    config.logger.error(fields, unrecorded ? 'caibo callback answered 200, but the store did not record its completion' : 'caibo callback failed');
  } else if (outcome.status >= 400) {
    config.logger.warn(fields, 'caibo callback refused');
  } else {
    config.logger.info(fields, 'caibo callback');
  }
}

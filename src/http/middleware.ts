import type { IncomingMessage, ServerResponse } from 'node:http';
import { CallbackError } from '../errors';
import { resolveOptions, type CaiboCallbacksOptions, type Config, type RejectionContext } from '../options';
import { admit, bodyFormat, describe, errorOutcome, processRequest, report, type Outcome } from '../pipeline';
import { routeTable, type RouteSpec } from '../routes';
import { clientIp } from './client-ip';
import { readBody, type MaybeParsedRequest } from './read-body';
import { respond } from './respond';

/** The `next` callback of Connect and Express. */
export type NextFunction = (error?: unknown) => void;

/**
 * The router: a `(req, res, next)` middleware for Express 4, Express 5, Connect or plain
 * `node:http`, carrying its operational methods.
 */
export interface CaiboCallbacksRouter {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /** Closes the store (if it has `close`) and stops taking requests: later requests answer 503. */
  close(): Promise<void>;
}

function looksLikeRequest(value: unknown): boolean {
  return value !== null && typeof value === 'object' && 'headers' in value && 'method' in value && 'socket' in value;
}

function splitUrl(url: string): [path: string, query: string] {
  const q = url.indexOf('?');
  return q === -1 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
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
  let closed = false;
  const ready: Promise<void> | undefined = config.store.init?.();
  // An init failure surfaces on each request as store.unavailable, not as an unhandled rejection.
  ready?.catch(() => undefined);

  const router = function caiboCallbacksRouter(req: IncomingMessage, res: ServerResponse, next?: NextFunction): void {
    const [path, query] = splitUrl(req.url ?? '/');
    const route = routes.get(path);
    if (route === undefined) {
      if (next) next();
      else {
        res.statusCode = 404;
        res.end('Not Found');
      }
      return;
    }
    handle(config, route, path, query, req, res, () => closed, ready).catch((error: unknown) => {
      // Unreachable by design (the pipeline turns failures into outcomes); kept so a bug answers 500, not a hang.
      config.logger.error({ err: describe(error) }, 'caibo-callbacks: unexpected failure');
      respond(res, errorOutcome(new CallbackError('handler.failed', 'Unexpected failure', { cause: error })));
    });
  } as CaiboCallbacksRouter;

  router.close = async () => {
    closed = true;
    await config.store.close?.();
  };
  return router;
}

async function handle(
  config: Config,
  route: RouteSpec,
  path: string,
  query: string,
  req: IncomingMessage,
  res: ServerResponse,
  isClosed: () => boolean,
  ready: Promise<void> | undefined,
): Promise<void> {
  const started = performance.now();
  const method = req.method ?? 'GET';
  const ip = clientIp(req);
  const context: RejectionContext = { provider: route.provider ?? 'test', path, clientIp: ip };

  const finish = (outcome: Outcome): void => {
    respond(res, outcome);
    report(config, outcome, outcome.event ? { ...context, event: outcome.event } : context);
    log(config, route, outcome, performance.now() - started);
  };

  const refused = admit(config, route, method, ip);
  if (refused !== null) return finish(errorOutcome(refused));
  if (isClosed()) {
    return finish(
      errorOutcome(new CallbackError('store.unavailable', 'The router is closed', { headers: { 'Retry-After': config.retryAfter } })),
    );
  }

  const format = bodyFormat(route, req.headers, method);
  if (format instanceof CallbackError) {
    req.resume();
    return finish(errorOutcome(format));
  }

  let rawBody: Buffer;
  try {
    rawBody = method === 'GET' ? Buffer.alloc(0) : await readBody(req as MaybeParsedRequest, config.limit);
  } catch (error) {
    const failure = error instanceof CallbackError ? error : new CallbackError('request.aborted', 'Body read failed', { cause: error });
    // Stop reading a body we will not use; an oversized one is not drained, the connection closes.
    if (failure.type === 'entity.too.large') res.setHeader('Connection', 'close');
    req.resume();
    return finish(errorOutcome(failure));
  }

  if (ready !== undefined) {
    try {
      await ready;
    } catch (cause) {
      return finish(
        errorOutcome(new CallbackError('store.unavailable', 'The store failed to initialise', { cause, headers: { 'Retry-After': config.retryAfter } })),
      );
    }
  }

  const outcome = await processRequest(config, {
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
  finish(outcome);
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
  if (outcome.status >= 500 || outcome.kind === 'failed') {
    if (outcome.error) fields.err = describe(outcome.error.cause ?? outcome.error);
    config.logger.error(fields, 'caibo callback failed');
  } else if (outcome.status >= 400) {
    config.logger.warn(fields, 'caibo callback refused');
  } else {
    config.logger.info(fields, 'caibo callback');
  }
}

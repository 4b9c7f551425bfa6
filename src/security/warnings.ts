import type { IncomingMessage } from 'node:http';
import type { Logger } from '../logger';

/**
 * Misconfiguration warnings in the express-rate-limit style: a named code, what is wrong and how
 * to fix it, each reported once per router.
 */

/** The warning codes, stable so they can be searched for and filtered. */
export type WarningCode =
  | 'ERR_CAIBO_PERMISSIVE_TRUST_PROXY'
  | 'ERR_CAIBO_UNEXPECTED_X_FORWARDED_FOR'
  | 'ERR_CAIBO_OPEN_ALLOWLIST'
  | 'ERR_CAIBO_LOCAL_ORDERING_GUARD'
  | 'ERR_CAIBO_INBOX_NOT_DURABLE'
  /** express-rate-limit's own checks, passed through. */
  | `ERR_ERL_${string}`;

/** Reports each warning code once. */
export interface Warner {
  warn(code: WarningCode, message: string): void;
}

/**
 * Warnings go to the `logger` when one is configured, else to `process.emitWarning` (stderr,
 * silenced by `--no-warnings`): the default logger is silent, and a misconfiguration that opens
 * the endpoint must not go unreported.
 */
export function createWarner(logger: Logger | undefined): Warner {
  const seen = new Set<WarningCode>();
  return {
    warn(code, message) {
      if (seen.has(code)) return;
      seen.add(code);
      if (logger !== undefined) logger.warn({ code }, `caibo-callbacks: ${message}`);
      else process.emitWarning(`caibo-callbacks: ${message}`, { type: 'CaiboCallbacksWarning', code });
    },
  };
}

/** Checks made once, when the router is created. */
export function startupWarnings(warner: Warner, opts: { allowAll: boolean; production: boolean }): void {
  if (opts.allowAll && opts.production) {
    warner.warn(
      'ERR_CAIBO_OPEN_ALLOWLIST',
      '`allowIps` is empty while NODE_ENV=production, so any address may call the callback routes (the signature is then the only check). ' +
        'Fix: set allowIps to the addresses Caibo support gives you, e.g. allowIps: ["203.0.113.0/24"].',
    );
  }
}

/** Addresses no real proxy setting would trust at an absurd hop; a `trust proxy` that trusts them trusts everyone. */
const PROBES = ['198.51.100.23', '2001:db8::23'] as const;

type ExpressLikeRequest = IncomingMessage & { app?: { get?: (name: string) => unknown } };

function setting(req: ExpressLikeRequest, name: string): unknown {
  return typeof req.app?.get === 'function' ? req.app.get(name) : undefined;
}

/** The Express apps whose `trust proxy` was probed. */
export class ProbedApps {
  // Nearly every request comes through one app: a comparison instead of a WeakSet lookup.
  private last: object | undefined;
  private readonly all = new WeakSet<object>();

  /** Whether `app` is seen for the first time (it is then recorded). */
  firstTime(app: object): boolean {
    if (app === this.last) return false;
    this.last = app;
    if (this.all.has(app)) return false;
    this.all.add(app);
    return true;
  }
}

/**
 * Checks made per request (the trust function once per app), under Express only (`req.app.get`): a
 * `trust proxy` that trusts every hop lets anyone choose `req.ip` with `X-Forwarded-For`, and an
 * `X-Forwarded-For` header while `trust proxy` is off usually means a proxy the app does not know about.
 */
export function requestWarnings(warner: Warner, req: ExpressLikeRequest, probed: ProbedApps): void {
  const app = req.app;
  if (app === undefined || typeof app.get !== 'function') return;
  // The trust function is probed once per app: settings are made before the app listens.
  if (probed.firstTime(app)) {
    const trust = setting(req, 'trust proxy');
    const fn = setting(req, 'trust proxy fn');
    const permissive =
      trust === true || (typeof fn === 'function' && PROBES.some((ip) => (fn as (a: string, i: number) => unknown)(ip, 1024) === true));
    if (permissive) {
      warner.warn(
        'ERR_CAIBO_PERMISSIVE_TRUST_PROXY',
        "The Express 'trust proxy' setting trusts every hop, so anyone can pick the client address allowIps checks by sending X-Forwarded-For. " +
          "Fix: trust only your own proxies, e.g. app.set('trust proxy', 1) for one load balancer, or its subnet: app.set('trust proxy', '10.0.0.0/8').",
      );
    }
  }
  // The header first: reading an Express setting on every request shows in the profile.
  if (req.headers['x-forwarded-for'] !== undefined && setting(req, 'trust proxy') === false) {
    warner.warn(
      'ERR_CAIBO_UNEXPECTED_X_FORWARDED_FOR',
      "A request carried X-Forwarded-For but the Express 'trust proxy' setting is false, so the header is ignored and allowIps sees the socket address. " +
        "Fix: behind a proxy or load balancer, set app.set('trust proxy', 1) (or the proxy's subnet); if there is no proxy, a client sent the header itself and it is rightly ignored.",
    );
  }
}

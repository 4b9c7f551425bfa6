import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { clientIp } from '../http/client-ip';
import { parseClientIp } from './ip-allowlist';

/**
 * The express-rate-limit options the router accepts (express-rate-limit is an optional peer
 * dependency: install it to use `rateLimit`). The refusal itself (`handler`, `statusCode`,
 * `message`, `requestPropertyName`) is the router's: a flood is answered 429 `rate.limited` like
 * every other refusal, through `onRejected` and the logger. Declared here rather than imported,
 * so the public types need neither express-rate-limit nor `@types/express`.
 */
export interface RateLimitOptions {
  /** The window, in ms. Defaults to `60_000`. */
  windowMs?: number;
  /** Requests allowed per client address and window (or a function of the request). Defaults to `600`. */
  limit?: number | ((req: IncomingMessage, res: ServerResponse) => number | Promise<number>);
  /** An express-rate-limit store (Redis, Memcached, …) to share counts across instances. Defaults to its memory store. */
  store?: object;
  /** The key requests are counted by. Defaults to the client address `allowIps` sees, IPv6 grouped by `ipv6Subnet`. */
  keyGenerator?: (req: IncomingMessage, res: ServerResponse) => string | Promise<string>;
  /** Requests for which this returns true are not counted. */
  skip?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
  /** The IPv6 prefix length addresses are grouped by, or `false`. Defaults to `56`. */
  ipv6Subnet?: number | false;
  /** Let requests through when the store fails (fail open). Defaults to `false`: 503. */
  passOnStoreError?: boolean;
  /** Which `RateLimit` headers to send. Defaults to `'draft-7'`. */
  standardHeaders?: boolean | 'draft-6' | 'draft-7';
  /** Send `X-RateLimit-*` headers. Defaults to `false`. */
  legacyHeaders?: boolean;
  /** Any other express-rate-limit option, passed through. */
  [option: string]: unknown;
}

/** The parts of express-rate-limit the router uses. */
interface ExpressRateLimit {
  rateLimit(options: Record<string, unknown>): (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => Promise<void>;
  ipKeyGenerator(ip: string, ipv6Subnet: number | false): string;
}

/** Loads express-rate-limit only when `rateLimit` is configured; a missing package says what to install. */
function loadExpressRateLimit(): ExpressRateLimit {
  try {
    return createRequire(__filename)('express-rate-limit') as ExpressRateLimit;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'MODULE_NOT_FOUND') {
      throw new TypeError('caiboCallbacks: `rateLimit` needs the express-rate-limit package: run `npm install express-rate-limit`', { cause: error });
    }
    throw error;
  }
}

/** What a rate-limit check decided for one request. */
export type RateLimitVerdict = { kind: 'pass' } | { kind: 'limited' } | { kind: 'error'; error: unknown };

/** Runs the limiter for one request, before anything of it is read. */
export type RateLimitCheck = (req: IncomingMessage, res: ServerResponse) => Promise<RateLimitVerdict>;

/** Where express-rate-limit's own misconfiguration messages go. */
export interface RateLimitLogger {
  warn(error: unknown, message?: string): void;
  error(error: unknown, message?: string): void;
}

const OWNED = ['handler', 'statusCode', 'message', 'requestPropertyName'] as const;

/**
 * Callback traffic comes from a handful of Caibo addresses, so the per-address budget is
 * generous: it stops floods, not bursts of real callbacks.
 */
export const RATE_LIMIT_DEFAULTS = { windowMs: 60_000, limit: 600 } as const;

/** A sentinel passed to `next` by our handler, so the limiter's refusal comes back to us. */
const LIMITED = Symbol('rate.limited');

/**
 * The default key: the same client address the allowlist sees (`req.ip` under Express, else the
 * socket address), with zone ids dropped and IPv4-mapped IPv6 folded to IPv4 before
 * express-rate-limit groups IPv6 addresses by subnet.
 */
function keyFor(erl: ExpressRateLimit, req: IncomingMessage, ipv6Subnet: number | false): string {
  const ip = clientIp(req);
  const parsed = ip === undefined ? null : parseClientIp(ip);
  return parsed === null ? 'unknown' : erl.ipKeyGenerator(parsed.toString(), ipv6Subnet);
}

/**
 * Builds the limiter once, at start-up, from express-rate-limit. It is driven with plain
 * `node:http` objects: our handler and key generator replace the parts of express-rate-limit
 * that need Express (`res.status`, `res.send`, `req.app`), so it also works under Connect.
 * Headers it sets (`RateLimit-*`, `Retry-After`) stay on our response.
 */
export function compileRateLimit(options: RateLimitOptions | false | undefined, logger: RateLimitLogger): RateLimitCheck | null {
  if (options === undefined || options === false) return null;
  if (options === null || typeof options !== 'object') {
    throw new TypeError('caiboCallbacks: `rateLimit` must be an express-rate-limit options object, e.g. { windowMs: 60_000, limit: 600 }');
  }
  for (const name of OWNED) {
    if (name in options) {
      throw new TypeError(
        `caiboCallbacks: \`rateLimit.${name}\` is not supported: the router answers floods itself (429 rate.limited); use onRejected to observe them`,
      );
    }
  }
  const { ipv6Subnet, ...rest } = options;
  if (ipv6Subnet !== undefined && ipv6Subnet !== false && typeof ipv6Subnet !== 'number') {
    throw new TypeError('caiboCallbacks: `rateLimit.ipv6Subnet` must be a number between 32 and 64, or false');
  }
  const subnet = ipv6Subnet ?? 56;
  const erl = loadExpressRateLimit();
  const limiter = erl.rateLimit({
    ...RATE_LIMIT_DEFAULTS,
    // draft-7 headers are written with setHeader only (draft-8 needs Express's res.append).
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req: IncomingMessage) => keyFor(erl, req, subnet),
    logger,
    ...rest,
    handler: (_req: IncomingMessage, _res: ServerResponse, next: (error?: unknown) => void) => next(LIMITED),
  });
  return (req, res) =>
    new Promise<RateLimitVerdict>((resolve) => {
      const next = (error?: unknown): void => {
        if (error === undefined) resolve({ kind: 'pass' });
        else if (error === LIMITED) resolve({ kind: 'limited' });
        else resolve({ kind: 'error', error });
      };
      void limiter(req, res, next);
    });
}

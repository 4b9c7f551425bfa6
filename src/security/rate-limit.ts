import type { IncomingMessage, ServerResponse } from 'node:http';
import { ipKeyGenerator, rateLimit, type Options as ExpressRateLimitOptions } from 'express-rate-limit';
import { clientIp } from '../http/client-ip';
import { parseClientIp } from './ip-allowlist';

/**
 * The express-rate-limit options the router accepts. The refusal itself (`handler`,
 * `statusCode`, `message`, `requestPropertyName`) is the router's: a flood is answered 429
 * `rate.limited` like every other refusal, through `onRejected` and the logger.
 */
export type RateLimitOptions = Partial<
  Omit<ExpressRateLimitOptions, 'handler' | 'statusCode' | 'message' | 'requestPropertyName'>
>;

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
function keyFor(req: IncomingMessage, ipv6Subnet: number | false): string {
  const ip = clientIp(req);
  const parsed = ip === undefined ? null : parseClientIp(ip);
  return parsed === null ? 'unknown' : ipKeyGenerator(parsed.toString(), ipv6Subnet);
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
  const limiter = rateLimit({
    ...RATE_LIMIT_DEFAULTS,
    // draft-7 headers are written with setHeader only (draft-8 needs Express's res.append).
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req) => keyFor(req, subnet),
    logger,
    ...rest,
    handler: (_req, _res, next) => next(LIMITED),
  });
  return (req, res) =>
    new Promise<RateLimitVerdict>((resolve) => {
      const next = (error?: unknown): void => {
        if (error === undefined) resolve({ kind: 'pass' });
        else if (error === LIMITED) resolve({ kind: 'limited' });
        else resolve({ kind: 'error', error });
      };
      // express-rate-limit's types name Express's req/res; it only uses node:http members here.
      void (limiter as unknown as (q: IncomingMessage, s: ServerResponse, n: (e?: unknown) => void) => Promise<void>)(req, res, next);
    });
}

/**
 * The `rateLimit` option (express-rate-limit underneath): 429 `rate.limited` before any body is
 * read, under Express 4/5, Connect and plain node:http; the design's order (method → rate limit →
 * source IP); a `store` shared across router instances; store failures.
 */
import type { ClientRateLimitInfo, Store } from 'express-rate-limit';
import { caiboCallbacks } from '../../src';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { rawExchange, SECRET, send, startServer, type Framework, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
let nextId = 20000000000000000n;

function signedPost(s: SecurityServer, path = '/callbacks/caibo') {
  const body = formBody(sampleNotification({ id: String(nextId++) }));
  return send(s, { path, headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET) }, body });
}

/** A fixed-window counter over a Map that several store instances share: a stand-in for Redis. */
class SharedMapStore implements Store {
  localKeys = false;
  prefix = 'caibo-test:';
  windowMs = 60_000;
  constructor(private readonly shared: Map<string, ClientRateLimitInfo>) {}
  init(options: { windowMs: number }): void {
    this.windowMs = options.windowMs;
  }
  increment(key: string): ClientRateLimitInfo {
    const k = this.prefix + key;
    const now = Date.now();
    const current = this.shared.get(k);
    const next = current && current.resetTime && current.resetTime.getTime() > now
      ? { totalHits: current.totalHits + 1, resetTime: current.resetTime }
      : { totalHits: 1, resetTime: new Date(now + this.windowMs) };
    this.shared.set(k, next);
    return next;
  }
  decrement(key: string): void {
    const current = this.shared.get(this.prefix + key);
    if (current) current.totalHits = Math.max(0, current.totalHits - 1);
  }
  resetKey(key: string): void {
    this.shared.delete(this.prefix + key);
  }
}

describe.each<Framework>(['express5', 'express4', 'connect', 'node'])('rateLimit under %s', (framework) => {
  it('refuses requests past the limit with 429 rate.limited, Retry-After and RateLimit headers', async () => {
    const s = await startServer({ framework, options: { rateLimit: { windowMs: 60_000, limit: 3 } } });
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await signedPost(s)).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(s.handled).toHaveLength(3);
      expect(s.rejected.map((r) => r.error.type)).toEqual(['rate.limited', 'rate.limited']);
      const limited = await signedPost(s);
      expect(limited.status).toBe(429);
      expect(limited.text).toBe('Too Many Requests');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(limited.headers['ratelimit-policy']).toBe('3;w=60');
      expect(limited.headers.ratelimit).toMatch(/limit=3, remaining=0/);
    } finally {
      await s.close();
    }
  });
});

describe('rateLimit, refusing before the body is read', () => {
  it('answers 429 to a client that sent only headers announcing a 1 MB body, and closes the connection', async () => {
    const s = await startServer({ options: { limit: '2mb', rateLimit: { limit: 1 }, bodyTimeoutMs: 60_000 } });
    try {
      expect((await signedPost(s)).status).toBe(200);
      const result = await rawExchange(
        s.port,
        [`POST /callbacks/caibo HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 1048576\r\nX-Signature: x\r\n\r\n`],
        { waitMs: 5000 },
      );
      // With a 60 s body timeout, the only way to get an answer now is a refusal made before reading.
      expect(result.status).toBe(429);
      expect(result.response).toMatch(/\r\nconnection: close\r\n/i);
      expect(result.closedByServer).toBe(true);
      expect(s.rejected.map((r) => r.error.type)).toEqual(['rate.limited']);
    } finally {
      await s.close();
    }
  });
});

describe('rateLimit order: method → rate limit → source IP', () => {
  it('a refused method does not count; a refused address does, and is answered 429 once over the limit', async () => {
    const s = await startServer({ options: { allowIps: ['203.0.113.7'], rateLimit: { limit: 2 } } });
    try {
      for (let i = 0; i < 4; i++) {
        expect((await send(s, { method: 'GET', path: '/callbacks/caibo' })).status).toBe(405);
      }
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await signedPost(s)).status);
      expect(statuses).toEqual([403, 403, 429]);
      expect(s.rejected.map((r) => r.error.type)).toEqual([
        'method.not_allowed',
        'method.not_allowed',
        'method.not_allowed',
        'method.not_allowed',
        'ip.forbidden',
        'ip.forbidden',
        'rate.limited',
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('rateLimit options', () => {
  it('passes `store` through, so router instances sharing a backend share one budget', async () => {
    const backend = new Map<string, ClientRateLimitInfo>();
    const a = await startServer({ options: { rateLimit: { limit: 3, store: new SharedMapStore(backend) } } });
    const b = await startServer({ framework: 'connect', options: { rateLimit: { limit: 3, store: new SharedMapStore(backend) } } });
    try {
      const statuses = [(await signedPost(a)).status, (await signedPost(b)).status, (await signedPost(a)).status, (await signedPost(b)).status, (await signedPost(a)).status];
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(a.handled.length + b.handled.length).toBe(3);
      expect([...backend.values()][0]!.totalHits).toBe(5);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('passes keyGenerator and skip through', async () => {
    const s = await startServer({
      options: {
        rateLimit: { limit: 1, keyGenerator: (req) => String(req.headers['x-tenant'] ?? 'none'), skip: (req) => req.headers['x-skip'] === 'yes' },
      },
    });
    try {
      const post = (headers: Record<string, string>) => {
        const body = formBody(sampleNotification({ id: String(nextId++) }));
        return send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET), ...headers }, body });
      };
      expect((await post({ 'X-Tenant': 'a' })).status).toBe(200);
      expect((await post({ 'X-Tenant': 'a' })).status).toBe(429);
      expect((await post({ 'X-Tenant': 'b' })).status).toBe(200);
      expect((await post({ 'X-Tenant': 'a', 'X-Skip': 'yes' })).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('a failing store answers 503 store.unavailable with Retry-After (fail closed); passOnStoreError lets requests through', async () => {
    const broken = (): Store => ({
      increment: () => Promise.reject(new Error('rate store down')),
      decrement: () => undefined,
      resetKey: () => undefined,
    });
    const closed = await startServer({ options: { rateLimit: { store: broken() }, retryAfterSeconds: 7 } });
    const open = await startServer({ options: { rateLimit: { store: broken(), passOnStoreError: true } } });
    try {
      const refused = await signedPost(closed);
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('7');
      expect(closed.errors.map((e) => e.error.type)).toEqual(['store.unavailable']);
      expect(closed.handled).toHaveLength(0);
      expect((await signedPost(open)).status).toBe(200);
      expect(open.handled).toHaveLength(1);
    } finally {
      await closed.close();
      await open.close();
    }
  });

  it.each(['handler', 'statusCode', 'message', 'requestPropertyName'])('refuses `rateLimit.%s` at creation: the router answers floods itself', (name) => {
    expect(() => caiboCallbacks({ secret: SECRET, onStatus: () => undefined, rateLimit: { [name]: 1 } as never })).toThrow(
      new RegExp(`rateLimit\\.${name}\` is not supported`),
    );
  });

  it("routes express-rate-limit's own misconfiguration checks (ERR_ERL_*) to the logger as named warnings, once", () => {
    const lines: { obj: Record<string, unknown>; msg?: string }[] = [];
    const logger = { info: () => undefined, warn: (obj: Record<string, unknown>, msg?: string) => lines.push({ obj, msg }), error: () => undefined };
    const store = new SharedMapStore(new Map());
    caiboCallbacks({ secret: SECRET, onStatus: () => undefined, logger, rateLimit: { store } });
    expect(lines).toEqual([]);
    // One store instance given to a second limiter double-counts: express-rate-limit flags it.
    caiboCallbacks({ secret: SECRET, onStatus: () => undefined, logger, rateLimit: { store } });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.obj).toEqual({ code: 'ERR_ERL_STORE_REUSE' });
    expect(lines[0]!.msg).toMatch(/must not be shared across multiple rate limiters/);
  });

  it('is off by default: no RateLimit headers and no limit', async () => {
    const s = await startServer();
    try {
      for (let i = 0; i < 20; i++) expect((await signedPost(s)).status).toBe(200);
      expect((await signedPost(s)).headers.ratelimit).toBeUndefined();
    } finally {
      await s.close();
    }
  });
});

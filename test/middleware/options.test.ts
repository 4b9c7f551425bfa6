/**
 * Options are validated when caiboCallbacks() runs, with TypeErrors that say how to fix them;
 * app.use(caiboCallbacks) without the call is caught on the first request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { caiboCallbacks, MemoryStore, type CaiboCallbacksOptions } from '../../src';
import { sampleNotification } from '../../src/testing';
import { createApp, FRAMEWORKS, listen, post, SECRET } from '../helpers/callbacks';
import request from 'supertest';

const onStatus = () => undefined;

/** Builds the router with `overrides` and returns the TypeError it throws. */
function misconfigured(overrides: Record<string, unknown>): TypeError {
  try {
    const router = caiboCallbacks({ secret: SECRET, onStatus, ...overrides } as unknown as CaiboCallbacksOptions);
    void router.close();
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return error as TypeError;
  }
  throw new Error(`expected a TypeError for ${JSON.stringify(Object.keys(overrides))}`);
}

describe('options validation', () => {
  it('builds with a secret and a handler only', async () => {
    const router = caiboCallbacks({ secret: SECRET, onStatus });
    expect(typeof router).toBe('function');
    await router.close();
  });

  it('requires a secret', () => {
    expect(misconfigured({ secret: undefined }).message).toMatch(/`secret` is required: pass your Caibo API key/);
    expect(misconfigured({ secret: [] }).message).toMatch(/`secret` is required/);
    expect(misconfigured({ secret: 42 }).message).toMatch(/`secret` is required/);
  });

  it('refuses a blank secret, pointing at the environment variable', () => {
    expect(misconfigured({ secret: '' }).message).toMatch(/`secret` is blank: check that the environment variable holding it is set/);
    expect(misconfigured({ secret: '   ' }).message).toMatch(/blank/);
    expect(misconfigured({ secret: [SECRET, ''] }).message).toMatch(/secret\[1\] is blank/);
  });

  it('refuses a secret with surrounding whitespace, saying to trim it', () => {
    expect(misconfigured({ secret: `${SECRET}\n` }).message).toMatch(/`secret` has leading or trailing whitespace: trim it/);
    expect(misconfigured({ secret: [` ${SECRET}`, SECRET] }).message).toMatch(/secret\[0\] has leading or trailing whitespace/);
    expect(misconfigured({ secret: [SECRET, 7] }).message).toMatch(/secret\[1\] must be a string/);
  });

  it('requires onStatus', () => {
    expect(misconfigured({ onStatus: undefined }).message).toMatch(/`onStatus` is required/);
    expect(misconfigured({ onStatus: 'handler' }).message).toMatch(/`onStatus` is required/);
  });

  it('refuses a bad IP or CIDR, with examples', () => {
    expect(misconfigured({ allowIps: ['10.0.0.0/33'] }).message).toMatch(/"10\.0\.0\.0\/33" is not a valid CIDR \(examples: "203\.0\.113\.0\/24"/);
    expect(misconfigured({ allowIps: ['2001:db8::/129'] }).message).toMatch(/not a valid CIDR/);
    expect(misconfigured({ allowIps: ['10.0.0.256'] }).message).toMatch(/"10\.0\.0\.256" is not a valid IP address or CIDR/);
    expect(misconfigured({ allowIps: [' 10.0.0.1'] }).message).toMatch(/without spaces/);
    expect(misconfigured({ allowIps: '10.0.0.1' }).message).toMatch(/`allowIps` must be a list/);
    expect(misconfigured({ providers: { '3ds': { allowIps: ['nope'] } } }).message).toMatch(/"nope" is not a valid IP/);
  });

  it('refuses a store missing claim (or the class passed instead of an instance)', () => {
    const noClaim = { complete: async () => undefined, release: async () => undefined };
    expect(misconfigured({ store: noClaim }).message).toMatch(/`store` must implement claim\(\), complete\(\) and release\(\); it has no claim\(\)/);
    expect(misconfigured({ store: { claim: async () => ({ status: 'done' }), complete: async () => undefined } }).message).toMatch(/it has no release\(\)/);
    expect(misconfigured({ store: MemoryStore }).message).toMatch(/Did you pass the class instead of an instance \(new MemoryStore\(\)\)\?/);
  });

  it('refuses bad numbers, hooks, logger and routes', () => {
    expect(misconfigured({ leaseMs: 0 }).message).toMatch(/`leaseMs` must be a positive integer/);
    expect(misconfigured({ retentionMs: '30d' }).message).toMatch(/`retentionMs` must be a positive integer/);
    expect(misconfigured({ limit: 'lots' }).message).toMatch(/`limit` must be a positive number of bytes/);
    expect(misconfigured({ merchantId: 16762420400394816 }).message).toMatch(/`merchantId` must be your merchant id as a string of digits/);
    expect(misconfigured({ retryAfterSeconds: -1 }).message).toMatch(/`retryAfterSeconds`/);
    expect(misconfigured({ onError: 'log' }).message).toMatch(/`onError` must be a function/);
    expect(misconfigured({ logger: { info() {} } }).message).toMatch(/`logger` must have info\(\), warn\(\) and error\(\)/);
    expect(misconfigured({ providers: { stripe: {} } }).message).toMatch(/`providers\.stripe` is not a route; use one of caibo, caibo-gateway, caibowh, 3ds/);
  });

  it('refuses being called without an options object', () => {
    expect(() => (caiboCallbacks as unknown as () => unknown)()).toThrow(/call it with an options object/);
  });
});

describe.each(FRAMEWORKS)('app.use(caiboCallbacks) without the call, under %s', (framework) => {
  it('passes a fix-it TypeError to next(err) instead of hanging', async () => {
    const seen: unknown[] = [];
    const app = createApp(framework);
    app.use('/callbacks', caiboCallbacks);
    app.use((error: unknown, _req: IncomingMessage, res: ServerResponse, _next: unknown) => {
      seen.push(error);
      res.statusCode = 500;
      res.end('app error');
    });
    const { server, url } = await listen(app as unknown as Parameters<typeof listen>[0]);
    try {
      const res = await post({ http: () => request(url) }, '/callbacks/caibo', sampleNotification()).timeout(5000);
      expect(res.status).toBe(500);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toBeInstanceOf(TypeError);
      expect((seen[0] as Error).message).toMatch(/mounted without being called: use app\.use\("\/callbacks", caiboCallbacks\(\{ secret, allowIps, onStatus \}\)\)/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

it('throws the same TypeError when called as a plain (req, res) handler with no next', async () => {
  const { server, url } = await listen((req, res) => {
    try {
      (caiboCallbacks as unknown as (a: unknown, b: unknown) => unknown)(req, res);
      res.end('no error');
    } catch (error) {
      res.statusCode = 500;
      res.end((error as Error).message);
    }
  });
  try {
    const res = await request(url).get('/');
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/mounted without being called/);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

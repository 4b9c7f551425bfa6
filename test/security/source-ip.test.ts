/**
 * Source-address checks: CIDR edge cases, X-Forwarded-For spoofing, the right proxy hop, and the
 * misconfiguration warnings (permissive `trust proxy`, open allowlist in production).
 */
import { caiboCallbacks } from '../../src';
import { compileAllowlist } from '../../src/security/ip-allowlist';
import { ProbedApps, requestWarnings } from '../../src/security/warnings';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { SECRET, send, startServer, type Framework, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
let nextId = 19000000000000000n;

function signedPost(s: SecurityServer, headers: Record<string, string> = {}, host?: string) {
  const body = formBody(sampleNotification({ id: String(nextId++) }));
  return send(s, { path: '/callbacks/caibo', headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET), ...headers }, body, ...(host && { host }) });
}

describe('CIDR matching', () => {
  const allows = (rules: string[], ip: string) => compileAllowlist(rules).match(ip);

  it('/0 covers its whole family, and only that family', () => {
    expect(allows(['0.0.0.0/0'], '203.0.113.9')).toBe(true);
    expect(allows(['0.0.0.0/0'], '::ffff:203.0.113.9')).toBe(true);
    expect(allows(['0.0.0.0/0'], '2001:db8::1')).toBe(false);
    expect(allows(['::/0'], '2001:db8::1')).toBe(true);
    expect(allows(['::/0'], '203.0.113.9')).toBe(false);
  });

  it('/32 and /128 match exactly one address', () => {
    expect(allows(['203.0.113.9/32'], '203.0.113.9')).toBe(true);
    expect(allows(['203.0.113.9/32'], '203.0.113.10')).toBe(false);
    expect(allows(['2001:db8::1/128'], '2001:db8::1')).toBe(true);
    expect(allows(['2001:db8::1/128'], '2001:db8::2')).toBe(false);
    expect(allows(['2001:db8::1/128'], '2001:0db8:0000::0001')).toBe(true);
  });

  it('ignores IPv6 zone ids on the client address and on plain-address rules', () => {
    expect(allows(['fe80::1'], 'fe80::1%eth0')).toBe(true);
    expect(allows(['fe80::/10'], 'fe80::abcd%en0')).toBe(true);
    expect(allows(['fe80::1%eth0'], 'fe80::1')).toBe(true);
    expect(allows(['fe80::1'], 'fe80::2%eth0')).toBe(false);
    // A zone id on a CIDR rule is accepted and ignored too (a zone is local to one host's interfaces).
    expect(allows(['fe80::%eth0/64'], 'fe80::1%eth1')).toBe(true);
    expect(allows(['fe80::%eth0/64'], 'fe80:0:0:1::1')).toBe(false);
  });

  it('matches IPv4-mapped IPv6 clients against IPv4 rules, and mapped rules against IPv4 clients', () => {
    expect(allows(['10.0.0.0/8'], '::ffff:10.1.2.3')).toBe(true);
    expect(allows(['10.0.0.0/8'], '::ffff:11.1.2.3')).toBe(false);
    expect(allows(['::ffff:10.0.0.0/104'], '10.200.0.1')).toBe(true);
    expect(allows(['::ffff:10.0.0.0/104'], '11.0.0.1')).toBe(false);
    expect(allows(['::ffff:203.0.113.9'], '203.0.113.9')).toBe(true);
    expect(allows(['203.0.113.9'], '::ffff:cb00:7109')).toBe(true);
  });

  it('refuses garbage client addresses and an unknown address', () => {
    for (const ip of ['', 'localhost', '203.0.113.9:443', '999.1.1.1', '203.0.113.9, 10.0.0.1', '::ffff:999.0.0.1']) {
      expect(allows(['0.0.0.0/0', '::/0'], ip)).toBe(false);
    }
    expect(compileAllowlist(['0.0.0.0/0']).match(undefined)).toBe(false);
  });

  it.each(['10.0.0.0/33', '::/129', ' 10.0.0.1', '10.0.0.1 ', '10.0.0.256', 'localhost', '10.0.0.0/', '/8', ''])(
    'refuses the allowIps entry %j when the router is created',
    (entry) => {
      expect(() => caiboCallbacks({ secret: SECRET, allowIps: [entry], onStatus: () => undefined })).toThrow(TypeError);
    },
  );
});

describe('X-Forwarded-For is never trusted on its own', () => {
  it.each<Framework>(['express5', 'express4', 'connect', 'node'])('with trust proxy off (%s): a spoofed header is refused 403', async (framework) => {
    const s = await startServer({ framework, options: { allowIps: ['203.0.113.7'] } });
    try {
      for (const xff of ['203.0.113.7', '10.0.0.1, 203.0.113.7', '203.0.113.7, 127.0.0.1']) {
        const reply = await signedPost(s, { 'X-Forwarded-For': xff, 'X-Real-IP': '203.0.113.7', Forwarded: 'for=203.0.113.7' });
        expect(reply.status).toBe(403);
        expect(reply.text).toBe('Forbidden');
      }
      expect(s.handled).toHaveLength(0);
      expect(s.rejected.map((r) => r.error.type)).toEqual(['ip.forbidden', 'ip.forbidden', 'ip.forbidden']);
      expect(s.rejected[0]!.context.clientIp).toMatch(/127\.0\.0\.1$/);
    } finally {
      await s.close();
    }
  });

  it('warns once, under Express, that X-Forwarded-For arrived while trust proxy is off', async () => {
    const s = await startServer({ options: { allowIps: ['127.0.0.1'] } });
    try {
      await signedPost(s, { 'X-Forwarded-For': '203.0.113.7' });
      await signedPost(s, { 'X-Forwarded-For': '203.0.113.8' });
      const warnings = s.logs.filter((l) => l.obj.code === 'ERR_CAIBO_UNEXPECTED_X_FORWARDED_FOR');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe('warn');
      expect(warnings[0]!.msg).toContain("app.set('trust proxy', 1)");
    } finally {
      await s.close();
    }
  });
});

describe('the right hop behind a proxy', () => {
  // The test client connects from 127.0.0.1, playing the load balancer.
  it.each<[string, unknown]>([
    ['a hop count', 1],
    ['a subnet', '127.0.0.0/8'],
    ['a named range', 'loopback'],
  ])('with trust proxy set to %s, the address the proxy saw is checked, not one the client wrote', async (_name, setting) => {
    for (const framework of ['express5', 'express4'] as const) {
      const s = await startServer({ framework, configure: (app) => app.set('trust proxy', setting), options: { allowIps: ['203.0.113.7'] } });
      try {
        // The proxy appends the real client: "<whatever the client sent>, <real client>".
        expect((await signedPost(s, { 'X-Forwarded-For': '203.0.113.7' })).status).toBe(200);
        expect((await signedPost(s, { 'X-Forwarded-For': '198.51.100.66, 203.0.113.7' })).status).toBe(200);
        // A client that wrote the allowed address itself, proxied from elsewhere, is refused.
        expect((await signedPost(s, { 'X-Forwarded-For': '203.0.113.7, 198.51.100.66' })).status).toBe(403);
        expect(s.handled).toHaveLength(2);
        expect(s.handled.map(() => 'ok')).toEqual(['ok', 'ok']);
        expect(s.rejected.at(-1)!.context.clientIp).toBe('198.51.100.66');
        expect(s.logs.filter((l) => String(l.obj.code ?? '').startsWith('ERR_CAIBO_'))).toEqual([]);
      } finally {
        await s.close();
      }
    }
  });

  it('over IPv6 loopback: ::1 matches ::1/128 and not an IPv4 rule', async () => {
    const s = await startServer({ host: '::1', options: { allowIps: ['::1/128'] } });
    const v4only = await startServer({ host: '::1', options: { allowIps: ['127.0.0.1'] } });
    try {
      expect((await signedPost(s, {}, '::1')).status).toBe(200);
      expect((await signedPost(v4only, {}, '::1')).status).toBe(403);
    } finally {
      await s.close();
      await v4only.close();
    }
  });
});

describe('misconfiguration warnings', () => {
  it.each<[string, unknown]>([
    ['true', true],
    ['a subnet list covering every address', ['0.0.0.0/1', '128.0.0.0/1']],
    ['a function trusting everyone', () => true],
  ])("warns once when trust proxy is %s (anyone can choose req.ip), saying how to fix it", async (_name, setting) => {
    const s = await startServer({ configure: (app) => app.set('trust proxy', setting), options: { allowIps: ['203.0.113.7'] } });
    try {
      const spoofed = await signedPost(s, { 'X-Forwarded-For': '203.0.113.7' });
      // This is exactly why it is dangerous: the spoofed address passes.
      expect(spoofed.status).toBe(200);
      await signedPost(s);
      const warnings = s.logs.filter((l) => l.obj.code === 'ERR_CAIBO_PERMISSIVE_TRUST_PROXY');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe('warn');
      expect(warnings[0]!.msg).toMatch(/trusts every hop/);
      expect(warnings[0]!.msg).toContain("app.set('trust proxy', 1)");
    } finally {
      await s.close();
    }
  });

  it('does not warn for a bounded trust proxy or under Connect', async () => {
    for (const opts of [{ configure: (app: import('express').Express) => app.set('trust proxy', 2) }, { framework: 'connect' as const }]) {
      const s = await startServer({ ...opts, options: { allowIps: ['127.0.0.1'] } });
      try {
        await signedPost(s);
        expect(s.logs.filter((l) => l.level === 'warn')).toEqual([]);
      } finally {
        await s.close();
      }
    }
  });

  describe('an empty allowIps in production', () => {
    const saved = process.env.NODE_ENV;
    afterEach(() => {
      process.env.NODE_ENV = saved;
    });
    const capture = () => {
      const lines: { obj: Record<string, unknown>; msg?: string }[] = [];
      const logger = { info: () => undefined, warn: (obj: Record<string, unknown>, msg?: string) => lines.push({ obj, msg }), error: () => undefined };
      return { lines, logger };
    };

    it('warns at creation through the logger, once, with the fix', () => {
      process.env.NODE_ENV = 'production';
      const { lines, logger } = capture();
      caiboCallbacks({ secret: SECRET, onStatus: () => undefined, logger });
      expect(lines).toHaveLength(1);
      expect(lines[0]!.obj).toEqual({ code: 'ERR_CAIBO_OPEN_ALLOWLIST' });
      expect(lines[0]!.msg).toMatch(/allowIps.*empty.*NODE_ENV=production/);
      expect(lines[0]!.msg).toContain('Fix: set allowIps');
    });

    it('falls back to process.emitWarning when no logger is configured', () => {
      process.env.NODE_ENV = 'production';
      const emit = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
      try {
        caiboCallbacks({ secret: SECRET, allowIps: [], onStatus: () => undefined });
        expect(emit).toHaveBeenCalledTimes(1);
        expect(emit.mock.calls[0]![1]).toMatchObject({ code: 'ERR_CAIBO_OPEN_ALLOWLIST', type: 'CaiboCallbacksWarning' });
      } finally {
        emit.mockRestore();
      }
    });

    it('stays quiet with an allowlist, outside production, or for a route opened on purpose', () => {
      const { lines, logger } = capture();
      process.env.NODE_ENV = 'production';
      caiboCallbacks({ secret: SECRET, allowIps: ['203.0.113.0/24'], onStatus: () => undefined, logger });
      caiboCallbacks({ secret: SECRET, allowIps: ['203.0.113.0/24'], providers: { '3ds': { allowIps: false } }, onStatus: () => undefined, logger });
      process.env.NODE_ENV = 'development';
      caiboCallbacks({ secret: SECRET, onStatus: () => undefined, logger });
      expect(lines).toEqual([]);
    });
  });
});

describe('requestWarnings probes each app once', () => {
  /** An Express-like app whose settings reads are counted. */
  const fakeApp = (trustProxy: unknown, trustFn: (addr: string, hop: number) => boolean) => {
    const reads: string[] = [];
    const settings: Record<string, unknown> = { 'trust proxy': trustProxy, 'trust proxy fn': trustFn };
    return { reads, get: (name: string) => (reads.push(name), settings[name]) };
  };
  const requestTo = (app: object, headers: Record<string, string> = {}) => ({ app, headers }) as unknown as Parameters<typeof requestWarnings>[1];

  it('warns for a permissive app met after a safe one, and reads no setting again for an app it has probed', () => {
    const codes: string[] = [];
    const warner = { warn: (code: string) => void codes.push(code) };
    const probed = new ProbedApps();
    const safe = fakeApp('loopback', (addr) => addr === '127.0.0.1');
    const open = fakeApp(true, () => true);
    for (const app of [safe, safe, open, safe, open]) requestWarnings(warner, requestTo(app), probed);
    expect(codes).toEqual(['ERR_CAIBO_PERMISSIVE_TRUST_PROXY']);
    expect(safe.reads).toEqual(['trust proxy', 'trust proxy fn']);
    expect(open.reads).toEqual(['trust proxy', 'trust proxy fn']);
  });

  it('reads trust proxy per request only when X-Forwarded-For is there', () => {
    const codes: string[] = [];
    const probed = new ProbedApps();
    const app = fakeApp(false, () => false);
    requestWarnings({ warn: (code) => void codes.push(code) }, requestTo(app), probed);
    requestWarnings({ warn: (code) => void codes.push(code) }, requestTo(app), probed);
    expect(app.reads).toHaveLength(2);
    requestWarnings({ warn: (code) => void codes.push(code) }, requestTo(app, { 'x-forwarded-for': '203.0.113.9' }), probed);
    expect(app.reads).toHaveLength(3);
    expect(codes).toEqual(['ERR_CAIBO_UNEXPECTED_X_FORWARDED_FOR']);
  });
});

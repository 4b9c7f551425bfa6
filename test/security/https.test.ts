/**
 * `requireHttps`: plain HTTP is refused with 403 `https.required`; `X-Forwarded-Proto` counts
 * only through Express's `trust proxy`; a real TLS socket always counts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caiboCallbacks } from '../../src';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { SECRET, send, startServer, type Framework, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
let nextId = 21000000000000000n;

function signed(headers: Record<string, string> = {}) {
  const body = formBody(sampleNotification({ id: String(nextId++) }));
  return { body, headers: { 'Content-Type': FORM, 'X-Signature': signPayload(body, SECRET), ...headers } };
}

function signedPost(s: SecurityServer, headers: Record<string, string> = {}) {
  return send(s, { path: '/callbacks/caibo', ...signed(headers) });
}

describe.each<Framework>(['express5', 'express4', 'connect', 'node'])('requireHttps over plain HTTP (%s)', (framework) => {
  it('refuses with 403 https.required, before the handler, whatever X-Forwarded-Proto says', async () => {
    const s = await startServer({ framework, options: { requireHttps: true } });
    try {
      const plain = await signedPost(s);
      expect(plain.status).toBe(403);
      expect(plain.text).toBe('HTTPS Required');
      const spoofed = await signedPost(s, { 'X-Forwarded-Proto': 'https', Forwarded: 'proto=https' });
      expect(spoofed.status).toBe(403);
      expect(s.handled).toHaveLength(0);
      expect(s.rejected.map((r) => r.error.type)).toEqual(['https.required', 'https.required']);
    } finally {
      await s.close();
    }
  });
});

describe('requireHttps behind a TLS-terminating proxy (Express trust proxy)', () => {
  it.each(['express5', 'express4'] as const)('honours X-Forwarded-Proto from a trusted hop only (%s)', async (framework) => {
    const trusted = await startServer({ framework, configure: (app) => app.set('trust proxy', 'loopback'), options: { requireHttps: true } });
    const untrusted = await startServer({ framework, configure: (app) => app.set('trust proxy', '10.0.0.0/8'), options: { requireHttps: true } });
    try {
      expect((await signedPost(trusted, { 'X-Forwarded-Proto': 'https' })).status).toBe(200);
      expect((await signedPost(trusted, { 'X-Forwarded-Proto': 'http' })).status).toBe(403);
      expect((await signedPost(trusted)).status).toBe(403);
      expect(trusted.handled).toHaveLength(1);
      // The socket peer (127.0.0.1) is not a trusted proxy here, so its header is ignored.
      expect((await signedPost(untrusted, { 'X-Forwarded-Proto': 'https' })).status).toBe(403);
      expect(untrusted.handled).toHaveLength(0);
    } finally {
      await trusted.close();
      await untrusted.close();
    }
  });
});

describe('requireHttps over TLS', () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'caibo-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    key = readFileSync(join(dir, 'key.pem'));
    cert = readFileSync(join(dir, 'cert.pem'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each<Framework>(['express5', 'connect', 'node'])('accepts a request over a TLS socket (%s)', async (framework) => {
    const s = await startServer({ framework, createServer: (listener) => https.createServer({ key, cert }, listener), options: { requireHttps: true } });
    try {
      const { body, headers } = signed();
      const status = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port: s.port, method: 'POST', path: '/callbacks/caibo', headers: { ...headers, 'Content-Length': Buffer.byteLength(body) }, rejectUnauthorized: false },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      expect(status).toBe(200);
      expect(s.handled).toHaveLength(1);
    } finally {
      await s.close();
    }
  });
});

describe('requireHttps option', () => {
  it('is off by default: plain HTTP is served', async () => {
    const s = await startServer();
    try {
      expect((await signedPost(s)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('must be a boolean', () => {
    expect(() => caiboCallbacks({ secret: SECRET, onStatus: () => undefined, requireHttps: 'yes' as never })).toThrow('`requireHttps` must be true or false');
  });
});

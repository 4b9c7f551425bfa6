import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signPayload, PUBLISHED_EXAMPLE_BODY } from '../../src/testing';
import { ensureBuilt, runCli } from './run-cli';

const SECRET = 'caibo_test_sk_cli_0123456789';

beforeAll(ensureBuilt, 120_000);

describe('caibo-callbacks (built binary): commands, help and exit codes', () => {
  it.each([
    [['--help'], /Usage: caibo-callbacks <command>/],
    [['help', 'send'], /Usage: caibo-callbacks send <url>/],
    [['sign', '--help'], /Usage: caibo-callbacks sign/],
    [['send', '-h'], /--repeat <n>/],
    [['demo', '--help'], /Usage: caibo-callbacks demo/],
  ])('%j prints usage and exits 0', async (args, pattern) => {
    const r = await runCli(args);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(pattern);
    expect(r.stdout).toMatch(/Exit codes/);
  });

  it('prints the package version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe((require('../../package.json') as { version: string }).version);
  });

  it.each([
    [[], /No command given/],
    [['refund'], /Unknown command "refund"/],
    [['send'], /send needs the URL/],
    [['send', 'http://localhost:3000/callbacks', '--bogus'], /Unknown option '--bogus'/],
    [['send', 'not a url'], /is not a URL/],
    [['send', 'ftp://example.com/callbacks'], /must be http or https/],
    [['send', 'http://localhost:3000/callbacks', '--status', 'refunded'], /--status must be one of paid, unpaid, cancelled, declined/],
    [['send', 'http://localhost:3000/callbacks', '--repeat', '0'], /--repeat must be between 1 and 1000/],
    [['send', 'http://localhost:3000/callbacks', '--concurrency', 'many'], /--concurrency must be a whole number/],
    [['send', 'http://localhost:3000/callbacks', '--route', 'refunds'], /--route must be one of/],
    [['send', 'http://localhost:3000/callbacks', '--id', '1.6e16'], /--id must be digits/],
    [['send', 'http://localhost:3000/callbacks', '--field', 'novalue'], /--field takes name=value/],
    [['send', 'http://localhost:3000/callbacks', '--file', '/nonexistent/n.json'], /cannot read --file/],
    [['sign', 'a', 'b'], /sign takes one body/],
  ])('%j is a usage error: exit 2 with a message on stderr', async (args, pattern) => {
    const r = await runCli(args, { env: { CAIBO_SECRET: SECRET } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toBe('');
  });

  it('demo refuses an --app module without createApp, and runs examples/basic', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'caibo-cli-demo-'));
    try {
      writeFileSync(join(dir, 'app.js'), 'module.exports = { makeApp() {} };\n');
      const bad = await runCli(['demo', '--app', join(dir, 'app.js')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/does not export createApp/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const r = await runCli(['demo', '--app', 'examples/basic/app.js']);
    expect(r.stdout).toMatch(/2 handler runs for 2 distinct events/);
    expect(r.code).toBe(0);
  });

  it('refuses to sign or send without a secret', async () => {
    for (const args of [['sign', 'body'], ['send', 'http://localhost:3000/callbacks']]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/no secret: set CAIBO_SECRET/);
    }
  });
});

describe('caibo-callbacks sign', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'caibo-cli-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('signs an argument with $CAIBO_SECRET, matching signPayload', async () => {
    const r = await runCli(['sign', PUBLISHED_EXAMPLE_BODY], { env: { CAIBO_SECRET: SECRET } });
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `${signPayload(PUBLISHED_EXAMPLE_BODY, SECRET)}\n`, '']);
  });

  it('signs with --secret over $CAIBO_SECRET', async () => {
    const r = await runCli(['sign', 'id=1', '--secret', 'other_key'], { env: { CAIBO_SECRET: SECRET } });
    expect(r.stdout).toBe(`${signPayload('id=1', 'other_key')}\n`);
  });

  it('signs the exact bytes of a file, including a trailing newline and non-ASCII bytes', async () => {
    const bytes = Buffer.concat([Buffer.from('notes=caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('&id=1\n')]);
    const file = join(dir, 'body.txt');
    writeFileSync(file, bytes);
    const r = await runCli(['sign', '--file', file], { env: { CAIBO_SECRET: SECRET } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${signPayload(bytes, SECRET)}\n`);
    expect(r.stdout).not.toBe(`${signPayload(bytes.subarray(0, -1), SECRET)}\n`);
    expect(r.stderr).toMatch(/ends with a newline, which is signed too/);
  });

  it('signs standard input', async () => {
    const r = await runCli(['sign'], { env: { CAIBO_SECRET: SECRET }, input: PUBLISHED_EXAMPLE_BODY });
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `${signPayload(PUBLISHED_EXAMPLE_BODY, SECRET)}\n`, '']);
    const dash = await runCli(['sign', '--file', '-'], { env: { CAIBO_SECRET: SECRET }, input: 'id=2' });
    expect(dash.stdout).toBe(`${signPayload('id=2', SECRET)}\n`);
  });

  it('refuses a secret with surrounding whitespace, which could never match', async () => {
    const r = await runCli(['sign', 'id=1'], { env: { CAIBO_SECRET: `${SECRET}\n` } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/leading or trailing whitespace/);
    expect(r.stderr).not.toContain(SECRET);
  });
});

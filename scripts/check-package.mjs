#!/usr/bin/env node
// The package as a merchant gets it: build, `npm pack`, lint the tarball with publint and
// @arethetypeswrong/cli, install it into throwaway CommonJS, ESM and TypeScript consumers
// (moduleResolution node16, from CJS and from ESM, and bundler) and run a signed callback
// through each, plus the `caibo-callbacks` binary. Exits 1 naming every check that failed.
//
// Usage: node scripts/check-package.mjs [--skip-build] [--keep]
//   --skip-build  use the dist/ already built
//   --keep        keep the temporary directory (it is always kept when a check fails)
// Environment: ATTW_PROFILE (default node16: Node >= 20 consumers; "strict" adds node10).
// Dependencies are installed with `npm install --prefer-offline`: from the npm cache where it has
// them, else from the registry (a fresh machine's cache holds only the tarballs `npm ci` fetched,
// not the metadata a versioned install resolves). CHECK_PACKAGE_OFFLINE=1 forbids the registry.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const installedVersion = (name) => JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
const bin = (name) => join(ROOT, 'node_modules', '.bin', name);
const npmMode = process.env.CHECK_PACKAGE_OFFLINE === '1' ? '--offline' : '--prefer-offline';

const failures = [];
const work = mkdtempSync(join(tmpdir(), 'caibo-check-package-'));

/** Runs a command; returns its output, or throws with the output attached. */
function run(command, argv, options = {}) {
  const result = spawnSync(command, argv, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, ...options });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error) throw Object.assign(result.error, { output });
  if (result.status !== 0) throw Object.assign(new Error(`${command} ${argv.join(' ')} exited ${result.status}`), { output });
  return output;
}

/** Runs one named check, recording a failure instead of stopping. */
function check(name, fn) {
  const started = Date.now();
  try {
    fn();
    console.log(`PASS  ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failures.push(name);
    console.log(`FAIL  ${name}`);
    console.log(indent(`${error.message}\n${error.output ?? ''}`.trim()));
  }
}

const indent = (text) => text.split('\n').map((line) => `      ${line}`).join('\n');

// --- build and pack -------------------------------------------------------------------------
if (!args.has('--skip-build')) {
  check('build (npm run build)', () => run('npm', ['run', 'build', '--silent']));
  if (failures.length > 0) finish();
}

let tarball;
check('npm pack', () => {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out);
  tarball = join(work, info.filename);
  const files = info.files.map((f) => f.path);
  const unexpected = files.filter((f) => !/^(dist\/|package\.json$|README\.md$|LICENSE$|CHANGELOG\.md$)/.test(f));
  if (unexpected.length > 0) throw new Error(`the tarball holds files outside dist/: ${unexpected.join(', ')}`);
  for (const required of ['dist/index.cjs', 'dist/index.mjs', 'dist/index.d.ts', 'dist/cli.cjs', 'package.json']) {
    if (!files.includes(required)) throw new Error(`the tarball lacks ${required}`);
  }
});
if (tarball === undefined) finish();

check('publint (strict)', () => run(process.execPath, [bin('publint'), 'run', tarball, '--strict']));
check(`@arethetypeswrong/cli (profile ${process.env.ATTW_PROFILE ?? 'node16'})`, () =>
  run(process.execPath, [bin('attw'), tarball, '--profile', process.env.ATTW_PROFILE ?? 'node16', '--format', 'table-flipped', '--no-emoji']),
);

// --- consumers --------------------------------------------------------------------------------
const hasPrometheus = pkg.exports?.['./prometheus'] !== undefined;

/**
 * The program every consumer runs, in its own module syntax: a plain node:http server with the
 * router, a signed notification (200, handler runs), its duplicate (200, handler does not run),
 * a bad signature (401), then the metrics snapshot.
 */
function program({ header, typed }) {
  const t = (annotation) => (typed ? annotation : '');
  return `${header}
const secret = 'caibo_test_sk_consumer';
let runs = 0;
const options${t(': CaiboCallbacksOptions')} = {
  secret,
  onStatus: (event${t(': CaiboEvent')}) => {
    if (event.kind === 'payment' && event.paymentRequestId === '16772761082427695' && event.grossAmount === '10') runs++;
  },
};
const router = caiboCallbacks(options);
const server = http.createServer((req, res) => router(req, res));

async function main()${t(': Promise<void>')} {
  await new Promise${t('<void>')}((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address()${t(' as AddressInfo')};
  const body = formBody(sampleNotification());
  const post = async (signature${t(': string')}) => {
    const res = await fetch(\`http://127.0.0.1:\${port}/caibo\`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': signature },
      body,
    });
    await res.text();
    return res.status;
  };
  const statuses = [await post(signPayload(body, secret)), await post(signPayload(body, secret)), await post(signPayload(body, 'wrong'))];
  const snapshot${t(': MetricsSnapshot')} = router.metrics();
  server.close();
  await router.close();
  const got = JSON.stringify({ statuses, runs, handled: snapshot.handled, duplicate: snapshot.duplicate, rejected: snapshot.rejected });
  const want = JSON.stringify({ statuses: [200, 200, 401], runs: 1, handled: 1, duplicate: 1, rejected: 1 });
  if (got !== want) throw new Error(\`expected \${want}, got \${got}\`);
  if (!(new CallbackError('signature.invalid', 'x') instanceof Error)) throw new Error('CallbackError is not an Error');
  console.log('signed callback handled once:', got);
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;
}

const TS_IMPORTS = `import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { caiboCallbacks, CallbackError, type CaiboCallbacksOptions, type CaiboEvent, type MetricsSnapshot } from 'caibo-callbacks';
import { formBody, sampleNotification, signPayload } from 'caibo-callbacks/testing';`;

const consumers = [
  {
    name: 'CommonJS consumer (require)',
    dir: 'cjs',
    type: 'commonjs',
    files: {
      'index.js': program({
        typed: false,
        header: `'use strict';
const http = require('node:http');
const { caiboCallbacks, CallbackError } = require('caibo-callbacks');
const { formBody, sampleNotification, signPayload } = require('caibo-callbacks/testing');`,
      }),
    },
    run: ['index.js'],
  },
  {
    name: 'ESM consumer (import)',
    dir: 'esm',
    type: 'module',
    files: {
      'index.js': program({
        typed: false,
        header: `import http from 'node:http';
import { caiboCallbacks, CallbackError } from 'caibo-callbacks';
import { formBody, sampleNotification, signPayload } from 'caibo-callbacks/testing';`,
      }),
    },
    run: ['index.js'],
  },
  ...[
    { label: 'TypeScript consumer (moduleResolution node16, CommonJS)', dir: 'ts-node16-cjs', type: 'commonjs', module: 'node16', resolution: 'node16' },
    { label: 'TypeScript consumer (moduleResolution node16, ESM)', dir: 'ts-node16-esm', type: 'module', module: 'node16', resolution: 'node16' },
    { label: 'TypeScript consumer (moduleResolution bundler)', dir: 'ts-bundler', type: 'module', module: 'esnext', resolution: 'bundler' },
  ].map((ts) => ({
    name: ts.label,
    dir: ts.dir,
    type: ts.type,
    typescript: true,
    files: {
      'index.ts': program({ typed: true, header: TS_IMPORTS }),
      'tsconfig.json': JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: ts.module,
            moduleResolution: ts.resolution,
            strict: true,
            esModuleInterop: true,
            skipLibCheck: false,
            types: ['node'],
            outDir: 'out',
          },
          files: ['index.ts'],
        },
        null,
        2,
      ),
    },
    // Bundler resolution is for code a bundler will process; node runs its ESM output as is here.
    compile: true,
    run: ['out/index.js'],
  })),
];

for (const consumer of consumers) {
  check(consumer.name, () => {
    const dir = join(work, consumer.dir);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${consumer.dir}`, private: true, type: consumer.type }, null, 2));
    for (const [name, text] of Object.entries(consumer.files)) writeFileSync(join(dir, name), text);
    const deps = [tarball];
    if (consumer.typescript) deps.push(`typescript@${installedVersion('typescript')}`, `@types/node@${installedVersion('@types/node')}`);
    run('npm', ['install', npmMode, '--no-audit', '--no-fund', '--no-package-lock', ...deps], { cwd: dir });
    if (consumer.compile) run(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: dir });
    run(process.execPath, consumer.run, { cwd: dir });
  });
}

check('the caibo-callbacks binary (installed bin)', () => {
  const dir = join(work, 'cjs');
  const cli = join(dir, 'node_modules', '.bin', 'caibo-callbacks');
  run(cli, ['--help'], { cwd: dir });
  const signature = run(cli, ['sign', 'id=1'], { cwd: dir, env: { ...process.env, CAIBO_SECRET: 'caibo_test_sk_consumer' } }).trim();
  const expected = run(process.execPath, ['-e', "process.stdout.write(require('caibo-callbacks/testing').signPayload('id=1', 'caibo_test_sk_consumer'))"], { cwd: dir });
  if (signature !== expected) throw new Error(`sign printed ${signature}, signPayload gives ${expected}`);
  const usage = spawnSync(cli, ['send'], { cwd: dir, encoding: 'utf8', env: { ...process.env, CAIBO_SECRET: 'x' } });
  if (usage.status !== 2) throw new Error(`"send" without a URL exited ${usage.status}, expected 2`);
});

if (hasPrometheus) {
  check('caibo-callbacks/prometheus with the consumer\'s prom-client', () => {
    const dir = join(work, 'cjs');
    run('npm', ['install', npmMode, '--no-audit', '--no-fund', '--no-package-lock', tarball, `prom-client@${installedVersion('prom-client')}`], { cwd: dir });
    writeFileSync(
      join(dir, 'prometheus.js'),
      `const { Registry } = require('prom-client');
const { caiboCallbacks } = require('caibo-callbacks');
const { registerCaiboMetrics } = require('caibo-callbacks/prometheus');
const registry = new Registry();
registerCaiboMetrics(caiboCallbacks({ secret: 's', onStatus() {} }), { registry });
registry.metrics().then((text) => {
  if (!/^caibo_callbacks_received_total 0$/m.test(text)) { console.error(text); process.exit(1); }
});
`,
    );
    run(process.execPath, ['prometheus.js'], { cwd: dir });
  });
}

finish();

function finish() {
  if (failures.length > 0) {
    console.log(`\n${failures.length} check(s) failed: ${failures.join('; ')}\nWork directory kept: ${work}`);
    process.exit(1);
  }
  if (args.has('--keep')) console.log(`\nWork directory kept: ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log('\nThe packed package passed every check.');
  process.exit(0);
}

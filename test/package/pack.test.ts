/**
 * The published package, as a merchant gets it: `npm pack`, install the tarball into an empty
 * folder, then use it from CommonJS, from ESM and from TypeScript (both module kinds). Express is
 * an optional peer: the router must serve plain node:http without ever loading it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const TSC = path.join(ROOT, 'node_modules/.bin/tsc');
const PROJECT_TYPES = path.join(ROOT, 'node_modules/@types');

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'test' } });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${e.message}`);
  }
}

/** A program that mounts the router on plain node:http and sends the published example twice. */
const SMOKE = (load: string) => `${load}
const http = require_or_import_http;
const received = [];
const router = caiboCallbacks({ secret: 'caibo_test_sk_pack', onStatus: (event) => { received.push(event); } });
const server = http.createServer((req, res) => router(req, res, () => { res.statusCode = 404; res.end('next'); }));
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const send = async (path, body) => {
    const r = await fetch('http://127.0.0.1:' + port + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': signPayload(body, 'caibo_test_sk_pack') },
      body,
    });
    return r.status;
  };
  const statuses = [await send('/caibo', PUBLISHED_EXAMPLE_BODY), await send('/caibowh', PUBLISHED_EXAMPLE_BODY), await send('/other', 'x=1')];
  const bad = await fetch('http://127.0.0.1:' + port + '/caibo', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': 'AAAA' }, body: 'id=1' });
  server.close();
  await router.close();
  console.log(JSON.stringify({
    statuses: [...statuses, bad.status],
    calls: received.length,
    id: received[0] && received[0].paymentRequestId,
    sample: sampleNotification().id,
    store: typeof MemoryStore,
    error: new CallbackError('signature.invalid', 'x').status,
    // Serving node:http must not load Express (it may be installed, pulled in as a peer of a dependency).
    expressLoaded: Object.keys(require.cache).some((file) => /[\\/]node_modules[\\/]express[\\/]/.test(file)),
    libraryLoaded: Object.keys(require.cache).some((file) => /[\\/]node_modules[\\/]raw-body[\\/]/.test(file)),
  }));
});
`;

const EXPECTED = {
  statuses: [200, 200, 404, 401],
  calls: 1,
  id: '16772761082427695',
  sample: '16772761082427695',
  store: 'function',
  error: 401,
  expressLoaded: false,
  libraryLoaded: true,
};

/** A TypeScript consumer; the @ts-expect-error lines fail the compile if the types were `any`. */
const CONSUMER_TS = `import { caiboCallbacks, CallbackError, MemoryStore, type CaiboEvent, type CallbackStore, type ClaimResult, type CaiboCallbacksOptions } from 'caibo-callbacks';
import { signPayload, sampleNotification, PUBLISHED_EXAMPLE_BODY } from 'caibo-callbacks/testing';

function onStatus(event: CaiboEvent): void {
  if (event.kind === 'payment') {
    const id: string = event.paymentRequestId;
    const amount: string | null = event.grossAmount;
    void id;
    void amount;
  } else {
    const status: string = event.transStatus;
    void status;
  }
}

const store: CallbackStore = new MemoryStore({ maxEntries: 10 });
const options: CaiboCallbacksOptions = { secret: ['a', 'b'], allowIps: ['203.0.113.0/24'], store, onStatus };
const router = caiboCallbacks(options);
void router.close();
const claim: Promise<ClaimResult> = store.claim('k', { leaseMs: 1000 });
void claim;
const signature: string = signPayload(PUBLISHED_EXAMPLE_BODY, 'a');
const fields: Record<string, string> = sampleNotification({ id: '1' });
const status: number = new CallbackError('payload.invalid', 'x').status;
void signature;
void fields;
void status;

// @ts-expect-error secret must be a string or a list of strings
caiboCallbacks({ secret: 42, onStatus });
// @ts-expect-error onStatus is required
caiboCallbacks({ secret: 'a' });
// @ts-expect-error not an error type
new CallbackError('no.such.type', 'x');
`;

function tsconfig(module: 'node16'): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module,
      moduleResolution: module,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
    },
    files: ['index.ts'],
  });
}

describe('the packed package', () => {
  let work: string;
  let consumer: string;

  beforeAll(() => {
    const needed = ['index.cjs', 'index.mjs', 'index.d.ts', 'index.d.mts', 'testing.cjs', 'testing.mjs', 'testing.d.ts', 'testing.d.mts'];
    if (needed.some((file) => !existsSync(path.join(ROOT, 'dist', file)))) run('npm', ['run', 'build', '--silent'], ROOT);
    work = mkdtempSync(path.join(tmpdir(), 'caibo-pack-'));
    run('npm', ['pack', '--silent', '--pack-destination', work], ROOT);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (tarball === undefined) throw new Error(`npm pack left no tarball in ${work}`);
    consumer = path.join(work, 'consumer');
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--silent', path.join(work, tarball)], consumer);
    // A TypeScript merchant app has @types/node and @types/express; lend it the project's.
    if (!existsSync(path.join(consumer, 'node_modules/@types'))) symlinkSync(PROJECT_TYPES, path.join(consumer, 'node_modules/@types'));
  }, 240_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships dist only', () => {
    const installed = path.join(consumer, 'node_modules/caibo-callbacks');
    expect(existsSync(path.join(installed, 'dist/index.cjs'))).toBe(true);
    expect(existsSync(path.join(installed, 'dist/index.mjs'))).toBe(true);
    expect(existsSync(path.join(installed, 'src'))).toBe(false);
    expect(existsSync(path.join(installed, 'test'))).toBe(false);
  });

  it("works with require('caibo-callbacks') and require('caibo-callbacks/testing')", () => {
    const load =
      "const { caiboCallbacks, MemoryStore, CallbackError } = require('caibo-callbacks');\n" +
      "const { signPayload, sampleNotification, PUBLISHED_EXAMPLE_BODY } = require('caibo-callbacks/testing');";
    writeFileSync(path.join(consumer, 'smoke.cjs'), SMOKE(load).replace('require_or_import_http', "require('node:http')"));
    expect(JSON.parse(run('node', ['smoke.cjs'], consumer))).toEqual(EXPECTED);
  });

  it("works with import { caiboCallbacks } from 'caibo-callbacks' and the testing subpath", () => {
    const load =
      "import { caiboCallbacks, MemoryStore, CallbackError } from 'caibo-callbacks';\n" +
      "import { signPayload, sampleNotification, PUBLISHED_EXAMPLE_BODY } from 'caibo-callbacks/testing';\n" +
      "import * as nodeHttp from 'node:http';\nimport { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);";
    writeFileSync(path.join(consumer, 'smoke.mjs'), SMOKE(load).replace('require_or_import_http', 'nodeHttp'));
    expect(JSON.parse(run('node', ['smoke.mjs'], consumer))).toEqual(EXPECTED);
  });

  it.each([
    ['CommonJS', 'commonjs', 'node16'],
    ['ESM', 'module', 'node16'],
  ] as const)('type-checks a TypeScript consumer (%s) against the installed types', (name, type, module) => {
    const dir = path.join(work, `ts-${type}-${module}`);
    mkdirSync(dir);
    // The consumer resolves caibo-callbacks (and its dependencies' types) from the installed folder.
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `ts-${type}`, version: '1.0.0', private: true, type }));
    execFileSync('ln', ['-s', path.join(consumer, 'node_modules'), path.join(dir, 'node_modules')]);
    writeFileSync(path.join(dir, 'tsconfig.json'), tsconfig(module));
    writeFileSync(path.join(dir, 'index.ts'), CONSUMER_TS);
    expect(run(TSC, ['-p', dir], dir)).toBe('');
    if (name !== 'CommonJS') return;
    // And a wrong use is caught, so the check above is not vacuous.
    writeFileSync(path.join(dir, 'index.ts'), `${CONSUMER_TS}\nconst n: number = sampleNotification().id;\n`);
    expect(() => run(TSC, ['-p', dir], dir)).toThrow(/Type 'string' is not assignable to type 'number'/);
  }, 120_000);
});

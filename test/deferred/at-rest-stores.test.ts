/**
 * Payer data at rest in the durable stores (issue 8): the raw rows and keys of Redis, PostgreSQL
 * and SQLite, read directly after deferred events with payer data, hold no payer value in
 * plaintext with `encryption` on, and none at all with `payerData: 'drop'`. A changed byte of a
 * stored ciphertext stops that event only; rotating keys needs no migration, and a record whose
 * key was removed fails closed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { caiboCallbacks, type CaiboCallbacksOptions, type CaiboEvent } from '../../src';
import type { CallbackError } from '../../src/errors';
import { PostgresStore } from '../../src/stores/postgres';
import { RedisStore } from '../../src/stores/redis';
import { SqliteStore } from '../../src/stores/sqlite';
import type { CallbackStore, InboxStore } from '../../src/stores/types';
import { sampleNotification } from '../../src/testing';
import { postSigned, SECRET, serve, until } from '../inline/support';

type Store = CallbackStore & InboxStore;

/** The payer fields of the published example, with a member id no other field shares. */
const PAYER = { clientName: 'Client Name', clientEmail: 'client@email.com', clientPhone: '1234567890', clientMemberId: 'member-7731-x', notes: 'Payment notes' };
const PAYER_VALUES = Object.values(PAYER);

/** One durable backend, read raw. Each router gets its own store instance (closing the router closes it). */
interface RawBackend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  store(): Store;
  /**
   * Everything the backend holds for this test run, as text: every key and field, every row (and
   * for SQLite the file's bytes, unless `rowsOnly`).
   */
  dump(rowsOnly?: boolean): Promise<string>;
  /** The stored payload of inbox record `key`, and a way to overwrite it. */
  payload(key: string): Promise<string>;
  setPayload(key: string, payload: string): Promise<void>;
}

function redisBackend(): RawBackend {
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  const prefix = `test:at-rest:${randomUUID()}:`;
  const record = (key: string): string => `${prefix}{inbox}:r:${key}`;
  return {
    name: 'Redis',
    setup: () => redis.connect(),
    teardown: async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
    store: () => new RedisStore({ client: redis, prefix }),
    dump: async () => {
      const out: string[] = [];
      for (const key of await redis.keys(`${prefix}*`)) {
        const type = await redis.type(key);
        const value =
          type === 'hash'
            ? await redis.hgetall(key)
            : type === 'string'
              ? await redis.get(key)
              : type === 'zset'
                ? await redis.zrange(key, 0, -1, 'WITHSCORES')
                : type === 'list'
                  ? await redis.lrange(key, 0, -1)
                  : `unexpected type ${type}`;
        out.push(`${key} ${JSON.stringify(value)}`);
      }
      return out.join('\n');
    },
    payload: async (key) => (await redis.hget(record(key), 'payload'))!,
    setPayload: async (key, payload) => {
      await redis.hset(record(key), 'payload', payload);
    },
  };
}

function postgresBackend(): RawBackend {
  const pool = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/test', max: 4 });
  pool.on('error', () => undefined);
  const schema = `test_at_rest_${randomUUID().replace(/-/g, '')}`;
  const tables = ['cb', 'cb_states', 'cb_inbox'].map((t) => `"${schema}"."${t}"`);
  return {
    name: 'PostgreSQL',
    setup: async () => {
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await new PostgresStore({ pool, schema, table: 'cb' }).init();
    },
    teardown: async () => {
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    },
    store: () => new PostgresStore({ pool, schema, table: 'cb', purgeIntervalMs: 0 }),
    dump: async () => {
      const out: string[] = [];
      for (const table of tables) out.push(`${table} ${JSON.stringify((await pool.query(`SELECT * FROM ${table}`)).rows)}`);
      return out.join('\n');
    },
    payload: async (key) => (await pool.query(`SELECT payload FROM ${tables[2]} WHERE key = $1`, [key])).rows[0].payload as string,
    setPayload: async (key, payload) => {
      await pool.query(`UPDATE ${tables[2]} SET payload = $2 WHERE key = $1`, [key, payload]);
    },
  };
}

function sqliteBackend(): RawBackend {
  const dir = mkdtempSync(path.join(tmpdir(), 'caibo-at-rest-'));
  const file = path.join(dir, 'callbacks.sqlite');
  let db: Database.Database | undefined;
  return {
    name: 'SQLite',
    setup: async () => {
      await new SqliteStore({ path: file }).close();
      db = new Database(file);
    },
    teardown: async () => {
      db?.close();
      rmSync(dir, { recursive: true, force: true });
    },
    store: () => new SqliteStore({ path: file, purgeIntervalMs: 0 }),
    dump: async (rowsOnly = false) => {
      const out: string[] = [];
      const tables = db!.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      for (const { name } of tables) out.push(`${name} ${JSON.stringify(db!.prepare(`SELECT * FROM "${name}"`).all())}`);
      // The file itself too (and its write-ahead log): no plaintext in a page the rows do not show.
      if (!rowsOnly) for (const f of [file, `${file}-wal`]) if (existsSync(f)) out.push(readFileSync(f).toString('latin1'));
      return out.join('\n');
    },
    payload: async (key) => (db!.prepare('SELECT payload FROM caibo_callbacks_inbox WHERE key = ?').get(key) as { payload: string }).payload,
    setPayload: async (key, payload) => {
      db!.prepare('UPDATE caibo_callbacks_inbox SET payload = ? WHERE key = ?').run(payload, key);
    },
  };
}

const keyOf = (transactionId: string): string => `16772761082427695:${transactionId}:1:1`;
/** Event `transactionId` of the published example, carrying the payer fields above. */
const fields = (transactionId: string): Record<string, string> => ({ ...PAYER, transactionId });

/** A deferred-mode router on `store`, served on a loopback port; `paused` keeps its worker from leasing. */
async function start(
  store: Store,
  options: Partial<CaiboCallbacksOptions> & { onStatus?: CaiboCallbacksOptions['onStatus']; paused?: boolean },
): Promise<{ url: string; router: ReturnType<typeof caiboCallbacks>; stop(): Promise<void> }> {
  const { paused = false, ...rest } = options;
  // An API-only process: this router's worker finds nothing to lease, so records stay as written.
  if (paused) jest.spyOn(store, 'lease').mockResolvedValue([]);
  const router = caiboCallbacks({
    secret: SECRET,
    store,
    mode: 'deferred',
    pollIntervalMs: 20,
    backoff: { initialMs: 10, maxMs: 20 },
    logger: { info() {}, warn() {}, error() {} },
    onStatus: () => undefined,
    ...rest,
  });
  const server = await serve((req, res) => router(req, res));
  return {
    url: server.url,
    router,
    stop: async () => {
      await server.close();
      await router.close({ timeoutMs: 2_000 });
    },
  };
}

function expectNoPayerData(raw: string): void {
  for (const value of PAYER_VALUES) expect(raw.includes(value) ? value : null).toBeNull();
}

/** The key id a sealed payload names (`enc:v1:<kid>:<nonce>:<ciphertext>`). */
const kidOf = (payload: string): string => payload.split(':')[2]!;

describe.each<[string, () => RawBackend]>([
  ['redis', redisBackend],
  ['postgres', postgresBackend],
  ['sqlite', sqliteBackend],
])('payer data at rest in the %s store', (_tag, makeBackend) => {
  const backend = makeBackend();
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it('with encryption on, no raw row or key holds a payer value: pending, running, dead and done records', async () => {
    expect(sampleNotification(PAYER)).toMatchObject(PAYER);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const handled: CaiboEvent[] = [];
    const app = await start(backend.store(), {
      encryption: { keys: [randomBytes(32)] },
      maxAttempts: 2,
      concurrency: 3,
      onStatus: async (event) => {
        // The handler's own message quotes the payer: it must not reach the store either.
        if (event.transactionId === '300002') throw new Error(`cannot email ${event.kind === 'payment' ? event.client.email : ''}`);
        await gate;
        handled.push(event);
      },
    });
    try {
      for (const id of ['300001', '300002', '300003']) expect((await postSigned(app.url, fields(id))).status).toBe(200);
      await until(async () => (await app.router.dead()).length === 1);
      const raw = await backend.dump();
      expectNoPayerData(raw);
      // What is there: plaintext keys and bookkeeping, sealed payloads.
      for (const id of ['300001', '300002', '300003']) expect(raw).toContain(keyOf(id));
      expect(raw).toContain('enc:v1:');
      const [dead] = await app.router.dead();
      expect(dead!.lastError).toContain('cannot email [redacted]');

      open();
      await until(() => handled.length === 2);
      await until(async () => (await app.router.pending()).length === 0);
      // The handler still received the payer data, decrypted.
      expect(handled.map((e) => e.kind === 'payment' && e.client.email)).toEqual(['client@email.com', 'client@email.com']);
      expectNoPayerData(await backend.dump());
    } finally {
      await app.stop();
    }
  });

  it("with payerData: 'drop', payer fields are absent altogether; done records keep no payload", async () => {
    const store = backend.store();
    const writer = await start(store, { payerData: 'drop', paused: true });
    await postSigned(writer.url, fields('310001'));
    await writer.stop();
    const stored = await backend.payload(keyOf('310001'));
    // Plaintext (no encryption here), so the check reads the payload itself.
    expect(JSON.parse(stored)).toMatchObject({ key: keyOf('310001'), client: { id: '16772748432912191', name: null, email: null, phone: null, memberId: null }, notes: null });
    expectNoPayerData(await backend.dump());

    // Kept payer data in plaintext, then handled: a done record drops its payload.
    const handled: CaiboEvent[] = [];
    const runner = await start(backend.store(), { onStatus: (e) => void handled.push(e) });
    try {
      await postSigned(runner.url, fields('310002'));
      await until(() => handled.length === 2);
      await until(async () => (await runner.router.pending()).length === 0);
      const dropped = handled.find((e) => e.key === keyOf('310001'))!;
      const kept = handled.find((e) => e.key === keyOf('310002'))!;
      expect(dropped.kind === 'payment' && dropped.client.email).toBe(null);
      expect(kept.kind === 'payment' && kept.client.email).toBe('client@email.com');
      expect(await backend.payload(keyOf('310002'))).toBe('');
      // Rows only: SQLite keeps old page images (here, of the plaintext payload written before it
      // was handled) in free space and the WAL until they are overwritten.
      expectNoPayerData(await backend.dump(true));
    } finally {
      await runner.stop();
    }
  });

  it('a changed byte of a stored ciphertext: that event is not delivered and is reported; others are unaffected', async () => {
    const key = randomBytes(32);
    const writer = await start(backend.store(), { encryption: { keys: [key] }, paused: true });
    for (const id of ['320001', '320002', '320003']) expect((await postSigned(writer.url, fields(id))).status).toBe(200);
    await writer.stop();

    const sealed = await backend.payload(keyOf('320002'));
    const parts = sealed.split(':');
    const bytes = Buffer.from(parts[4]!, 'base64');
    bytes[7] = bytes[7]! ^ 0x20;
    await backend.setPayload(keyOf('320002'), [...parts.slice(0, 4), bytes.toString('base64')].join(':'));

    const handled: string[] = [];
    const errors: CallbackError[] = [];
    const runner = await start(backend.store(), { encryption: { keys: [key] }, onStatus: (e) => void handled.push(e.key), onError: (e) => void errors.push(e) });
    try {
      await until(() => handled.length === 2 && errors.length === 1);
      await until(async () => (await runner.router.pending()).length === 0);
      expect(handled.sort()).toEqual([keyOf('320001'), keyOf('320003')]);
      expect(errors.map((e) => [e.type, /failed authentication/.test(e.message)])).toEqual([['inbox.undecryptable', true]]);
      const dead = (await runner.router.dead()).filter((d) => d.key.includes(':3200'));
      expect(dead.map((d) => [d.key, d.event, d.lastError?.startsWith('inbox.undecryptable')])).toEqual([[keyOf('320002'), null, true]]);
      // Parked, not retried: it stays undelivered.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(handled).toHaveLength(2);
      expect(errors).toHaveLength(1);
    } finally {
      await runner.stop();
    }
  });
});

describe('key rotation on a durable store (PostgreSQL)', () => {
  const backend = postgresBackend();
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it('[A] → [B, A]: old records delivered and replayable; [B] alone: old ones fail closed, new ones work', async () => {
    const A = randomBytes(32).toString('base64');
    const B = randomBytes(32).toString('hex');

    // Written under A by a process that does not run them.
    const writerA = await start(backend.store(), { encryption: { keys: [A] }, paused: true });
    for (const id of ['330001', '330002']) expect((await postSigned(writerA.url, fields(id))).status).toBe(200);
    await writerA.stop();
    const kidA = kidOf(await backend.payload(keyOf('330001')));
    expect(kidOf(await backend.payload(keyOf('330002')))).toBe(kidA);

    // [B, A]: both delivered; one fails once (maxAttempts 1, so dead) and is replayed.
    let failing = true;
    const handled: string[] = [];
    const rotated = await start(backend.store(), {
      encryption: { keys: [B, A] },
      maxAttempts: 1,
      onStatus: (e) => {
        if (e.key === keyOf('330002') && failing) throw new Error('warehouse down');
        handled.push(e.key);
      },
    });
    try {
      await until(async () => handled.length === 1 && (await rotated.router.dead()).length === 1);
      const [dead] = await rotated.router.dead();
      expect([dead!.key, dead!.event?.kind === 'payment' && dead!.event.client.email]).toEqual([keyOf('330002'), 'client@email.com']);
      failing = false;
      expect(await rotated.router.replay(keyOf('330002'))).toBe(true);
      await until(() => handled.length === 2);
      expect(handled).toEqual([keyOf('330001'), keyOf('330002')]);
    } finally {
      await rotated.stop();
    }

    // Queued but not yet run: one written under [B, A] (sealed with B), one by a process still on [A].
    const writerBA = await start(backend.store(), { encryption: { keys: [B, A] }, paused: true });
    await postSigned(writerBA.url, fields('330004'));
    await writerBA.stop();
    const writerA2 = await start(backend.store(), { encryption: { keys: [A] }, paused: true });
    await postSigned(writerA2.url, fields('330005'));
    await writerA2.stop();
    const kidB = kidOf(await backend.payload(keyOf('330004')));
    expect(kidB).not.toBe(kidA);
    expect(kidOf(await backend.payload(keyOf('330005')))).toBe(kidA);

    // [B] alone: the A record is never delivered, reported and dead; B records and new ones work.
    const onlyB: string[] = [];
    const errors: CallbackError[] = [];
    const dropped = await start(backend.store(), { encryption: { keys: [B] }, onStatus: (e) => void onlyB.push(e.key), onError: (e) => void errors.push(e) });
    try {
      await postSigned(dropped.url, fields('330006'));
      await until(async () => onlyB.length === 2 && errors.length === 1 && (await dropped.router.pending()).length === 0);
      expect(onlyB.sort()).toEqual([keyOf('330004'), keyOf('330006')]);
      expect(errors.map((e) => e.type)).toEqual(['inbox.undecryptable']);
      expect(errors[0]!.message).toMatch(/not in encryption\.keys/);
      expect((await dropped.router.dead()).map((d) => [d.key, d.event])).toEqual([[keyOf('330005'), null]]);
      // Replaying it without its key fails closed again.
      expect(await dropped.router.replay(keyOf('330005'))).toBe(true);
      await until(() => errors.length === 2);
      await until(async () => (await dropped.router.dead()).length === 1);
      expect(onlyB).toHaveLength(2);
    } finally {
      await dropped.stop();
    }

    // With A configured again, the parked record is replayed and delivered.
    const restored: string[] = [];
    const again = await start(backend.store(), { encryption: { keys: [B, A] }, onStatus: (e) => void restored.push(e.key) });
    try {
      expect(await again.router.replay(keyOf('330005'))).toBe(true);
      await until(() => restored.length === 1);
      expect(restored).toEqual([keyOf('330005')]);
      expect(await again.router.dead()).toEqual([]);
    } finally {
      await again.stop();
    }
  });
});

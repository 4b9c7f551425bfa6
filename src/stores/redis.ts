import { createHash, randomUUID } from 'node:crypto';
import { checkTimeout, withTimeout } from './timeout';
import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions, PaymentState, PaymentStateStore } from './types';

export { StoreTimeoutError } from './timeout';

/** An ioredis client (`new Redis()`): the store uses its `call` method. */
export interface IoRedisClientLike {
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
}

/** A node-redis v4/v5 client (`createClient()`, connected): the store uses its `sendCommand` method. */
export interface NodeRedisClientLike {
  sendCommand(args: string[]): Promise<unknown>;
}

/** Options for {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * A connected client from `ioredis` or `redis` (node-redis v4/v5). The store never creates,
   * connects or closes it: the application owns the connection.
   */
  client: IoRedisClientLike | NodeRedisClientLike;
  /** Prepended to every dedupe key, so several apps can share one Redis. Defaults to `'caibo:'`. */
  prefix?: string;
  /**
   * How long one operation may take before it fails, in milliseconds; `0` waits forever. A
   * failed claim makes the router answer 503 with `Retry-After`, so the provider redelivers
   * once Redis is back. Defaults to `2000`.
   */
  operationTimeoutMs?: number;
}

/*
 * One Redis string per event key (`<prefix><key>`): `L:<token>` while a lease is held, `D` once
 * done; the ordering guard's states live at `<prefix>state:<paymentRequestId>` (event keys start
 * with a digit or `3ds:`, so the two never meet). The lease and
 * the retention are the key's own expiry (PX), so Redis forgets both without a sweeper. Each
 * script reads and writes one key, declared in KEYS, so it also runs on Redis Cluster.
 */
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'L:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == 'D' then return 3 end
return 2`;

const COMPLETE = `
if redis.call('GET', KEYS[1]) == 'L:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'D', 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == 'L:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

interface Script {
  source: string;
  sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = { claim: script(CLAIM), complete: script(COMPLETE), release: script(RELEASE) };

type Send = (args: string[]) => Promise<unknown>;

/** Finds how to send a raw command with whichever client was given. */
function commandSender(client: unknown): Send {
  const c = client as Record<string, unknown> | null;
  if (c !== null && typeof c === 'object') {
    // ioredis: lowercase command methods plus `call(command, ...args)`.
    if (typeof c.call === 'function' && typeof c.evalsha === 'function') {
      const call = c.call as (command: string, ...args: string[]) => Promise<unknown>;
      return (args) => call.call(c, ...(args as [string, ...string[]]));
    }
    // node-redis v4/v5: camel-case helpers plus `sendCommand([command, ...args])`.
    if (typeof c.sendCommand === 'function' && typeof c.evalSha === 'function') {
      const send = c.sendCommand as (args: string[]) => Promise<unknown>;
      return (args) => send.call(c, args);
    }
  }
  throw new TypeError(
    'RedisStore: `client` must be an ioredis client (new Redis()) or a node-redis v4/v5 client (createClient(), connected)',
  );
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * A dedupe store on Redis, shared by every process and machine that uses the same Redis and
 * prefix. Claim, complete and release are each one atomic Lua script (one round trip); leases and
 * retention are Redis key expiry.
 *
 * ```ts
 * import Redis from 'ioredis';
 * import { RedisStore } from 'caibo-callbacks/redis';
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL), prefix: 'shop:caibo:' });
 * ```
 */
export class RedisStore implements CallbackStore, PaymentStateStore {
  readonly prefix: string;
  readonly operationTimeoutMs: number;
  private readonly send: Send;

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('RedisStore: pass { client, prefix? }');
    this.send = commandSender(options.client);
    const { prefix = 'caibo:' } = options;
    if (typeof prefix !== 'string') throw new TypeError('RedisStore: prefix must be a string');
    this.prefix = prefix;
    this.operationTimeoutMs = checkTimeout('RedisStore', options.operationTimeoutMs, 2_000);
  }

  /**
   * Loads the scripts into Redis's script cache (SCRIPT LOAD), so each operation is an EVALSHA.
   * Optional: an operation that meets an empty cache (Redis restarted, failover) falls back to
   * EVAL, which loads the script again.
   */
  async init(): Promise<void> {
    await this.timed('init', async () => {
      for (const s of Object.values(SCRIPTS)) {
        const sha = await this.send(['SCRIPT', 'LOAD', s.source]);
        if (String(sha) !== s.sha) throw new Error(`RedisStore: SCRIPT LOAD answered ${String(sha)}, expected ${s.sha}`);
      }
    });
  }

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const token = randomUUID();
    const fullKey = this.prefix + key;
    const reply = await withTimeout(
      this.run(SCRIPTS.claim, fullKey, [token, String(opts.leaseMs)]),
      this.operationTimeoutMs,
      { store: 'RedisStore', operation: 'claim' },
      // A claim that lands after we gave up would hold the key for a whole lease: give it back.
      (late) => {
        if (Number(late) === 1) this.run(SCRIPTS.release, fullKey, [token]).catch(() => undefined);
      },
    );
    switch (Number(reply)) {
      case 1:
        return { status: 'claimed', token };
      case 2:
        return { status: 'in_flight' };
      case 3:
        return { status: 'done' };
      default:
        throw new Error(`RedisStore: unexpected claim reply ${String(reply)}`);
    }
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    await this.timed('complete', () => this.run(SCRIPTS.complete, this.prefix + key, [token, String(opts.retentionMs)]));
  }

  async release(key: string, token: string): Promise<void> {
    await this.timed('release', () => this.run(SCRIPTS.release, this.prefix + key, [token]));
  }

  /** The ordering guard's last final state of a payment request (`<prefix>state:<id>`), or `null`. */
  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    const value = await this.timed('getPaymentState', () => this.send(['GET', `${this.prefix}state:${paymentRequestId}`]));
    return value === null || value === undefined ? null : (JSON.parse(String(value)) as PaymentState);
  }

  /** Records the last final state of a payment request, expiring after `retentionMs`. */
  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    const key = `${this.prefix}state:${paymentRequestId}`;
    await this.timed('setPaymentState', () => this.send(['SET', key, JSON.stringify(state), 'PX', String(opts.retentionMs)]));
  }

  /** Nothing to free: the client belongs to the application, which quits it. */
  async close(): Promise<void> {}

  private timed<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return withTimeout(fn(), this.operationTimeoutMs, { store: 'RedisStore', operation });
  }

  /** EVALSHA, falling back to EVAL (which reloads the script) when Redis has lost its cache. */
  private async run(s: Script, key: string, args: string[]): Promise<unknown> {
    try {
      return await this.send(['EVALSHA', s.sha, '1', key, ...args]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.send(['EVAL', s.source, '1', key, ...args]);
    }
  }
}

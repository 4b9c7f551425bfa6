import { createHash, randomUUID } from 'node:crypto';
import { Batcher, batchOptions, type BatchOptions } from './batch';
import { batchDeadline, checkTimeout, withTimeout } from './timeout';
import type {
  CallbackStore,
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InboxRecord,
  InboxState,
  InboxStore,
  LeasedRecord,
  PaymentState,
  PaymentStateStore,
} from './types';

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
  /**
   * Batching: the claims (and the completions, the deferred inbox's enqueues and acks) that
   * concurrent requests make in one turn of the event loop go to Redis as one script call, so
   * Redis runs one script, and the client builds and parses one command, for many events. A
   * request alone is sent at once, as before; under load, while `maxInFlight` calls of a kind
   * are out, the next one gathers everything that arrived meanwhile, up to `maxSize` events.
   * Each event keeps its own outcome (of two copies of a key in one batch, the first claims or
   * enqueues it and the second finds it taken), and the script is atomic, so a failed call
   * fails only the operations in it. `false` sends one script call per operation. On an ioredis
   * Cluster client, where the keys of one batch may live in different slots, only the inbox
   * (whose keys share one slot) batches. Defaults to `{ maxSize: 100, maxInFlight: 2 }`.
   */
  batch?: false | { maxSize?: number; maxInFlight?: number };
}

/** What one claim in a batch asks for. */
interface ClaimItem {
  key: string;
  token: string;
  leaseMs: number;
}

/** What one enqueue in a batch asks for. */
interface EnqueueItem {
  key: string;
  payload: string;
}

/** What one ack in a batch asks for. */
interface AckItem {
  key: string;
  token: string;
  retentionMs: number;
}

/** What one completion in a batch asks for: the key, and for a final payment state its key and JSON. */
interface CompleteItem {
  /** The store method that asked, named by its timeout error. */
  operation: 'complete' | 'setPaymentState' | 'completeWithState';
  key: string;
  /** `''` for a payment state alone (`setPaymentState`): no event key to complete. */
  token: string;
  retentionMs: number;
  stateKey?: string;
  state?: string;
}

/*
 * One Redis string per event key (`<prefix><key>`): `L:<token>` while a lease is held, `D` once
 * done; the ordering guard's states live at `<prefix>state:<paymentRequestId>` (event keys start
 * with a digit or `3ds:`, so the two never meet). The lease and
 * the retention are the key's own expiry (PX), so Redis forgets both without a sweeper. Each
 * script reads and writes the keys declared in its KEYS; the one that completes a key and records
 * a state touches two, and is not used on an ioredis Cluster (see completeWithState).
 */
// SET NX first: a new key (nearly every callback) costs one call, not a GET and a SET.
const CLAIM = `
if redis.call('SET', KEYS[1], 'L:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'D' then return 3 end
return 2`;

const COMPLETE = `
if redis.call('GET', KEYS[1]) == 'L:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'D', 'PX', ARGV[2])
  return 1
end
return 0`;

// KEYS: event key, state key. ARGV: token, retentionMs, state. Two keys: not on Cluster, where
// they may live in different slots (see completeWithState).
const COMPLETE_WITH_STATE = `
local done = 0
if redis.call('GET', KEYS[1]) == 'L:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'D', 'PX', ARGV[2])
  done = 1
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return done`;

// The batched claim. KEYS: the event keys. ARGV: token and leaseMs for each, in turn. The keys are
// claimed in order, so a second copy of a key in one batch finds the first one's lease.
const CLAIM_MANY = `
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, 'L:' .. ARGV[i * 2 - 1], 'NX', 'PX', ARGV[i * 2]) then
    out[i] = 1
  elseif redis.call('GET', key) == 'D' then
    out[i] = 3
  else
    out[i] = 2
  end
end
return out`;

// The batched completion. KEYS: event key and state key for each (the event key twice when there
// is no state; the state key twice for a state alone). ARGV: token ('' for a state alone),
// retentionMs and state ('' for none) for each. In order, so of two states for one payment
// request the later one stays, as two calls in turn would leave it.
const COMPLETE_MANY = `
for i = 1, #KEYS / 2 do
  local key = KEYS[i * 2 - 1]
  local token, retention, state = ARGV[i * 3 - 2], ARGV[i * 3 - 1], ARGV[i * 3]
  if token ~= '' and redis.call('GET', key) == 'L:' .. token then
    redis.call('SET', key, 'D', 'PX', retention)
  end
  if state ~= '' then
    redis.call('SET', KEYS[i * 2], state, 'PX', retention)
  end
end
return 1`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == 'L:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/*
 * The deferred-mode inbox, under `<prefix>{inbox}:` (one hash tag, so every inbox key of a prefix
 * lives on one Cluster slot and a script may touch several):
 * - `r:<key>`: a hash per record (payload, state, attempts, next, err, created, seq, token, until);
 * - `due`: a sorted set of pending and running records, scored by when they are due (the next
 *   attempt while pending, the lease end while running), so one ZRANGEBYSCORE finds both new work
 *   and leases a dead process left behind;
 * - `queue` / `dead`: pending-and-running / dead records scored by enqueue order, for listing;
 * - `seq`: the enqueue counter.
 * Done records leave every set, drop their payload and expire with the retention (PEXPIRE), so
 * a redelivery within it is a duplicate and Redis forgets them without a sweeper. Time is
 * Redis's clock (TIME), the same for every app server. The lease script reads the record hashes
 * the due set names, keys it cannot declare in advance: it needs the hash tag on Cluster.
 */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: record, due, queue, seq. ARGV: key, payload.
const ENQUEUE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
${NOW}
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'payload', ARGV[2], 'state', 'pending', 'attempts', 0, 'next', now, 'created', now, 'seq', seq)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
return 1`;

// KEYS: due. ARGV: record key prefix, limit, leaseMs, token base.
const LEASE = `
${NOW}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local lease = now + tonumber(ARGV[3])
for i, key in ipairs(due) do
  local record = ARGV[1] .. key
  local state = redis.call('HGET', record, 'state')
  if state == 'pending' or state == 'running' then
    local token = ARGV[4] .. ':' .. i
    local attempts = redis.call('HINCRBY', record, 'attempts', 1)
    redis.call('HSET', record, 'state', 'running', 'token', token, 'until', lease)
    redis.call('ZADD', KEYS[1], lease, key)
    local f = redis.call('HMGET', record, 'payload', 'next', 'err', 'created')
    out[#out + 1] = { key, token, attempts, f[1], f[2], f[3], f[4] }
  else
    -- Not pending or running: a stale entry; the record left the due set's care.
    redis.call('ZREM', KEYS[1], key)
  end
end
return out`;

// KEYS: record, due, queue. ARGV: key, token, retentionMs.
const ACK = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'payload', '')
redis.call('HDEL', KEYS[1], 'token', 'until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// The batched enqueue. KEYS: due, queue, seq, then the record of each event. ARGV: key and payload
// of each. In order, so a second copy of a key in one batch is a duplicate of the first.
const ENQUEUE_MANY = `
${NOW}
local out = {}
for i = 4, #KEYS do
  local key, payload = ARGV[(i - 4) * 2 + 1], ARGV[(i - 4) * 2 + 2]
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[#out + 1] = 0
  else
    local seq = redis.call('INCR', KEYS[3])
    redis.call('HSET', KEYS[i], 'payload', payload, 'state', 'pending', 'attempts', 0, 'next', now, 'created', now, 'seq', seq)
    redis.call('ZADD', KEYS[1], now, key)
    redis.call('ZADD', KEYS[2], seq, key)
    out[#out + 1] = 1
  end
end
return out`;

// The batched ack. KEYS: due, queue, then the record of each event. ARGV: key, token and
// retentionMs of each.
const ACK_MANY = `
for i = 3, #KEYS do
  local key, token, retention = ARGV[(i - 3) * 3 + 1], ARGV[(i - 3) * 3 + 2], ARGV[(i - 3) * 3 + 3]
  local f = redis.call('HMGET', KEYS[i], 'state', 'token')
  if f[1] == 'running' and f[2] == token then
    redis.call('HSET', KEYS[i], 'state', 'done', 'payload', '')
    redis.call('HDEL', KEYS[i], 'token', 'until')
    redis.call('ZREM', KEYS[1], key)
    redis.call('ZREM', KEYS[2], key)
    redis.call('PEXPIRE', KEYS[i], retention)
  end
end
return 1`;

// KEYS: record, due, queue, dead. ARGV: key, token, error, retryAt ('' for dead).
const FAIL = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'token', 'until')
redis.call('HSET', KEYS[1], 'err', ARGV[3])
if ARGV[4] == '' then
  redis.call('HSET', KEYS[1], 'state', 'dead')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], redis.call('HGET', KEYS[1], 'seq'), ARGV[1])
else
  redis.call('HSET', KEYS[1], 'state', 'pending', 'next', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1`;

// KEYS: record, due, queue, dead. ARGV: key.
const REPLAY = `
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
${NOW}
redis.call('HSET', KEYS[1], 'state', 'pending', 'attempts', 0, 'next', now)
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'seq'), ARGV[1])
return 1`;

// KEYS: the listing set. ARGV: record key prefix, limit.
const LIST = `
local keys = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, key in ipairs(keys) do
  local f = redis.call('HMGET', ARGV[1] .. key, 'payload', 'state', 'attempts', 'next', 'err', 'created')
  if f[2] then out[#out + 1] = { key, f[1], f[2], f[3], f[4], f[5], f[6] } end
end
return out`;

interface Script {
  source: string;
  sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  claim: script(CLAIM),
  complete: script(COMPLETE),
  completeWithState: script(COMPLETE_WITH_STATE),
  claimMany: script(CLAIM_MANY),
  completeMany: script(COMPLETE_MANY),
  release: script(RELEASE),
  enqueue: script(ENQUEUE),
  lease: script(LEASE),
  ack: script(ACK),
  enqueueMany: script(ENQUEUE_MANY),
  ackMany: script(ACK_MANY),
  fail: script(FAIL),
  replay: script(REPLAY),
  list: script(LIST),
};

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

/** A reply field that may be a Redis nil. */
function text(value: unknown): string | null {
  return value === null || value === undefined || value === false ? null : String(value);
}

/**
 * A dedupe store on Redis, shared by every process and machine that uses the same Redis and
 * prefix. Claim, complete and release are each one atomic Lua script (one round trip), and the
 * operations of one kind that concurrent requests make share one script call (`batch`); leases
 * and retention are Redis key expiry. Its deferred-mode inbox is durable as far as Redis is (turn on
 * AOF or RDB persistence): each inbox operation is one script as well.
 *
 * ```ts
 * import Redis from 'ioredis';
 * import { RedisStore } from 'caibo-callbacks/redis';
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL), prefix: 'shop:caibo:' });
 * ```
 */
export class RedisStore implements CallbackStore, PaymentStateStore, InboxStore {
  /** The inbox survives an app restart (and a Redis restart, with Redis persistence on). */
  readonly durable = true;
  readonly prefix: string;
  readonly operationTimeoutMs: number;
  private readonly send: Send;
  /** An ioredis Cluster client: a script may only touch keys of one slot. */
  private readonly cluster: boolean;
  /** Batched claims and completions; `null` with `batch: false` or on a Cluster client. */
  private readonly claims: Batcher<ClaimItem, number> | null;
  private readonly completions: Batcher<CompleteItem, void> | null;
  /** Batched inbox writes: every inbox key shares the `{inbox}` hash tag, so these batch on a Cluster too. */
  private readonly enqueues: Batcher<EnqueueItem, number> | null;
  private readonly acks: Batcher<AckItem, void> | null;

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('RedisStore: pass { client, prefix? }');
    this.send = commandSender(options.client);
    this.cluster = (options.client as { isCluster?: unknown }).isCluster === true;
    const { prefix = 'caibo:' } = options;
    if (typeof prefix !== 'string') throw new TypeError('RedisStore: prefix must be a string');
    this.prefix = prefix;
    this.operationTimeoutMs = checkTimeout('RedisStore', options.operationTimeoutMs, 2_000);
    const batch: BatchOptions | null = batchOptions('RedisStore', options.batch, { maxSize: 100, maxInFlight: 2 });
    // On a Cluster, the keys of one batch may hash to different slots: one command per operation.
    const batched = batch !== null && !this.cluster;
    // Each batched operation keeps its own operationTimeoutMs through the batcher's deadline: one
    // timer per batch, not one per operation. A claim that lands after its time gives its key back.
    const deadline = <I, O>(operation: (item: I) => string, onLate?: (item: I, result: O) => void) =>
      batchDeadline('RedisStore', this.operationTimeoutMs, operation, onLate);
    this.claims = batched
      ? new Batcher(
          (items) => this.claimBatch(items),
          batch,
          deadline<ClaimItem, number>(() => 'claim', (item, status) => this.giveBack(status, item.key, item.token)),
        )
      : null;
    this.completions = batched
      ? new Batcher((items) => this.completeBatch(items), batch, deadline<CompleteItem, void>((item) => item.operation))
      : null;
    this.enqueues = batch === null ? null : new Batcher((items) => this.enqueueBatch(items), batch, deadline<EnqueueItem, number>(() => 'enqueue'));
    this.acks = batch === null ? null : new Batcher((items) => this.ackBatch(items), batch, deadline<AckItem, void>(() => 'ack'));
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
    const reply = this.claims
      ? await this.claims.add({ key: fullKey, token, leaseMs: opts.leaseMs })
      : await this.timed('claim', () => this.run(SCRIPTS.claim, fullKey, [token, String(opts.leaseMs)]), (late) => this.giveBack(late, fullKey, token));
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

  /**
   * A claim reply that landed after the claim was given up: if it took the key, release it, or
   * the key would stay leased (redeliveries answered 409) for a whole lease.
   */
  private giveBack(reply: unknown, fullKey: string, token: string): void {
    if (Number(reply) === 1) this.run(SCRIPTS.release, fullKey, [token]).catch(() => undefined);
  }

  /** One script call for a batch of claims: one reply (1 claimed, 2 in flight, 3 done) per item. */
  private async claimBatch(items: ClaimItem[]): Promise<number[]> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const item of items) {
      keys.push(item.key);
      args.push(item.token, String(item.leaseMs));
    }
    // The batcher fails each claim at its deadline and hands a late reply to giveBack.
    const reply = await this.runKeys(SCRIPTS.claimMany, keys, args);
    if (!Array.isArray(reply) || reply.length !== items.length) throw new Error('RedisStore: unexpected batched claim reply');
    return reply.map(Number);
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    if (this.completions) {
      await this.completions.add({ operation: 'complete', key: this.prefix + key, token, retentionMs: opts.retentionMs });
      return;
    }
    await this.timed('complete', () => this.run(SCRIPTS.complete, this.prefix + key, [token, String(opts.retentionMs)]));
  }

  /** One script call for a batch of completions, with the states of those that carry one. */
  private async completeBatch(items: CompleteItem[]): Promise<void[]> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const item of items) {
      keys.push(item.key, item.stateKey ?? item.key);
      args.push(item.token, String(item.retentionMs), item.state ?? '');
    }
    await this.runKeys(SCRIPTS.completeMany, keys, args);
    return items.map(() => undefined);
  }

  async release(key: string, token: string): Promise<void> {
    await this.timed('release', () => this.run(SCRIPTS.release, this.prefix + key, [token]));
  }

  /** The ordering guard's last final state of a payment request (`<prefix>state:<id>`), or `null`. */
  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    const value = await this.timed('getPaymentState', () => this.send(['GET', this.stateKey(paymentRequestId)]));
    return value === null || value === undefined ? null : (JSON.parse(String(value)) as PaymentState);
  }

  /** Records the last final state of a payment request, expiring after `retentionMs`. */
  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    if (this.completions) {
      // With the batch's completions: the deferred worker records a state after each handled event.
      const stateKey = this.stateKey(paymentRequestId);
      await this.completions.add({ operation: 'setPaymentState', key: stateKey, token: '', retentionMs: opts.retentionMs, stateKey, state: JSON.stringify(state) });
      return;
    }
    await this.timed('setPaymentState', () =>
      this.send(['SET', this.stateKey(paymentRequestId), JSON.stringify(state), 'PX', String(opts.retentionMs)]),
    );
  }

  /**
   * `complete` and `setPaymentState` in one script: one command instead of two (each command
   * costs the client a few microseconds of CPU, which showed in the bench's Redis row). On an
   * ioredis Cluster the two keys may live in different slots, so there they are two commands
   * sent together. The key is completed only if `token` holds it; the state is recorded either way.
   */
  async completeWithState(key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    if (this.cluster) {
      await Promise.all([this.complete(key, token, opts), this.setPaymentState(paymentRequestId, state, opts)]);
      return;
    }
    if (this.completions) {
      await this.completions.add({
        operation: 'completeWithState',
        key: this.prefix + key,
        token,
        retentionMs: opts.retentionMs,
        stateKey: this.stateKey(paymentRequestId),
        state: JSON.stringify(state),
      });
      return;
    }
    const retention = String(opts.retentionMs);
    await this.timed('completeWithState', () =>
      this.runKeys(SCRIPTS.completeWithState, [this.prefix + key, this.stateKey(paymentRequestId)], [token, retention, JSON.stringify(state)]),
    );
  }

  /** Inserts a pending record due now, unless `key` is in the inbox in any state (done ones until their retention ends). */
  async enqueue(key: string, payload: string): Promise<'enqueued' | 'duplicate'> {
    const reply = this.enqueues
      ? await this.enqueues.add({ key, payload })
      : await this.timed('enqueue', () =>
          this.runKeys(SCRIPTS.enqueue, [this.record(key), this.inbox('due'), this.inbox('queue'), this.inbox('seq')], [key, payload]),
        );
    return Number(reply) === 1 ? 'enqueued' : 'duplicate';
  }

  /** One script call for a batch of enqueues: 1 (enqueued) or 0 (duplicate) per item. */
  private async enqueueBatch(items: EnqueueItem[]): Promise<number[]> {
    const keys = [this.inbox('due'), this.inbox('queue'), this.inbox('seq')];
    const args: string[] = [];
    for (const item of items) {
      keys.push(this.record(item.key));
      args.push(item.key, item.payload);
    }
    const reply = await this.runKeys(SCRIPTS.enqueueMany, keys, args);
    if (!Array.isArray(reply) || reply.length !== items.length) throw new Error('RedisStore: unexpected batched enqueue reply');
    return reply.map(Number);
  }

  /** Leases up to `limit` due records (pending and due, or running with an expired lease) in one script. */
  async lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]> {
    const reply = await this.timed('lease', () =>
      this.runKeys(SCRIPTS.lease, [this.inbox('due')], [this.record(''), String(opts.limit), String(opts.leaseMs), randomUUID()]),
    );
    return (reply as unknown[][]).map(([key, token, attempts, payload, next, err, created]) => ({
      key: String(key),
      token: String(token),
      payload: text(payload) ?? '',
      state: 'running' as const,
      attempts: Number(attempts),
      nextAttemptAt: Number(next),
      lastError: text(err),
      createdAt: Number(created),
    }));
  }

  /** Marks a leased record done (if `token` holds it), drops its payload and lets it expire after `retentionMs`. */
  async ack(key: string, token: string, opts: CompleteOptions): Promise<void> {
    if (this.acks) {
      await this.acks.add({ key, token, retentionMs: opts.retentionMs });
      return;
    }
    await this.timed('ack', () =>
      this.runKeys(SCRIPTS.ack, [this.record(key), this.inbox('due'), this.inbox('queue')], [key, token, String(opts.retentionMs)]),
    );
  }

  /** One script call for a batch of acks. */
  private async ackBatch(items: AckItem[]): Promise<void[]> {
    const keys = [this.inbox('due'), this.inbox('queue')];
    const args: string[] = [];
    for (const item of items) {
      keys.push(this.record(item.key));
      args.push(item.key, item.token, String(item.retentionMs));
    }
    await this.runKeys(SCRIPTS.ackMany, keys, args);
    return items.map(() => undefined);
  }

  /** Records a failed run (if `token` holds the lease): pending again at `retryAt`, or dead when it is `null`. */
  async fail(key: string, token: string, opts: { error: string; retryAt: number | null }): Promise<void> {
    const retryAt = opts.retryAt === null ? '' : String(Math.round(opts.retryAt));
    await this.timed('fail', () =>
      this.runKeys(SCRIPTS.fail, [this.record(key), this.inbox('due'), this.inbox('queue'), this.inbox('dead')], [key, token, opts.error, retryAt]),
    );
  }

  /** Pending (and running) or dead records, oldest first. */
  async list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]> {
    if (opts.limit <= 0) return [];
    const set = this.inbox(state === 'dead' ? 'dead' : 'queue');
    const reply = await this.timed('list', () => this.runKeys(SCRIPTS.list, [set], [this.record(''), String(opts.limit)]));
    return (reply as unknown[][]).map(([key, payload, recordState, attempts, next, err, created]) => ({
      key: String(key),
      payload: text(payload) ?? '',
      state: String(recordState) as InboxState,
      attempts: Number(attempts),
      nextAttemptAt: Number(next),
      lastError: text(err),
      createdAt: Number(created),
    }));
  }

  /** Moves a dead record back to pending, due now, attempts reset; `false` if it is not dead. */
  async replay(key: string): Promise<boolean> {
    const reply = await this.timed('replay', () =>
      this.runKeys(SCRIPTS.replay, [this.record(key), this.inbox('due'), this.inbox('queue'), this.inbox('dead')], [key]),
    );
    return Number(reply) === 1;
  }

  /** Nothing to free: the client belongs to the application, which quits it. */
  async close(): Promise<void> {}

  /**
   * `fn()` within `operationTimeoutMs`; `onLate` gets a result that lands after that. (Batched
   * operations get the same limit from their batcher's deadline.)
   */
  private timed<T>(operation: string, fn: () => Promise<T>, onLate?: (late: T) => void): Promise<T> {
    return withTimeout(fn(), this.operationTimeoutMs, { store: 'RedisStore', operation }, onLate);
  }

  /** The ordering guard's key for a payment request: `<prefix>state:<paymentRequestId>`. */
  private stateKey(paymentRequestId: string): string {
    return `${this.prefix}state:${paymentRequestId}`;
  }

  /** An inbox key: `<prefix>{inbox}:<name>`. */
  private inbox(name: string): string {
    return `${this.prefix}{inbox}:${name}`;
  }

  /** The hash of inbox record `key` (with `''`, the prefix the scripts complete). */
  private record(key: string): string {
    return `${this.prefix}{inbox}:r:${key}`;
  }

  private run(s: Script, key: string, args: string[]): Promise<unknown> {
    return this.runKeys(s, [key], args);
  }

  /** EVALSHA, falling back to EVAL (which reloads the script) when Redis has lost its cache. */
  private async runKeys(s: Script, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.send(['EVALSHA', s.sha, String(keys.length), ...keys, ...args]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.send(['EVAL', s.source, String(keys.length), ...keys, ...args]);
    }
  }
}

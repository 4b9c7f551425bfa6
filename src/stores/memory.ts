import type {
  CallbackStore,
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InboxRecord,
  InboxStore,
  LeasedRecord,
  PaymentState,
  PaymentStateStore,
} from './types';
import { KeyTable } from './key-table';
import type { StoreOps, SyncCapable } from './ops';

/** Options for {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * The most completed keys kept; past it the oldest completed keys are forgotten first (keys in
   * flight are never evicted). Defaults to `100_000` (tens of MB at most).
   */
  maxEntries?: number;
  /** How often expired entries are swept, in milliseconds. The timer never keeps the process alive. Defaults to `60_000`. */
  sweepIntervalMs?: number;
}

/** Payment keys are about 40 characters, 3DS keys about 45; longer ones are kept by digest. */
const DONE_KEY_BYTES = 64;
/** Payment request ids are digits (17 today, 32 at most as validated). */
const STATE_ID_BYTES = 48;
/** A state: its key, two statuses and a timestamp, about 80 bytes. */
const STATE_VALUE_BYTES = 128;

/** A claim in flight. */
interface Lease {
  token: string;
  expiresAt: number;
}

interface MemoryInboxRecord extends InboxRecord {
  token: string | null;
  /** Lease end while running, retention end once done (epoch ms). */
  until: number;
}

/**
 * An in-process store: fast, bounded, and forgotten on restart. Right for one process where a
 * redelivery after a restart running the handler again is acceptable; otherwise use the SQLite,
 * Redis or PostgreSQL store. Its deferred-mode inbox is not durable either (`durable: false`):
 * events acknowledged but not yet handled are lost if the process dies.
 *
 * Completed keys and ordering-guard states live in preallocated tables outside the JavaScript
 * heap (about 30 MB at the default `maxEntries`, touched as they fill), so a full store adds
 * next to nothing for the garbage collector to walk.
 */
export class MemoryStore implements CallbackStore, PaymentStateStore, InboxStore, SyncCapable {
  readonly durable = false;
  readonly maxEntries: number;
  /** Keys in flight (never evicted). */
  private readonly leases = new Map<string, Lease>();
  /** Completed keys, oldest completion evicted first, outside the JS heap. */
  private readonly done: KeyTable;
  private timer: NodeJS.Timeout | undefined;
  private tokenSeq = 0;
  /** Deferred-mode inbox: every record by key, and the keys still pending or running. */
  private readonly inbox = new Map<string, MemoryInboxRecord>();
  private readonly active = new Set<string>();
  /** Last final state per payment request, bounded like the keys (oldest write first). */
  private readonly states: KeyTable;

  constructor(options: MemoryStoreOptions = {}) {
    const { maxEntries = 100_000, sweepIntervalMs = 60_000 } = options;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError(`MemoryStore: maxEntries must be a positive integer, got ${String(maxEntries)}`);
    }
    this.maxEntries = maxEntries;
    this.done = new KeyTable(maxEntries, DONE_KEY_BYTES);
    this.states = new KeyTable(maxEntries, STATE_ID_BYTES, STATE_VALUE_BYTES);
    this.timer = setInterval(() => this.sweep(), sweepIntervalMs);
    this.timer.unref();
  }

  /** The number of keys held (in flight and completed). */
  get entryCount(): number {
    return this.leases.size + this.done.size;
  }

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    return this.claimNow(key, opts);
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    this.completeNow(key, token, opts);
  }

  async release(key: string, token: string): Promise<void> {
    this.releaseNow(key, token);
  }

  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    return this.getPaymentStateNow(paymentRequestId);
  }

  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    this.setPaymentStateNow(paymentRequestId, state, opts);
  }

  /**
   * The synchronous twins of the methods above, for the router's hot path (no promise per call).
   * A method replaced by a subclass or on the instance keeps its own, so a wrapper still sees every
   * call. The router asks once, when it is created: replace methods before that.
   */
  syncOps(): Partial<StoreOps> {
    const proto = MemoryStore.prototype;
    const ops: Partial<StoreOps> = {};
    if (this.claim === proto.claim) ops.claim = (key, opts) => this.claimNow(key, opts);
    if (this.complete === proto.complete) ops.complete = (key, token, opts) => this.completeNow(key, token, opts);
    if (this.release === proto.release) ops.release = (key, token) => this.releaseNow(key, token);
    if (this.getPaymentState === proto.getPaymentState) ops.getPaymentState = (id) => this.getPaymentStateNow(id);
    if (this.setPaymentState === proto.setPaymentState) ops.setPaymentState = (id, state, opts) => this.setPaymentStateNow(id, state, opts);
    return ops;
  }

  private claimNow(key: string, opts: ClaimOptions): ClaimResult {
    const now = Date.now();
    const slot = this.done.find(key);
    if (slot !== -1) {
      if (this.done.expiresAt[slot]! > now) return { status: 'done' };
      this.done.remove(slot);
    }
    const lease = this.leases.get(key);
    if (lease !== undefined && lease.expiresAt > now) return { status: 'in_flight' };
    // Tokens only need to be unique within this store: a counter is enough, and cheap.
    const token = String(++this.tokenSeq);
    this.leases.set(key, { token, expiresAt: now + opts.leaseMs });
    return { status: 'claimed', token };
  }

  private completeNow(key: string, token: string, opts: CompleteOptions): void {
    const lease = this.leases.get(key);
    if (lease === undefined || lease.token !== token) return;
    this.leases.delete(key);
    const held = this.done.find(key);
    if (held !== -1) this.done.remove(held);
    this.done.insert(key, Date.now() + opts.retentionMs);
  }

  private releaseNow(key: string, token: string): void {
    const lease = this.leases.get(key);
    if (lease !== undefined && lease.token === token) this.leases.delete(key);
  }

  private getPaymentStateNow(paymentRequestId: string): PaymentState | null {
    const slot = this.states.find(paymentRequestId);
    if (slot === -1 || this.states.expiresAt[slot]! <= Date.now()) return null;
    return decodeState(this.states.valueAt(slot));
  }

  private setPaymentStateNow(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): void {
    // A rewrite moves the payment request to the newest slot.
    const previous = this.states.find(paymentRequestId);
    if (previous !== -1) this.states.remove(previous);
    const slot = this.states.insert(paymentRequestId, Date.now() + opts.retentionMs);
    this.states.setValue(slot, encodeState(state));
  }

  async enqueue(key: string, payload: string): Promise<'enqueued' | 'duplicate'> {
    const held = this.inbox.get(key);
    if (held !== undefined && !(held.state === 'done' && held.until <= Date.now())) return 'duplicate';
    const now = Date.now();
    this.inbox.set(key, { key, payload, state: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, createdAt: now, token: null, until: 0 });
    this.active.add(key);
    return 'enqueued';
  }

  async lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]> {
    const now = Date.now();
    const due: MemoryInboxRecord[] = [];
    for (const key of this.active) {
      const record = this.inbox.get(key)!;
      if ((record.state === 'pending' && record.nextAttemptAt <= now) || (record.state === 'running' && record.until <= now)) due.push(record);
    }
    due.sort((a, b) => a.nextAttemptAt - b.nextAttemptAt);
    return due.slice(0, opts.limit).map((record) => {
      record.state = 'running';
      record.token = String(++this.tokenSeq);
      record.until = now + opts.leaseMs;
      record.attempts++;
      return publicRecord(record, record.token);
    });
  }

  async ack(key: string, token: string, opts: CompleteOptions): Promise<void> {
    const record = this.inbox.get(key);
    if (record === undefined || record.state !== 'running' || record.token !== token) return;
    record.state = 'done';
    record.token = null;
    // Done records serve dedupe only; like the durable stores, drop the payload (payer data).
    record.payload = '';
    record.until = Date.now() + opts.retentionMs;
    this.active.delete(key);
    // Done records only serve dedupe: past the cap, the oldest go first (Map keeps insertion order).
    if (this.inbox.size > this.maxEntries) {
      for (const [old, held] of this.inbox) {
        if (this.inbox.size <= this.maxEntries) break;
        if (held.state === 'done') this.inbox.delete(old);
      }
    }
  }

  async fail(key: string, token: string, opts: { error: string; retryAt: number | null }): Promise<void> {
    const record = this.inbox.get(key);
    if (record === undefined || record.state !== 'running' || record.token !== token) return;
    record.token = null;
    record.lastError = opts.error;
    if (opts.retryAt === null) {
      record.state = 'dead';
      this.active.delete(key);
    } else {
      record.state = 'pending';
      record.nextAttemptAt = opts.retryAt;
    }
  }

  async list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]> {
    const out: InboxRecord[] = [];
    for (const record of this.inbox.values()) {
      if (out.length >= opts.limit) break;
      if (state === 'dead' ? record.state === 'dead' : record.state === 'pending' || record.state === 'running') out.push(publicRecord(record));
    }
    return out;
  }

  async replay(key: string): Promise<boolean> {
    const record = this.inbox.get(key);
    if (record === undefined || record.state !== 'dead') return false;
    record.state = 'pending';
    record.attempts = 0;
    record.nextAttemptAt = Date.now();
    this.active.add(key);
    return true;
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Drops expired entries. Runs on its own timer; callable directly. */
  sweep(): void {
    const now = Date.now();
    for (const [key, lease] of this.leases) if (lease.expiresAt <= now) this.leases.delete(key);
    this.done.removeExpired(now);
    this.states.removeExpired(now);
    for (const [key, record] of this.inbox) if (record.state === 'done' && record.until <= now) this.inbox.delete(key);
  }

}

/** Between a stored state's fields. None of the router's states holds one. */
const SEPARATOR = '\n';

/**
 * A state as stored: its fields joined by {@link SEPARATOR} (JSON.stringify cost about 0.3 µs
 * a request), or as a JSON array when a field holds the separator or the key starts with `[`
 * (which is how {@link decodeState} tells the two apart).
 */
function encodeState(state: PaymentState): string {
  const { key, paymentStatus, transactionStatus, receivedAt } = state;
  if (
    key.startsWith('[') ||
    key.includes(SEPARATOR) ||
    paymentStatus.includes(SEPARATOR) ||
    transactionStatus.includes(SEPARATOR) ||
    receivedAt.includes(SEPARATOR)
  ) {
    return JSON.stringify([key, paymentStatus, transactionStatus, receivedAt]);
  }
  return key + SEPARATOR + paymentStatus + SEPARATOR + transactionStatus + SEPARATOR + receivedAt;
}

function decodeState(value: string): PaymentState {
  const [key, paymentStatus, transactionStatus, receivedAt] = (value.startsWith('[') ? JSON.parse(value) : value.split(SEPARATOR)) as string[];
  return { key: key!, paymentStatus: paymentStatus!, transactionStatus: transactionStatus!, receivedAt: receivedAt! };
}

function publicRecord(record: MemoryInboxRecord): InboxRecord;
function publicRecord(record: MemoryInboxRecord, token: string): LeasedRecord;
function publicRecord(record: MemoryInboxRecord, token?: string): InboxRecord | LeasedRecord {
  const { key, payload, state, attempts, nextAttemptAt, lastError, createdAt } = record;
  return token === undefined
    ? { key, payload, state, attempts, nextAttemptAt, lastError, createdAt }
    : { key, payload, state, attempts, nextAttemptAt, lastError, createdAt, token };
}

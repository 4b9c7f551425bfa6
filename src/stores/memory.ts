import { randomUUID } from 'node:crypto';
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

interface Entry {
  done: boolean;
  token: string;
  /** Lease end while in flight, retention end once done (epoch ms). */
  expiresAt: number;
  /** Completion sequence number, so a stale slot in the eviction ring is recognised. */
  seq: number;
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
 */
export class MemoryStore implements CallbackStore, PaymentStateStore, InboxStore {
  readonly durable = false;
  readonly maxEntries: number;
  private readonly entries = new Map<string, Entry>();
  /**
   * Completed keys in completion order, as a ring: evicting the oldest is O(1), where deleting the
   * head of a `Map` through `keys().next()` gets slower as deleted slots pile up.
   */
  private readonly ring: (string | undefined)[];
  private readonly ringSeq: number[];
  private head = 0;
  private size = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Deferred-mode inbox: every record by key, and the keys still pending or running. */
  private readonly inbox = new Map<string, MemoryInboxRecord>();
  private readonly active = new Set<string>();
  /** Last final state per payment request; bounded like the keys (oldest first). */
  private readonly states = new Map<string, { state: PaymentState; expiresAt: number }>();

  constructor(options: MemoryStoreOptions = {}) {
    const { maxEntries = 100_000, sweepIntervalMs = 60_000 } = options;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError(`MemoryStore: maxEntries must be a positive integer, got ${String(maxEntries)}`);
    }
    this.maxEntries = maxEntries;
    this.ring = new Array<string | undefined>(maxEntries);
    this.ringSeq = new Array<number>(maxEntries).fill(0);
    this.timer = setInterval(() => this.sweep(), sweepIntervalMs);
    this.timer.unref();
  }

  /** The number of keys held (in flight and completed). */
  get entryCount(): number {
    return this.entries.size;
  }

  async claim(key: string, opts: ClaimOptions): Promise<ClaimResult> {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) return entry.done ? { status: 'done' } : { status: 'in_flight' };
    const token = randomUUID();
    this.entries.set(key, { done: false, token, expiresAt: now + opts.leaseMs, seq: 0 });
    return { status: 'claimed', token };
  }

  async complete(key: string, token: string, opts: CompleteOptions): Promise<void> {
    const entry = this.entries.get(key);
    if (entry === undefined || entry.done || entry.token !== token) return;
    entry.done = true;
    entry.expiresAt = Date.now() + opts.retentionMs;
    entry.seq = ++this.seq;
    this.remember(key, entry.seq);
  }

  async release(key: string, token: string): Promise<void> {
    const entry = this.entries.get(key);
    if (entry !== undefined && !entry.done && entry.token === token) this.entries.delete(key);
  }

  async getPaymentState(paymentRequestId: string): Promise<PaymentState | null> {
    const held = this.states.get(paymentRequestId);
    if (held === undefined || held.expiresAt <= Date.now()) return null;
    return held.state;
  }

  async setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void> {
    // Re-inserting moves the id to the end, so the first entry is always the oldest.
    this.states.delete(paymentRequestId);
    this.states.set(paymentRequestId, { state, expiresAt: Date.now() + opts.retentionMs });
    if (this.states.size > this.maxEntries) this.states.delete(this.states.keys().next().value!);
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
      record.token = randomUUID();
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
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
    for (const [id, held] of this.states) if (held.expiresAt <= now) this.states.delete(id);
    for (const [key, record] of this.inbox) if (record.state === 'done' && record.until <= now) this.inbox.delete(key);
  }

  /** Appends a completed key to the ring, evicting the oldest completed key when full. */
  private remember(key: string, seq: number): void {
    if (this.size === this.maxEntries) {
      const old = this.ring[this.head];
      const oldSeq = this.ringSeq[this.head];
      if (old !== undefined && this.entries.get(old)?.seq === oldSeq) this.entries.delete(old);
      this.head = (this.head + 1) % this.maxEntries;
      this.size--;
    }
    const slot = (this.head + this.size) % this.maxEntries;
    this.ring[slot] = key;
    this.ringSeq[slot] = seq;
    this.size++;
  }
}

function publicRecord(record: MemoryInboxRecord): InboxRecord;
function publicRecord(record: MemoryInboxRecord, token: string): LeasedRecord;
function publicRecord(record: MemoryInboxRecord, token?: string): InboxRecord | LeasedRecord {
  const { key, payload, state, attempts, nextAttemptAt, lastError, createdAt } = record;
  return token === undefined
    ? { key, payload, state, attempts, nextAttemptAt, lastError, createdAt }
    : { key, payload, state, attempts, nextAttemptAt, lastError, createdAt, token };
}

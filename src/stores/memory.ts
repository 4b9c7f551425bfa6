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

/** A claim in flight. */
interface Lease {
  token: string;
  expiresAt: number;
}

/**
 * A copy of `s` that shares no memory with the request it came from. Keys and ids are cut from
 * the request body, and V8 keeps such substrings as slices of the whole body text: held as they
 * are, each of the `maxEntries` remembered keys would keep its ~500-byte body alive too.
 */
function own(s: string): string {
  // ASCII (every key the router builds) copies flat through latin1 exactly; anything else
  // through a slice of a fresh concatenation, which refers to that flattened copy only.
  return Buffer.byteLength(s, 'utf8') === s.length ? Buffer.from(s, 'latin1').toString('latin1') : ` ${s}`.slice(1);
}

/**
 * Bounded write-ordered slots: key and expiry of each write, in flat arrays rather than an object
 * per key (a completed key then costs its string, a map entry and two slots). When full, a write
 * takes the oldest slot, so evicting is O(1) — where deleting the head of a `Map` through
 * `keys().next()` gets slower as deleted slots pile up. The owning map holds each key's slot; a
 * slot whose key has been written again since (the map points elsewhere) is stale and ignored.
 */
class SlotRing {
  readonly keys: (string | undefined)[];
  readonly expiresAt: Float64Array;
  private next = 0;

  constructor(private readonly capacity: number) {
    this.keys = new Array<string | undefined>(capacity);
    this.expiresAt = new Float64Array(capacity);
  }

  /** Records a write of `key` in the oldest slot, evicting that slot's key from `owner` if current. */
  write(key: string, expiresAt: number, owner: Map<string, number>): number {
    const slot = this.next;
    const old = this.keys[slot];
    if (old !== undefined && owner.get(old) === slot) owner.delete(old);
    this.keys[slot] = key;
    this.expiresAt[slot] = expiresAt;
    this.next = slot + 1 === this.capacity ? 0 : slot + 1;
    return slot;
  }

  /** Empties a slot whose key was dropped or rewritten elsewhere. */
  clear(slot: number): void {
    this.keys[slot] = undefined;
  }
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
export class MemoryStore implements CallbackStore, PaymentStateStore, InboxStore, SyncCapable {
  readonly durable = false;
  readonly maxEntries: number;
  /** Keys in flight (never evicted). */
  private readonly leases = new Map<string, Lease>();
  /** Completed keys, each with its slot in `doneRing` (completion order). */
  private readonly done = new Map<string, number>();
  private readonly doneRing: SlotRing;
  private timer: NodeJS.Timeout | undefined;
  private tokenSeq = 0;
  /** Deferred-mode inbox: every record by key, and the keys still pending or running. */
  private readonly inbox = new Map<string, MemoryInboxRecord>();
  private readonly active = new Set<string>();
  /** Last final state per payment request, each with its slot; bounded like the keys (oldest write first). */
  private readonly states = new Map<string, number>();
  private readonly stateRing: SlotRing;
  private readonly stateValues: (PaymentState | undefined)[];

  constructor(options: MemoryStoreOptions = {}) {
    const { maxEntries = 100_000, sweepIntervalMs = 60_000 } = options;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError(`MemoryStore: maxEntries must be a positive integer, got ${String(maxEntries)}`);
    }
    this.maxEntries = maxEntries;
    this.doneRing = new SlotRing(maxEntries);
    this.stateRing = new SlotRing(maxEntries);
    this.stateValues = new Array<PaymentState | undefined>(maxEntries);
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
   * A method replaced by a subclass or on the instance keeps its own, so a wrapper still sees every call.
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
    const slot = this.done.get(key);
    if (slot !== undefined) {
      if (this.doneRing.expiresAt[slot]! > now) return { status: 'done' };
      this.done.delete(key);
      this.doneRing.clear(slot);
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
    const owned = own(key);
    this.done.set(owned, this.doneRing.write(owned, Date.now() + opts.retentionMs, this.done));
  }

  private releaseNow(key: string, token: string): void {
    const lease = this.leases.get(key);
    if (lease !== undefined && lease.token === token) this.leases.delete(key);
  }

  private getPaymentStateNow(paymentRequestId: string): PaymentState | null {
    const slot = this.states.get(paymentRequestId);
    if (slot === undefined || this.stateRing.expiresAt[slot]! <= Date.now()) return null;
    return this.stateValues[slot]!;
  }

  private setPaymentStateNow(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): void {
    const kept: PaymentState = {
      key: own(state.key),
      paymentStatus: state.paymentStatus,
      transactionStatus: state.transactionStatus,
      receivedAt: own(state.receivedAt),
    };
    const previous = this.states.get(paymentRequestId);
    let id: string;
    if (previous === undefined) id = own(paymentRequestId);
    else {
      // A rewrite moves the id to the newest slot, reusing the string the map already holds.
      id = this.stateRing.keys[previous]!;
      this.stateRing.clear(previous);
      this.stateValues[previous] = undefined;
    }
    const slot = this.stateRing.write(id, Date.now() + opts.retentionMs, this.states);
    this.states.set(id, slot);
    this.stateValues[slot] = kept;
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
    for (const [key, slot] of this.done) {
      if (this.doneRing.expiresAt[slot]! <= now) {
        this.done.delete(key);
        this.doneRing.clear(slot);
      }
    }
    for (const [id, slot] of this.states) {
      if (this.stateRing.expiresAt[slot]! <= now) {
        this.states.delete(id);
        this.stateRing.clear(slot);
        this.stateValues[slot] = undefined;
      }
    }
    for (const [key, record] of this.inbox) if (record.state === 'done' && record.until <= now) this.inbox.delete(key);
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

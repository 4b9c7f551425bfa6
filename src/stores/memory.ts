import { randomUUID } from 'node:crypto';
import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions } from './types';

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

/**
 * An in-process store: fast, bounded, and forgotten on restart. Right for one process where a
 * redelivery after a restart running the handler again is acceptable; otherwise use the SQLite,
 * Redis or PostgreSQL store.
 */
export class MemoryStore implements CallbackStore {
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

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Drops expired entries. Runs on its own timer; callable directly. */
  sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
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

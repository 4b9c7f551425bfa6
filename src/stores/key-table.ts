import { createHash } from 'node:crypto';

/** A slot's `lengths` entry when it holds no key. */
const FREE = -1;
/** An index cell that points at no slot. */
const EMPTY = -1;

/**
 * A bounded set of string keys, each with an expiry and optionally a string value, kept in
 * preallocated typed arrays and byte slabs outside the JavaScript heap.
 *
 * Why not a `Map`: the memory store remembers up to `maxEntries` (100,000 by default) completed
 * keys and as many ordering-guard states. As strings and objects on the heap, each one is a few
 * objects the garbage collector marks on every full collection, and V8 lets the old generation
 * grow to several times that live set between collections: a 1,000,000-event soak peaked at
 * 281 MB of RSS with the default cap, against 113 MB with an empty store. Here the whole table
 * is a handful of typed arrays, whatever it holds.
 *
 * Slots are written in ring order: when the table is full, a write takes the oldest written slot
 * and forgets its key (the memory store evicts oldest-completed first). The index is an
 * open-addressing hash table (linear probing, backward-shift deletion) of slot numbers.
 *
 * Keys of up to `keyBytes` characters, all below U+0100, are stored byte for byte (latin1);
 * any other key is stored as its SHA-256 digest (a NUL and 44 Base64 characters), so every
 * string has exactly one stored form and distinct keys never meet but through a SHA-256 collision.
 */
export class KeyTable {
  readonly capacity: number;
  /** Expiry of each slot, epoch ms. Meaningless for a free slot. */
  readonly expiresAt: Float64Array;
  private readonly keyBytes: number;
  private readonly keys: Buffer;
  private readonly lengths: Int16Array;
  private readonly hashes: Int32Array;
  private readonly index: Int32Array;
  private readonly mask: number;
  private readonly valueBytes: number;
  private readonly values: Buffer;
  private readonly valueLengths: Int32Array;
  /** Values longer than `valueBytes` (in UTF-8), by slot: rare, so on the heap. */
  private readonly oversized = new Map<number, string>();
  private next = 0;
  private count = 0;
  /**
   * The last key looked up, with its stored form and hash: a claim, its completion and the
   * state's find-then-insert each ask for the same key in turn, and hashing it once instead of
   * up to three times showed in the profile.
   */
  private lastKey: string | undefined;
  private lastStored = '';
  private lastHash = 0;

  /**
   * @param capacity - the most keys held
   * @param keyBytes - the longest key stored as is (longer ones by digest; at least 45)
   * @param valueBytes - room for each slot's value in UTF-8 bytes (`0`: no values)
   */
  constructor(capacity: number, keyBytes: number, valueBytes = 0) {
    this.capacity = capacity;
    this.keyBytes = Math.max(keyBytes, 45);
    this.keys = Buffer.alloc(capacity * this.keyBytes);
    this.lengths = new Int16Array(capacity).fill(FREE);
    this.hashes = new Int32Array(capacity);
    this.expiresAt = new Float64Array(capacity);
    // At most half full, so probe runs stay short.
    let size = 2;
    while (size < capacity * 2) size *= 2;
    this.index = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
    this.valueBytes = valueBytes;
    this.values = Buffer.alloc(capacity * valueBytes);
    this.valueLengths = new Int32Array(valueBytes > 0 ? capacity : 0);
  }

  /** The number of keys held. */
  get size(): number {
    return this.count;
  }

  /** The slot holding `key`, or `-1`. Expiry is the caller's business. */
  find(key: string): number {
    this.prepare(key);
    const stored = this.lastStored;
    const hash = this.lastHash;
    for (let cell = hash & this.mask; ; cell = (cell + 1) & this.mask) {
      const slot = this.index[cell]!;
      if (slot === EMPTY) return -1;
      if (this.hashes[slot] === hash && this.matches(slot, stored)) return slot;
    }
  }

  /**
   * Writes `key` (which must not be held: `find` and `remove` it first) in the oldest slot,
   * forgetting that slot's key if it had one. Returns the slot.
   */
  insert(key: string, expiresAt: number): number {
    this.prepare(key);
    const stored = this.lastStored;
    const hash = this.lastHash;
    const slot = this.next;
    this.next = slot + 1 === this.capacity ? 0 : slot + 1;
    if (this.lengths[slot] !== FREE) this.remove(slot);
    const offset = slot * this.keyBytes;
    for (let i = 0; i < stored.length; i++) this.keys[offset + i] = stored.charCodeAt(i);
    this.lengths[slot] = stored.length;
    this.hashes[slot] = hash;
    this.expiresAt[slot] = expiresAt;
    let cell = hash & this.mask;
    while (this.index[cell] !== EMPTY) cell = (cell + 1) & this.mask;
    this.index[cell] = slot;
    this.count++;
    return slot;
  }

  /** Forgets the key in `slot` (a free slot is left as it is). */
  remove(slot: number): void {
    if (this.lengths[slot] === FREE) return;
    this.lengths[slot] = FREE;
    if (this.oversized.size !== 0) this.oversized.delete(slot);
    this.count--;
    let cell = this.hashes[slot]! & this.mask;
    while (this.index[cell] !== slot) cell = (cell + 1) & this.mask;
    // Backward-shift deletion: pull later cells of the probe run into the gap, so every key stays
    // reachable from its home cell without tombstones.
    let gap = cell;
    for (let probe = (gap + 1) & this.mask; ; probe = (probe + 1) & this.mask) {
      const moved = this.index[probe]!;
      if (moved === EMPTY) break;
      const home = this.hashes[moved]! & this.mask;
      const staysPut = gap <= probe ? gap < home && home <= probe : gap < home || home <= probe;
      if (!staysPut) {
        this.index[gap] = moved;
        gap = probe;
      }
    }
    this.index[gap] = EMPTY;
  }

  /** Stores `value` for the key in `slot`. */
  setValue(slot: number, value: string): void {
    if (this.oversized.size !== 0) this.oversized.delete(slot);
    // ASCII (the states the router writes) is copied here: UTF-8 and latin1 agree on it, and two
    // calls into C++ (byteLength, write) cost more than the loop.
    if (value.length <= this.valueBytes) {
      const offset = slot * this.valueBytes;
      let i = 0;
      for (; i < value.length; i++) {
        const code = value.charCodeAt(i);
        if (code > 0x7f) break;
        this.values[offset + i] = code;
      }
      if (i === value.length) {
        this.valueLengths[slot] = i;
        return;
      }
    }
    const length = Buffer.byteLength(value, 'utf8');
    if (length <= this.valueBytes) {
      this.values.write(value, slot * this.valueBytes, length, 'utf8');
      this.valueLengths[slot] = length;
    } else {
      this.oversized.set(slot, value);
    }
  }

  /** The value stored for the key in `slot`. */
  valueAt(slot: number): string {
    const oversized = this.oversized.size === 0 ? undefined : this.oversized.get(slot);
    if (oversized !== undefined) return oversized;
    const offset = slot * this.valueBytes;
    return this.values.toString('utf8', offset, offset + this.valueLengths[slot]!);
  }

  /** Removes every key whose expiry is at or before `now`; returns how many. */
  removeExpired(now: number): number {
    let removed = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.lengths[slot] !== FREE && this.expiresAt[slot]! <= now) {
        this.remove(slot);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Makes `lastStored` and `lastHash` those of `key`: the key itself when it fits byte for byte,
   * else its digest. One pass hashes the key and checks that it fits.
   */
  private prepare(key: string): void {
    if (key === this.lastKey) return;
    let stored = key;
    let hash = FNV_OFFSET;
    let fits = key.length <= this.keyBytes;
    for (let i = 0; fits && i < key.length; i++) {
      const code = key.charCodeAt(i);
      if (code > 0xff) fits = false;
      hash = Math.imul(hash ^ code, FNV_PRIME);
    }
    if (!fits) {
      stored = digest(key);
      hash = hashOf(stored);
    }
    this.lastStored = stored;
    this.lastHash = hash | 0;
    this.lastKey = key;
  }

  private matches(slot: number, stored: string): boolean {
    if (this.lengths[slot] !== stored.length) return false;
    const offset = slot * this.keyBytes;
    for (let i = 0; i < stored.length; i++) if (this.keys[offset + i] !== stored.charCodeAt(i)) return false;
    return true;
  }
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over UTF-16 code units. */
function hashOf(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h | 0;
}

/** The stored form of a key that does not fit: it starts with NUL, which no digest-free key of this form can mimic without a SHA-256 preimage. */
function digest(key: string): string {
  return `\u0000${createHash('sha256').update(key, 'utf8').digest('base64')}`;
}

/**
 * The result of {@link CallbackStore.claim}.
 * - `claimed`: the key was absent, or its lease expired; the caller must run the handler and then
 *   `complete` (or `release`) with `token`.
 * - `in_flight`: another delivery holds a live lease.
 * - `done`: the key was completed before and is still retained: a duplicate.
 */
export type ClaimResult =
  | { status: 'claimed'; token: string }
  | { status: 'in_flight' }
  | { status: 'done' };

/** Options for {@link CallbackStore.claim}. */
export interface ClaimOptions {
  /** How long the claim holds before another delivery may take over, in milliseconds. */
  leaseMs: number;
}

/** Options for {@link CallbackStore.complete}. */
export interface CompleteOptions {
  /** How long the completed key is remembered, in milliseconds. */
  retentionMs: number;
}

/**
 * Where the router records which events it has seen. Implementations must make `claim` atomic
 * (of N concurrent claims of one key, exactly one is `claimed`) and must fence by token: a
 * `complete` or `release` whose token no longer holds the lease changes nothing.
 * `runStoreConformance` from `caibo-callbacks/testing` checks all of it.
 */
export interface CallbackStore {
  /** Claims `key` for processing, or reports that it is in flight or done. */
  claim(key: string, opts: ClaimOptions): Promise<ClaimResult>;
  /** Marks `key` as done, if `token` still holds its lease; keeps it `retentionMs`. */
  complete(key: string, token: string, opts: CompleteOptions): Promise<void>;
  /** Gives up the claim on `key`, if `token` still holds it, so the next delivery can claim it. */
  release(key: string, token: string): Promise<void>;
  /** Prepares the store (creates tables, loads scripts). Called once by the router before first use. */
  init?(): Promise<void>;
  /** Frees the store's resources (timers; never a connection the caller passed in). */
  close?(): Promise<void>;
}

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

/** The last final state of a payment request, kept for the ordering guard. */
export interface PaymentState {
  /** The dedupe key of the event that set it. */
  key: string;
  /** `paid` or `cancelled` (only final states are kept). */
  paymentStatus: string;
  /** The transaction status of that event. */
  transactionStatus: string;
  /** When the router saw it, ISO 8601. */
  receivedAt: string;
}

/**
 * Optional store methods for the ordering guard: per payment request, the last final state seen.
 * Stores without them still work; the router then keeps the guard's state in process memory
 * (not shared between instances) and says so at start-up.
 */
export interface PaymentStateStore {
  /** The last final state recorded for `paymentRequestId`, or `null`. */
  getPaymentState(paymentRequestId: string): Promise<PaymentState | null>;
  /** Records `state` as the last final state of `paymentRequestId`, kept `retentionMs`. */
  setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void>;
  /**
   * Optional: `complete(key, token, opts)` and then `setPaymentState(paymentRequestId, state, opts)`
   * as one step (one statement or transaction, so one commit), with the same effects as the two
   * calls: the key is completed only if `token` holds its lease; the state is recorded either way.
   * The router calls it after a handler has run for a final payment state, when the store holds
   * both the keys and the states; without it, it makes the two calls in turn.
   */
  completeWithState?(key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions): Promise<void>;
}

/** The states of an inbox record (deferred mode). */
export type InboxState = 'pending' | 'running' | 'done' | 'dead';

/** An event written to the inbox in deferred mode, as the store holds it. */
export interface InboxRecord {
  /** The dedupe key. */
  key: string;
  /** The serialised event (opaque to the store). */
  payload: string;
  state: InboxState;
  /** Handler runs started so far. */
  attempts: number;
  /** When a pending record is due (epoch ms). */
  nextAttemptAt: number;
  /** The last failure's message, if any (never payer data: the router writes only error names and types). */
  lastError: string | null;
  /** When it was enqueued (epoch ms). */
  createdAt: number;
}

/** A record leased to one worker: `token` fences its `ack`/`fail`. */
export interface LeasedRecord extends InboxRecord {
  token: string;
}

/**
 * Optional store methods for deferred mode (`mode: 'deferred'`): a durable inbox. The router
 * writes each verified event here before answering 200; a worker leases due records, runs the
 * handler and acks or fails them. Leases make each record run by one worker at a time across
 * instances, and an expired lease (a dead process) lets another worker take the record over.
 * `runStoreConformance` checks these methods when a store has them.
 */
export interface InboxStore {
  /** Whether the inbox survives a restart. The memory store says `false`. */
  readonly durable: boolean;
  /**
   * Inserts a pending record, due now, unless `key` is already in the inbox in any state.
   * Atomic: of N concurrent enqueues of one key exactly one is `enqueued`.
   */
  enqueue(key: string, payload: string, opts: CompleteOptions): Promise<'enqueued' | 'duplicate'>;
  /**
   * Leases up to `limit` due records — pending ones whose `nextAttemptAt` has passed, and running
   * ones whose lease expired — marking them running until now + `leaseMs` and counting an attempt.
   */
  lease(opts: { limit: number; leaseMs: number }): Promise<LeasedRecord[]>;
  /** Marks a leased record done (if `token` still holds it); it is kept `retentionMs` for dedupe. */
  ack(key: string, token: string, opts: CompleteOptions): Promise<void>;
  /**
   * Records a failed run (if `token` still holds the lease): back to pending, due at `retryAt`,
   * or dead when `retryAt` is `null`.
   */
  fail(key: string, token: string, opts: { error: string; retryAt: number | null }): Promise<void>;
  /** Records in `state` (`pending` includes running), oldest first, at most `limit`. */
  list(state: 'pending' | 'dead', opts: { limit: number }): Promise<InboxRecord[]>;
  /** Moves a dead record back to pending, due now, with its attempts reset. `false` if it is not dead. */
  replay(key: string): Promise<boolean>;
}

import type { CallbackStore, ClaimOptions, ClaimResult, CompleteOptions, PaymentState, PaymentStateStore } from './types';

/** A value now, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The store calls the pipeline makes. A store answering in process (the built-in memory store)
 * answers synchronously here, so the common path of a request allocates no promise per store
 * call; every other store is called through its public, promise-returning methods.
 */
export interface StoreOps {
  claim(key: string, opts: ClaimOptions): MaybePromise<ClaimResult>;
  complete(key: string, token: string, opts: CompleteOptions): MaybePromise<void>;
  release(key: string, token: string): MaybePromise<void>;
  getPaymentState(paymentRequestId: string): MaybePromise<PaymentState | null>;
  setPaymentState(paymentRequestId: string, state: PaymentState, opts: CompleteOptions): MaybePromise<void>;
  /** `complete` then `setPaymentState`: one step where the store offers it. */
  completeWithState(key: string, token: string, paymentRequestId: string, state: PaymentState, opts: CompleteOptions): MaybePromise<void>;
}

/** A store that can also answer synchronously. */
export interface SyncCapable {
  /** The synchronous twins of the store's methods; a method a subclass or wrapper replaced is left out. */
  syncOps(): Partial<StoreOps>;
}

function syncOf(store: object): Partial<StoreOps> | null {
  // Only stores that offer it; every other store answers null and is called through its methods.
  const candidate = store as Partial<SyncCapable>;
  return typeof candidate.syncOps === 'function' ? candidate.syncOps() : null;
}

/**
 * The calls for `store` and, for the ordering guard, `states` (the same object for every
 * built-in store): synchronous where the store offers it, else its own methods.
 */
export function storeOps(store: CallbackStore, states: PaymentStateStore): StoreOps {
  const sync = syncOf(store);
  const sameStore = (states as object) === store;
  const syncStates = sameStore ? sync : syncOf(states);
  const complete: StoreOps['complete'] = sync?.complete ?? ((key, token, opts) => store.complete(key, token, opts));
  const setPaymentState: StoreOps['setPaymentState'] = syncStates?.setPaymentState ?? ((id, state, opts) => states.setPaymentState(id, state, opts));
  const combined = sameStore && typeof states.completeWithState === 'function' ? states.completeWithState.bind(states) : undefined;
  return {
    claim: sync?.claim ?? ((key, opts) => store.claim(key, opts)),
    complete,
    release: sync?.release ?? ((key, token) => store.release(key, token)),
    getPaymentState: syncStates?.getPaymentState ?? ((id) => states.getPaymentState(id)),
    setPaymentState,
    completeWithState:
      combined ??
      ((key, token, id, state, opts) => {
        const completed = complete(key, token, opts);
        return isThenable(completed) ? Promise.resolve(completed).then(() => setPaymentState(id, state, opts)) : setPaymentState(id, state, opts);
      }),
  };
}

/** Whether `value` is a promise (or any thenable a store may return). */
export function isThenable<T>(value: MaybePromise<T> | PromiseLike<T>): value is PromiseLike<T> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<T>).then === 'function';
}

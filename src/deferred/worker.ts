import { CallbackError } from '../errors';
import type { CaiboEvent } from '../core/events';
import type { Config, DeferredConfig } from '../options';
import { describe, rememberFinalState, staleAgainst } from '../pipeline';
import { redactText } from '../security/redact';
import type { InboxRecord, InboxStore, LeasedRecord } from '../stores/types';
import { PAYER_FIELDS } from './codec';

/** A deferred event as `router.pending()` and `router.dead()` list it. */
export interface DeferredEntry {
  key: string;
  state: InboxRecord['state'];
  attempts: number;
  /** When the next attempt is due (pending) or was due (dead), ISO 8601. */
  nextAttemptAt: string;
  /** The last failure (error name and message only). */
  lastError: string | null;
  /** The event as it was acknowledged, or `null` when its payload cannot be read (see `lastError`). */
  event: CaiboEvent | null;
}

function entryOf(config: Config, record: InboxRecord): DeferredEntry {
  let event: CaiboEvent | null;
  try {
    event = config.codec.decode(record.key, record.payload);
  } catch {
    event = null;
  }
  return {
    key: record.key,
    state: record.state,
    attempts: record.attempts,
    nextAttemptAt: new Date(record.nextAttemptAt).toISOString(),
    lastError: record.lastError,
    event,
  };
}

/**
 * Runs deferred events in this process: leases due inbox records (new ones, failed ones whose
 * backoff has passed, and ones whose lease expired because a process died), runs the handler,
 * and acks or fails each record. Polls on an unref'd timer; a new event wakes it at once.
 */
export class DeferredWorker {
  private running = 0;
  /** Records that failed authentication or decoding, since start. */
  undecryptable = 0;
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly controllers = new Set<AbortController>();

  private readonly settings: DeferredConfig;
  private readonly inbox: InboxStore;

  constructor(
    private readonly config: Config,
    settings: DeferredConfig,
  ) {
    this.settings = settings;
    this.inbox = settings.inbox;
  }

  /** Starts polling; the first poll picks up whatever a previous process left. */
  start(): void {
    this.schedule(0);
  }

  /** Polls now (after an enqueue or a replay). */
  kick(): void {
    if (this.stopped) return;
    if (this.polling !== undefined) this.again = true;
    else this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        const more = this.again;
        this.again = false;
        this.schedule(more ? 0 : this.settings.pollIntervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /** Leases as many due records as there are free slots and starts them. */
  async poll(): Promise<void> {
    const free = this.settings.concurrency - this.running;
    if (free <= 0 || this.stopped) return;
    let records: LeasedRecord[];
    try {
      records = await this.inbox.lease({ limit: free, leaseMs: this.config.leaseMs });
    } catch (error) {
      this.config.logger.error({ err: describe(error) }, 'caibo-callbacks: could not lease deferred events; retrying at the next poll');
      return;
    }
    for (const record of records) {
      this.running++;
      const run = this.run(record).finally(() => {
        this.running--;
        this.inflight.delete(run);
        this.kick();
      });
      this.inflight.add(run);
    }
  }

  private async run(record: LeasedRecord): Promise<void> {
    const { config, inbox } = this;
    let event: CaiboEvent;
    try {
      event = config.codec.decode(record.key, record.payload);
    } catch (error) {
      // Never delivered: a record that fails authentication (tampered, or its key was removed) is
      // reported and parked as dead, where replay can run it once its key is configured again.
      const failure =
        error instanceof CallbackError ? error : new CallbackError('inbox.undecryptable', 'Inbox record could not be decoded', { cause: error });
      if (config.onError) {
        try {
          config.onError(failure, { provider: undefined, path: 'deferred', clientIp: undefined });
        } catch (hookError) {
          config.logger.error({ hook: 'onError', err: describe(hookError) }, 'caibo-callbacks: onError hook threw');
        }
      }
      this.undecryptable++;
      await this.settleFailure(record, undefined, failure, true);
      return;
    }
    const started = performance.now();
    const context = { provider: event.provider, clientIp: undefined };
    try {
      const current = await staleAgainst(config, event);
      if (current !== null) {
        await inbox.ack(record.key, record.token, { retentionMs: config.retentionMs });
        try {
          config.onStale?.(event, current);
        } catch (hookError) {
          config.logger.error({ hook: 'onStale', err: describe(hookError) }, 'caibo-callbacks: onStale hook threw');
        }
        config.logger.info({ route: 'deferred', outcome: 'stale', key: event.key, attempt: record.attempts }, 'caibo deferred event');
        return;
      }
    } catch (error) {
      config.logger.error({ key: record.key, err: describe(error) }, 'caibo-callbacks: ordering guard lookup failed; retrying');
      await this.settleFailure(record, event, new CallbackError('store.unavailable', 'Ordering guard lookup failed', { cause: error }), false);
      return;
    }

    // The handler gets the lease as its budget: past it, another worker may take the event over.
    const controller = new AbortController();
    this.controllers.add(controller);
    const budget = setTimeout(
      () => controller.abort(new CallbackError('handler.timeout', 'The deferred handler outlived its lease')),
      config.leaseMs,
    );
    budget.unref();
    try {
      await config.onStatus(event, { ...context, signal: controller.signal });
    } catch (error) {
      clearTimeout(budget);
      this.controllers.delete(controller);
      await this.settleFailure(record, event, new CallbackError('handler.failed', 'onStatus threw', { cause: error }), false);
      return;
    }
    clearTimeout(budget);
    this.controllers.delete(controller);
    try {
      await inbox.ack(record.key, record.token, { retentionMs: config.retentionMs });
      await rememberFinalState(config, event);
    } catch (error) {
      // The handler ran; the lease will expire and the event may run again: say so loudly.
      config.logger.error({ key: record.key, err: describe(error) }, 'caibo-callbacks: handled but could not be marked done; it may run again');
      return;
    }
    config.logger.info(
      { route: 'deferred', outcome: 'handled', key: event.key, attempt: record.attempts, durationMs: Math.round((performance.now() - started) * 100) / 100 },
      'caibo deferred event',
    );
  }

  /** Schedules a retry with backoff, or marks the record dead after `maxAttempts`. */
  private async settleFailure(record: LeasedRecord, event: CaiboEvent | undefined, error: CallbackError, forceDead: boolean): Promise<void> {
    const { config } = this;
    const dead = forceDead || record.attempts >= this.settings.maxAttempts;
    const cause = error.cause === undefined ? error : error.cause;
    // lastError is stored in plaintext (encryption covers payloads only): a handler's message that
    // quotes the payer ("cannot email x@y") must not put payer data at rest.
    const payer = event === undefined ? [] : PAYER_FIELDS.map((field) => event.data[field]);
    const message = redactText(`${error.type}: ${describe(cause).name}: ${describe(cause).message}`, payer).slice(0, 500);
    try {
      await this.inbox.fail(record.key, record.token, { error: message, retryAt: dead ? null : Date.now() + this.backoffMs(record.attempts) });
    } catch (storeError) {
      config.logger.error({ key: record.key, err: describe(storeError) }, 'caibo-callbacks: could not record a failed attempt; the lease will expire and it runs again');
      return;
    }
    config.logger.warn(
      { route: 'deferred', outcome: dead ? 'dead' : 'retry', key: record.key, attempt: record.attempts, errorType: error.type },
      dead ? 'caibo deferred event is dead' : 'caibo deferred event failed; will retry',
    );
    if (dead && this.settings.onDead && event !== undefined) {
      try {
        this.settings.onDead(event, error);
      } catch (hookError) {
        config.logger.error({ hook: 'onDead', err: describe(hookError) }, 'caibo-callbacks: onDead hook threw');
      }
    }
  }

  /** Exponential backoff with full jitter: attempt 1 waits up to `initialMs`, then doubling, capped at `maxMs`. */
  backoffMs(attempt: number): number {
    const { initialMs, maxMs } = this.settings.backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async pending(limit = 1000): Promise<DeferredEntry[]> {
    return (await this.inbox.list('pending', { limit })).map((record) => entryOf(this.config, record));
  }

  async dead(limit = 1000): Promise<DeferredEntry[]> {
    return (await this.inbox.list('dead', { limit })).map((record) => entryOf(this.config, record));
  }

  async replay(key: string): Promise<boolean> {
    const replayed = await this.inbox.replay(key);
    if (replayed) this.kick();
    return replayed;
  }

  /** Stops polling and waits for runs in progress (up to the router's close deadline). */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
    await Promise.allSettled([...this.inflight]);
  }

  /** Aborts the signals of runs still going (at the close deadline). */
  abortAll(): void {
    for (const controller of this.controllers) controller.abort(new CallbackError('store.unavailable', 'The router is closing'));
  }
}

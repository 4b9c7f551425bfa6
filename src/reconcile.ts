import { CallbackError } from './errors';
import type { CaiboEvent } from './core/events';
import { statusToEvent } from './core/status';
import type { Config } from './options';
import { deliver, describe, type OutcomeKind } from './pipeline';

/** What `router.reconcile(ids)` reports per payment request. */
export interface ReconcileResult {
  /** The payment request id asked about. */
  id: string;
  /** `handled`: the handler ran; `queued`: written to the inbox (deferred mode); `duplicate`: that state had already been seen; `stale`: older than a final state seen; `failed`: see `error`. */
  outcome: Exclude<OutcomeKind, 'test' | 'rejected'> | 'in_flight';
  /** The event built from the status answer, when there was one. */
  event?: CaiboEvent;
  /** Why it failed (status API or store error, handler threw). */
  error?: CallbackError;
}

/**
 * Looks payment requests up with the status API and passes each state through the same dedupe,
 * ordering guard and handler as callbacks: a state learned by polling and later by callback (or
 * the reverse) reaches the handler once. Ids are looked up one after another, to stay well within
 * the API's rate limits.
 */
export async function reconcile(config: Config, ids: readonly string[]): Promise<ReconcileResult[]> {
  const client = config.client;
  if (client === undefined) throw new TypeError('router.reconcile needs the `client` option: new CaiboClient({ apiKey })');
  if (!Array.isArray(ids)) throw new TypeError('router.reconcile(ids): pass a list of payment request ids (strings)');
  const results: ReconcileResult[] = [];
  for (const id of ids) {
    let event: CaiboEvent;
    try {
      event = statusToEvent(await client.getPaymentStatus(id), new Date());
    } catch (error) {
      if (error instanceof TypeError) throw error;
      const failure = error instanceof CallbackError ? error : new CallbackError('api.unavailable', 'Status lookup failed', { cause: error });
      config.logger.warn({ id, errorType: failure.type, err: describe(failure) }, 'caibo-callbacks: status lookup failed');
      results.push({ id, outcome: 'failed', error: failure });
      continue;
    }
    const outcome = await deliver(config, event, { provider: 'status-api', clientIp: undefined });
    const kind = outcome.error?.type === 'event.in_flight' ? 'in_flight' : outcome.kind === 'rejected' ? 'failed' : outcome.kind;
    results.push({ id, outcome: kind as ReconcileResult['outcome'], event, ...(outcome.error && { error: outcome.error }) });
    config.logger.info({ route: 'status-api', outcome: kind, key: event.key, ...(outcome.error && { errorType: outcome.error.type }) }, 'caibo reconcile');
  }
  return results;
}

/** How long a payment request is followed before the scheduler gives up on it. */
const FOLLOW_FOR_MS = 7 * 24 * 60 * 60 * 1000;
/** At most this many payment requests are followed; the oldest are dropped first. */
const MAX_FOLLOWED = 10_000;

/**
 * Follows payment requests whose last event seen by this process was not final, and every
 * `reconcileEvery` ms reconciles those not heard of for that long. The timer never keeps the
 * process alive.
 */
export class ReconcileScheduler {
  /** Payment request id → when it was last heard of (epoch ms) and when it was first seen. */
  private readonly followed = new Map<string, { lastSeen: number; firstSeen: number }>();
  private readonly timer: NodeJS.Timeout;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly config: Config,
    private readonly everyMs: number,
  ) {
    this.timer = setInterval(() => {
      if (this.running === undefined) this.running = this.tick().finally(() => (this.running = undefined));
    }, everyMs);
    this.timer.unref();
  }

  /** Records what an event says about its payment request. */
  observe(event: CaiboEvent | undefined): void {
    if (event === undefined || event.kind !== 'payment') return;
    if (event.final) {
      this.followed.delete(event.paymentRequestId);
      return;
    }
    const now = Date.now();
    const known = this.followed.get(event.paymentRequestId);
    if (known !== undefined) {
      known.lastSeen = now;
      return;
    }
    this.followed.set(event.paymentRequestId, { lastSeen: now, firstSeen: now });
    if (this.followed.size > MAX_FOLLOWED) this.followed.delete(this.followed.keys().next().value!);
  }

  /** The ids currently followed (not final yet). */
  ids(): string[] {
    return [...this.followed.keys()];
  }

  /** Reconciles the followed ids that are due. */
  async tick(): Promise<ReconcileResult[]> {
    const now = Date.now();
    const due: string[] = [];
    for (const [id, seen] of this.followed) {
      if (now - seen.firstSeen > FOLLOW_FOR_MS) this.followed.delete(id);
      else if (now - seen.lastSeen >= this.everyMs) due.push(id);
    }
    if (due.length === 0) return [];
    const results = await reconcile(this.config, due);
    for (const result of results) {
      const entry = this.followed.get(result.id);
      if (entry === undefined) continue;
      if (result.event?.kind === 'payment' && result.event.final && result.outcome !== 'failed') this.followed.delete(result.id);
      else entry.lastSeen = Date.now();
    }
    return results;
  }

  /** Stops the timer and waits for a round in progress. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

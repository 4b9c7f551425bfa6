import type { ServerResponse } from 'node:http';
import type { Outcome } from '../pipeline';

/**
 * The response header that tells a 200 for a new event (`handled`) from a 200 for a duplicate
 * (`duplicate`) or for a handler failure acknowledged under `ackOnError` (`failed`). Caibo ignores
 * it; `caibo-callbacks send` reads it to count handler runs without seeing the handler. Set only
 * while the test endpoints are on (by default, outside `NODE_ENV=production`), and only on
 * answers to a parsed event, so it tells a caller nothing it could not learn by signing.
 */
export const OUTCOME_HEADER = 'Caibo-Callbacks-Outcome';

/** Adds {@link OUTCOME_HEADER} to a 200 answer for an event. */
export function markOutcome(res: ServerResponse, outcome: Outcome): void {
  if (outcome.status === 200 && outcome.event !== undefined && !res.headersSent) res.setHeader(OUTCOME_HEADER, outcome.kind);
}

import type { ServerResponse } from 'node:http';
import type { Outcome } from '../pipeline';

/**
 * Writes an outcome with plain `node:http` calls, so the same code answers under Connect,
 * Express 4 and Express 5.
 */
export function respond(res: ServerResponse, outcome: Outcome): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  res.statusCode = outcome.status;
  for (const name in outcome.headers) res.setHeader(name, outcome.headers[name]!);
  res.setHeader('Content-Type', outcome.contentType);
  res.setHeader('Content-Length', Buffer.byteLength(outcome.body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(outcome.body);
}

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
  // One writeHead with a flat list: cheaper than a setHeader per header on the hot path. Headers
  // set earlier (rate-limit headers, Connection: close) are merged by node:http.
  const headers: string[] = [
    'Content-Type',
    outcome.contentType,
    'Content-Length',
    String(Buffer.byteLength(outcome.body)),
    'Cache-Control',
    'no-store',
  ];
  for (const name in outcome.headers) headers.push(name, outcome.headers[name]!);
  res.writeHead(outcome.status, headers);
  res.end(outcome.body);
}

import type { ServerResponse } from 'node:http';
import { TEXT, type Outcome } from '../pipeline';

/** The headers of every plain `OK` (most answers): built once. node:http only reads the list. */
const OK_HEADERS: readonly string[] = Object.freeze(['Content-Type', TEXT, 'Content-Length', '2', 'Cache-Control', 'no-store']);

function isEmpty(headers: Record<string, string>): boolean {
  for (const _ in headers) return false;
  return true;
}

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
  if (outcome.body === 'OK' && outcome.contentType === TEXT && isEmpty(outcome.headers)) {
    res.writeHead(outcome.status, OK_HEADERS as string[]);
    res.end('OK');
    return;
  }
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

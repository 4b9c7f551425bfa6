import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * Whether the request arrived over HTTPS. Under Express, `req.protocol` answers, so
 * `X-Forwarded-Proto` counts only from a proxy the app's `trust proxy` setting trusts. Elsewhere
 * (Connect, plain `node:http`) only a TLS socket counts: a forwarded header is never read raw,
 * since anyone can send one.
 */
export function isHttps(req: IncomingMessage & { protocol?: unknown }): boolean {
  if (typeof req.protocol === 'string') return req.protocol === 'https';
  return (req.socket as Partial<TLSSocket> | undefined)?.encrypted === true;
}

import type { IncomingMessage } from 'node:http';

/**
 * The client address: `req.ip` where Express provides it (so the app's `trust proxy` setting
 * decides which `X-Forwarded-For` hop counts), else the socket's peer address. A raw
 * `X-Forwarded-For` header is never read: anyone can send one.
 */
export function clientIp(req: IncomingMessage & { ip?: unknown; app?: { settings?: Record<string, unknown> } }): string | undefined {
  // Express's default, `trust proxy` off, makes `req.ip` the socket's address: read it directly
  // rather than through the getter, which parses X-Forwarded-For on every call to find the same.
  if (req.app?.settings?.['trust proxy'] === false) return req.socket?.remoteAddress;
  return typeof req.ip === 'string' && req.ip !== '' ? req.ip : req.socket?.remoteAddress;
}

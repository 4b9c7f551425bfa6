import type { IncomingMessage } from 'node:http';

/**
 * The client address: `req.ip` where Express provides it (so the app's `trust proxy` setting
 * decides which `X-Forwarded-For` hop counts), else the socket's peer address. A raw
 * `X-Forwarded-For` header is never read: anyone can send one.
 */
export function clientIp(req: IncomingMessage & { ip?: unknown }): string | undefined {
  return typeof req.ip === 'string' && req.ip !== '' ? req.ip : req.socket?.remoteAddress;
}

import type { IncomingMessage } from 'node:http';
import getRawBody from 'raw-body';
import { CallbackError, type CallbackErrorType } from '../errors';

/** A request as an upstream body parser may have left it. */
export type MaybeParsedRequest = IncomingMessage & { rawBody?: unknown; _body?: unknown; body?: unknown };

const ALREADY_PARSED =
  'The request body was already consumed by another body parser (express.json(), express.urlencoded(), body-parser) ' +
  'mounted before caiboCallbacks, so the signed raw bytes are gone. Fix: mount caiboCallbacks before the parser, ' +
  'or keep the raw body with the parser\'s verify hook: express.json({ verify: (req, _res, buf) => { req.rawBody = buf } }).';

const RAW_BODY_TYPES: Record<string, CallbackErrorType> = {
  'entity.too.large': 'entity.too.large',
  'request.aborted': 'request.aborted',
  'request.size.invalid': 'request.size.invalid',
  'stream.encoding.set': 'body.already_parsed',
  'stream.not.readable': 'body.already_parsed',
};

/**
 * Reads the raw body through raw-body, with the size limit enforced while reading (and at once
 * from `Content-Length`). A `req.rawBody` Buffer saved by the app's own parser is used as is;
 * a body consumed without one fails at once with `body.already_parsed`, never a hang.
 */
export async function readBody(req: MaybeParsedRequest, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.rawBody)) {
    if (req.rawBody.length > limit) throw new CallbackError('entity.too.large', 'Payload Too Large');
    return req.rawBody;
  }
  if (req._body === true || req.readableEnded) {
    throw new CallbackError('body.already_parsed', ALREADY_PARSED, { expose: true });
  }
  const length = req.headers['content-length'];
  try {
    return await getRawBody(req, { limit, length: length === undefined ? undefined : length });
  } catch (error) {
    const type = RAW_BODY_TYPES[(error as { type?: string }).type ?? ''];
    if (type === 'body.already_parsed') throw new CallbackError(type, ALREADY_PARSED, { expose: true, cause: error });
    if (type !== undefined) throw new CallbackError(type, (error as Error).message, { cause: error });
    throw new CallbackError('request.aborted', 'The request body could not be read', { cause: error });
  }
}

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
 * from `Content-Length`) and, when `timeoutMs` is given, a deadline for the whole body
 * (`request.timeout`: a client that sends headers and stalls cannot hold the request open).
 * A `req.rawBody` Buffer saved by the app's own parser is used as is; a body consumed without
 * one fails at once with `body.already_parsed`, never a hang.
 */
export async function readBody(req: MaybeParsedRequest, limit: number, timeoutMs?: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.rawBody)) {
    if (req.rawBody.length > limit) throw new CallbackError('entity.too.large', 'Payload Too Large');
    return req.rawBody;
  }
  // A client that left before we got to the body (an async middleware ran first) leaves the stream
  // unreadable, which raw-body reports as `stream.not.readable`: that is an abort, not a parser.
  if (req.readableAborted && !req.readableEnded && req._body !== true) {
    throw new CallbackError('request.aborted', 'The client closed the connection before the body was read');
  }
  if (req._body === true || req.readableEnded) {
    throw new CallbackError('body.already_parsed', ALREADY_PARSED, { expose: true });
  }
  const length = req.headers['content-length'];
  let timer: NodeJS.Timeout | undefined;
  try {
    const reading = getRawBody(req, { limit, length: length === undefined ? undefined : length });
    if (timeoutMs === undefined) return await reading;
    // race() keeps a handler on `reading`, so its later rejection (the socket closing) is not unhandled.
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new CallbackError('request.timeout', `The body did not arrive within ${timeoutMs} ms`)), timeoutMs);
    });
    return await Promise.race([reading, deadline]);
  } catch (error) {
    if (error instanceof CallbackError) throw error;
    const type = RAW_BODY_TYPES[(error as { type?: string }).type ?? ''];
    if (type === 'body.already_parsed') throw new CallbackError(type, ALREADY_PARSED, { expose: true, cause: error });
    if (type !== undefined) throw new CallbackError(type, (error as Error).message, { cause: error });
    throw new CallbackError('request.aborted', 'The request body could not be read', { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

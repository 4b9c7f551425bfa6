import type { IncomingMessage } from 'node:http';
// From node:timers, not the global: the end-of-turn hook runs in real time even while a test suite
// fakes timers (the deadline itself is a global timer, which such a test controls).
import { setImmediate } from 'node:timers';
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
 *
 * A body whose every announced byte is already buffered in the stream is returned at once, not
 * as a promise: see {@link takeBuffered}.
 */
export function readBody(req: MaybeParsedRequest, limit: number, timeoutMs?: number): Buffer | Promise<Buffer> {
  if (Buffer.isBuffer(req.rawBody)) {
    if (req.rawBody.length > limit) return Promise.reject(new CallbackError('entity.too.large', 'Payload Too Large'));
    return req.rawBody;
  }
  // A client that left before we got to the body (an async middleware ran first) leaves the stream
  // unreadable, which raw-body reports as `stream.not.readable`: that is an abort, not a parser.
  if (req.readableAborted && !req.readableEnded && req._body !== true) {
    return Promise.reject(new CallbackError('request.aborted', 'The client closed the connection before the body was read'));
  }
  if (req._body === true || req.readableEnded) {
    return Promise.reject(new CallbackError('body.already_parsed', ALREADY_PARSED, { expose: true }));
  }
  const length = req.headers['content-length'];
  const buffered = takeBuffered(req, length, limit);
  if (buffered !== undefined) return buffered;
  // One promise per body: raw-body's callback form, and the deadline rejects the same promise
  // (raw-body's later callback then settles nothing).
  return new Promise<Buffer>((resolve, reject) => {
    const deadline = timeoutMs === undefined ? undefined : deadlines.watch(reject, timeoutMs);
    try {
      getRawBody(req, { limit, length: length === undefined ? undefined : length }, (error, body) => {
        if (deadline !== undefined) deadlines.settle(deadline);
        if (error) reject(bodyError(error));
        else resolve(body);
      });
    } catch (error) {
      if (deadline !== undefined) deadlines.settle(deadline);
      reject(bodyError(error));
    }
  });
}

/**
 * The whole body in one `read()`, when the stream already holds exactly the `Content-Length`
 * bytes the request announced (within `limit`); otherwise `undefined`, and raw-body reads it.
 *
 * Why: a callback is a few hundred bytes that arrive in the packet carrying the headers, and
 * node:http pushes them into the request a moment after the `request` event (the middleware
 * yields once before reading, so they are there). raw-body's five listeners, their removal, an
 * `AsyncResource` and a copy of the one chunk cost 8–15% of the router's own CPU per callback
 * (bench/README.md, "Buffered bodies read at once"). The parser never pushes more body than
 * `Content-Length` says, so holding that many bytes means the body is complete.
 */
function takeBuffered(req: MaybeParsedRequest, length: string | undefined, limit: number): Buffer | undefined {
  // A flowing stream belongs to someone else's listener; an encoding would make read() return text.
  if (length === undefined || req.readableFlowing === true || req.readableEncoding !== null) return undefined;
  const size = req.readableLength;
  if (size === 0 || size > limit || Number(length) !== size) return undefined;
  const body: unknown = req.read(size);
  return Buffer.isBuffer(body) ? body : undefined;
}

/** A body read with a deadline. */
interface Deadline {
  reject: (error: CallbackError) => void;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

/**
 * Body deadlines, armed at the end of the turn of the event loop in which their read began, and
 * only for reads still pending then.
 *
 * Nearly every callback's body comes in the packet that carries its headers and is read within
 * that turn; a timer per request, set and cleared at once, cost about 1.5% of the `node:http`
 * bench row's CPU. Here a read costs an object and an array slot, and a body that is still
 * coming at the end of the turn gets its timer then: its deadline starts at most one turn late.
 * The timer is the global `setTimeout`, so a test that fakes timers controls it as before; the
 * end-of-turn hook is `setImmediate` from `node:timers`, which fake timers leave alone.
 */
class BodyDeadlines {
  private started: Deadline[] = [];

  /** Watches a read that started in this turn; `reject` is called with `request.timeout` if it is not settled in time. */
  watch(reject: Deadline['reject'], timeoutMs: number): Deadline {
    const deadline: Deadline = { reject, timeoutMs, timer: undefined, settled: false };
    if (this.started.push(deadline) === 1) setImmediate(this.arm);
    return deadline;
  }

  /** The read is over, one way or the other: no timeout for it. */
  settle(deadline: Deadline): void {
    deadline.settled = true;
    if (deadline.timer !== undefined) clearTimeout(deadline.timer);
  }

  private readonly arm = (): void => {
    const started = this.started;
    this.started = [];
    for (const deadline of started) {
      if (!deadline.settled) deadline.timer = setTimeout(expire, deadline.timeoutMs, deadline);
    }
  };
}

function expire(deadline: Deadline): void {
  if (deadline.settled) return;
  deadline.settled = true;
  deadline.reject(new CallbackError('request.timeout', `The body did not arrive within ${deadline.timeoutMs} ms`));
}

const deadlines = new BodyDeadlines();

/** raw-body's error as ours. */
function bodyError(error: unknown): CallbackError {
  const type = RAW_BODY_TYPES[(error as { type?: string }).type ?? ''];
  if (type === 'body.already_parsed') return new CallbackError(type, ALREADY_PARSED, { expose: true, cause: error });
  if (type !== undefined) return new CallbackError(type, (error as Error).message, { cause: error });
  return new CallbackError('request.aborted', 'The request body could not be read', { cause: error });
}

/**
 * Every refusal and failure the router produces is a {@link CallbackError}: an HTTP status, a
 * dotted lowercase `type` (the same taxonomy as body-parser and raw-body) and an `expose` flag
 * that says whether `message` is safe to send to the caller.
 */

/** The dotted error types, each with a fixed HTTP status (see the README's Errors table). */
export type CallbackErrorType =
  | 'event.in_flight'
  | 'method.not_allowed'
  | 'rate.limited'
  | 'ip.forbidden'
  | 'merchant.mismatch'
  | 'signature.missing'
  | 'signature.invalid'
  | 'entity.too.large'
  | 'content_type.unsupported'
  | 'charset.unsupported'
  | 'encoding.unsupported'
  | 'payload.malformed'
  | 'payload.invalid'
  | 'request.aborted'
  | 'request.size.invalid'
  | 'request.timeout'
  | 'https.required'
  | 'body.already_parsed'
  | 'handler.failed'
  | 'handler.timeout'
  | 'inbox.undecryptable'
  | 'store.unavailable'
  | 'api.unauthorized'
  | 'api.not_found'
  | 'api.rate_limited'
  | 'api.unavailable'
  | 'api.timeout'
  | 'api.invalid_response';

const STATUS: Record<CallbackErrorType, number> = {
  'event.in_flight': 409,
  'method.not_allowed': 405,
  'rate.limited': 429,
  'ip.forbidden': 403,
  'merchant.mismatch': 403,
  'signature.missing': 401,
  'signature.invalid': 401,
  'entity.too.large': 413,
  'content_type.unsupported': 415,
  'charset.unsupported': 415,
  'encoding.unsupported': 415,
  'payload.malformed': 400,
  'payload.invalid': 400,
  'request.aborted': 400,
  'request.size.invalid': 400,
  'request.timeout': 408,
  'https.required': 403,
  'body.already_parsed': 500,
  'handler.failed': 500,
  'handler.timeout': 503,
  'inbox.undecryptable': 500,
  'store.unavailable': 503,
  // Status-API client errors carry the upstream status (or the gateway status that describes it).
  'api.unauthorized': 401,
  'api.not_found': 404,
  'api.rate_limited': 429,
  'api.unavailable': 503,
  'api.timeout': 504,
  'api.invalid_response': 502,
};

/**
 * The short body sent for each type. 4xx bodies say what was wrong without echoing input;
 * signature failures share one generic text so a prober learns nothing about which check failed.
 */
const PUBLIC_MESSAGE: Record<CallbackErrorType, string> = {
  'event.in_flight': 'This event is already being processed; retry later',
  'method.not_allowed': 'Method Not Allowed',
  'rate.limited': 'Too Many Requests',
  'ip.forbidden': 'Forbidden',
  'merchant.mismatch': 'Forbidden',
  'signature.missing': 'Unauthorized',
  'signature.invalid': 'Unauthorized',
  'entity.too.large': 'Payload Too Large',
  'content_type.unsupported': 'Unsupported Media Type',
  'charset.unsupported': 'Unsupported charset',
  'encoding.unsupported': 'Unsupported Content-Encoding',
  'payload.malformed': 'Malformed payload',
  'payload.invalid': 'Invalid payload',
  'request.aborted': 'Request aborted',
  'request.size.invalid': 'Request size did not match Content-Length',
  'request.timeout': 'Request Timeout',
  'https.required': 'HTTPS Required',
  'body.already_parsed': 'Internal Server Error',
  'handler.failed': 'Internal Server Error',
  'handler.timeout': 'Service Unavailable',
  'inbox.undecryptable': 'Internal Server Error',
  'store.unavailable': 'Service Unavailable',
  'api.unauthorized': 'Caibo status API refused the API key',
  'api.not_found': 'Payment request not found',
  'api.rate_limited': 'Caibo status API rate limit reached',
  'api.unavailable': 'Caibo status API unavailable',
  'api.timeout': 'Caibo status API timed out',
  'api.invalid_response': 'Caibo status API answered with an unexpected response',
};

/** Options for {@link CallbackError}. */
export interface CallbackErrorOptions {
  /** The underlying error, kept for logs; never sent to the caller. */
  cause?: unknown;
  /** Extra response headers (`Allow`, `Retry-After`). */
  headers?: Record<string, string>;
  /**
   * Whether `message` may be sent as the response body. Defaults to `false`: the body is then the
   * generic text for the type.
   */
  expose?: boolean;
}

/**
 * The one error class of the library. `status` is the HTTP status the router answers with,
 * `type` the dotted reason, `expose` whether `message` is safe to show the caller.
 */
export class CallbackError extends Error {
  override readonly name = 'CallbackError';
  /** The HTTP status the router answers with. */
  readonly status: number;
  /** Alias of `status`, as http-errors provides it. */
  readonly statusCode: number;
  /** The dotted reason, e.g. `signature.invalid`. */
  readonly type: CallbackErrorType;
  /** Whether `message` is safe to show to the caller. */
  readonly expose: boolean;
  /** Extra response headers for this refusal. */
  readonly headers: Record<string, string>;

  constructor(type: CallbackErrorType, message: string, options: CallbackErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.type = type;
    this.status = STATUS[type];
    this.statusCode = this.status;
    this.expose = options.expose ?? false;
    this.headers = options.headers ?? {};
  }

  /** The response body: the message when exposed, else the generic text for the type. */
  get publicMessage(): string {
    return this.expose ? this.message : PUBLIC_MESSAGE[this.type];
  }
}

/** The HTTP status for a type. */
export function statusOf(type: CallbackErrorType): number {
  return STATUS[type];
}

import { computeSignature } from '../core/signature';

/**
 * The `X-Signature` value Caibo would send for `body` (Base64 HMAC-SHA512 keyed with `secret`).
 * Sign the exact bytes you send: for a GET callback, the raw query string after `?`.
 */
export function signPayload(body: string | Uint8Array, secret: string): string {
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
    throw new TypeError('signPayload: pass the exact body string or bytes you will send, not an object (serialise it first)');
  }
  return computeSignature(body, secret);
}

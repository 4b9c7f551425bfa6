import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/** HMAC-SHA512 digests are 64 bytes; anything else cannot be a valid signature. */
const DIGEST_BYTES = 64;
/** Standard or URL-safe Base64, padded or not. Anything else (hex, commas from a repeated header) fails. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** A secret prepared once, at start-up, so no request re-derives key material. */
export type PreparedSecret = KeyObject;

/** Turns configured secrets into key objects (their UTF-8 bytes are the HMAC key). */
export function prepareSecrets(secrets: readonly string[]): PreparedSecret[] {
  return secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
}

/** The Base64 HMAC-SHA512 of `payload`: the value Caibo sends in `X-Signature`. */
export function computeSignature(payload: string | Uint8Array, secret: string | PreparedSecret): string {
  return createHmac('sha512', secret).update(payload).digest('base64');
}

/**
 * Decodes an `X-Signature` value to the 64 digest bytes, or `null` when it cannot be one.
 * Surrounding whitespace is ignored (proxies fold and pad headers); inner whitespace is not.
 */
export function decodeSignature(header: string): Buffer | null {
  const value = header.trim();
  // 64 bytes are 86 Base64 characters unpadded, 88 padded.
  if (value.length < 86 || value.length > 88 || !BASE64.test(value)) return null;
  // Node's Base64 decoder takes the URL-safe alphabet (`-`, `_`) as well: no rewrite needed.
  const decoded = Buffer.from(value, 'base64');
  return decoded.length === DIGEST_BYTES ? decoded : null;
}

/** The outcome of {@link verifySignature}. */
export type SignatureCheck =
  | { ok: true; secretIndex: number }
  | { ok: false; reason: 'missing' | 'invalid' };

/**
 * Checks `header` against the HMAC-SHA512 of `payload` under each secret, in constant time per
 * secret. Every secret is tried even after a match, so timing does not reveal which one matched.
 *
 * @param payload - the raw bytes exactly as received (the body, or the raw query string for GET)
 * @param header - the `X-Signature` header value, if any
 * @param secrets - the configured secrets, newest first; the index of the match is returned
 */
export function verifySignature(
  payload: string | Uint8Array,
  header: string | string[] | undefined,
  secrets: readonly (string | PreparedSecret)[],
): SignatureCheck {
  if (header === undefined) return { ok: false, reason: 'missing' };
  // Two X-Signature headers are ambiguous: refuse rather than pick one.
  if (Array.isArray(header)) return { ok: false, reason: 'invalid' };
  if (header.trim() === '') return { ok: false, reason: 'missing' };
  const given = decodeSignature(header);
  if (given === null) return { ok: false, reason: 'invalid' };
  let match = -1;
  for (let i = 0; i < secrets.length; i++) {
    const expected = createHmac('sha512', secrets[i]!).update(payload).digest();
    if (timingSafeEqual(expected, given) && match === -1) match = i;
  }
  return match === -1 ? { ok: false, reason: 'invalid' } : { ok: true, secretIndex: match };
}

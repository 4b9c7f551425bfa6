import { isUtf8 } from 'node:buffer';
import { parse as parseQueryString } from 'node:querystring';
import { parse as parseLosslessJson } from 'lossless-json';
import { CallbackError } from '../errors';

/**
 * A flat map of received field names to string values. It has no prototype, so a field named
 * `__proto__` or `constructor` is just data.
 */
export type Fields = Record<string, string>;

/** How a body is encoded. */
export type BodyFormat = 'form' | 'json';

/** More fields than any Caibo payload carries; the cap keeps a flood of keys cheap to refuse. */
export const MAX_FIELDS = 1000;

/** Decodes the raw bytes as UTF-8, refusing invalid sequences and dropping a leading BOM. */
export function decodeUtf8(raw: Uint8Array): string {
  if (!isUtf8(raw)) throw new CallbackError('payload.malformed', 'Body is not valid UTF-8', { expose: true });
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Parses `application/x-www-form-urlencoded` text (also a GET query string). Caibo's published
 * example is not percent-encoded (`notes=Payment notes`); URLSearchParams keeps such spaces.
 * A repeated field is refused: which copy would be the truth is ambiguous.
 */
export function parseForm(text: string): Fields {
  // node:querystring decodes like URLSearchParams ('+' is a space, bad escapes stay as sent) at a
  // fraction of its cost, into an object without a prototype; a repeated name becomes an array.
  const parsed = parseQueryString(text, '&', '=', { maxKeys: MAX_FIELDS + 1 });
  let count = 0;
  for (const name in parsed) {
    const value = parsed[name];
    if (Array.isArray(value)) throw new CallbackError('payload.invalid', `Field "${truncate(name)}" is repeated`, { expose: true });
    if (++count > MAX_FIELDS) throw new CallbackError('payload.invalid', `More than ${MAX_FIELDS} fields`, { expose: true });
  }
  return parsed as Fields;
}

/**
 * Parses a JSON object whose numbers stay as their source text, so a bare 17-digit id such as
 * `16772761082427695` is not rounded by `Number`. Scalars become strings; nested objects and
 * arrays are kept as their JSON text (the schema then refuses them where a scalar is required).
 */
export function parseJson(text: string): Fields {
  let value: unknown;
  try {
    value = parseLosslessJson(text, null, (digits: string) => digits);
  } catch (error) {
    throw new CallbackError('payload.malformed', 'Body is not valid JSON', { expose: true, cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CallbackError('payload.invalid', 'JSON body must be an object', { expose: true });
  }
  const fields: Fields = Object.create(null);
  let count = 0;
  for (const name of Object.keys(value)) {
    if (++count > MAX_FIELDS) throw new CallbackError('payload.invalid', `More than ${MAX_FIELDS} fields`, { expose: true });
    const item = (value as Record<string, unknown>)[name];
    if (item === null || item === undefined) continue;
    if (typeof item === 'string') fields[name] = item;
    else if (typeof item === 'boolean') fields[name] = String(item);
    else fields[name] = JSON.stringify(item, (_k, v: unknown) => v);
  }
  return fields;
}

/** Parses a raw body in the given format. */
export function parseBody(raw: Uint8Array, format: BodyFormat): Fields {
  const text = decodeUtf8(raw);
  return format === 'json' ? parseJson(text) : parseForm(text);
}

/** Shortens a name for use in an error message, so long attacker input is not echoed whole. */
export function truncate(value: string, max = 40): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

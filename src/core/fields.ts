import { isUtf8 } from 'node:buffer';
import { parse as parseLosslessJson } from 'lossless-json';
import { CallbackError } from '../errors';

/**
 * A flat map of received field names to string values. Nothing is inherited, so a field named
 * `__proto__` or `constructor` is just data: see {@link createFields}.
 */
export type Fields = Record<string, string>;

/**
 * The prototype of every {@link Fields} object: empty, frozen, with no prototype of its own.
 * `Object.prototype` is not on the chain, so `__proto__` is an ordinary own field and no
 * inherited name (`constructor`, `toString`) reads as a field that was sent.
 *
 * Why not `Object.create(null)`: V8 keeps such objects in dictionary mode, where every store of a
 * freshly parsed name is a hash-table insert and copying them out sorts their keys first. An
 * instance of a constructor gets fast properties, which made parsing plus building the event's
 * `data` about 1.4 µs cheaper per request.
 */
const FieldBag = function FieldBag(this: object) {} as unknown as new () => Fields;
FieldBag.prototype = Object.freeze(Object.create(null) as object) as Fields;

/** A new, empty {@link Fields} object. */
export function createFields(): Fields {
  return new FieldBag();
}

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

/** The value of an ASCII hex digit, or -1. */
function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/**
 * One name or value as the WHATWG URL standard decodes it (and so `URLSearchParams`): `+` is a
 * space, then `%XX` escapes are decoded over the UTF-8 bytes, a malformed escape stays as sent,
 * and bytes that are not UTF-8 become U+FFFD.
 */
function decodeComponent(raw: string): string {
  const spaced = raw.includes('+') ? raw.replace(/\+/g, ' ') : raw;
  if (!spaced.includes('%')) return spaced;
  const bytes = Buffer.from(spaced, 'utf8');
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const high = bytes[i] === 0x25 && i + 2 < bytes.length ? hexValue(bytes[i + 1]!) : -1;
    const low = high === -1 ? -1 : hexValue(bytes[i + 2]!);
    if (low === -1) {
      bytes[length++] = bytes[i]!;
    } else {
      bytes[length++] = high * 16 + low;
      i += 2;
    }
  }
  return bytes.toString('utf8', 0, length);
}

/**
 * The field names of the last form parsed, as property keys (so already internalized). Caibo
 * sends the same names in the same order every time.
 */
let lastNames: readonly string[] = [];

/**
 * Parses `application/x-www-form-urlencoded` text (also a GET query string) into a
 * {@link Fields} object. Caibo's published example is not percent-encoded (`notes=Payment notes`);
 * such spaces are kept. A repeated field is refused: which copy would be the truth is ambiguous.
 *
 * Decodes exactly as `URLSearchParams` (a property test holds the two equal): `+` is a space,
 * escapes are decoded as UTF-8, a malformed escape stays as sent, empty segments are skipped.
 * One pass, with the repeat and count checks made as it goes, costs less than `URLSearchParams`
 * or `node:querystring` and a second loop over their result.
 *
 * Why the last form's names: a fresh slice used as a property key is looked up in V8's string
 * table on each store and each load, which was most of this function's time. A name equal to
 * the one in the same place last time is stored under that earlier, internalized string instead
 * (about 0.5 µs less per notification). While every name so far has matched, none can repeat
 * (the last form's names are distinct), so the repeat check starts at the first name that differs.
 */
export function parseForm(text: string): Fields {
  const fields = createFields();
  // Caibo's bodies are usually not encoded at all: one look at the whole text spares a look at
  // each name and value.
  const plain = text.indexOf('%') === -1 && text.indexOf('+') === -1;
  const expected = lastNames;
  let matching = true;
  let count = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      const eq = text.indexOf('=', start);
      const hasValue = eq !== -1 && eq < end;
      const rawName = text.slice(start, hasValue ? eq : end);
      const rawValue = hasValue ? text.slice(eq + 1, end) : '';
      let name = plain ? rawName : decodeComponent(rawName);
      if (matching && name === expected[count]) {
        name = expected[count]!;
      } else {
        matching = false;
        if (fields[name] !== undefined) throw new CallbackError('payload.invalid', `Field "${truncate(name)}" is repeated`, { expose: true });
        if (count >= MAX_FIELDS) throw new CallbackError('payload.invalid', `More than ${MAX_FIELDS} fields`, { expose: true });
      }
      fields[name] = plain ? rawValue : decodeComponent(rawValue);
      count++;
    }
    start = end + 1;
  }
  if (!matching || count !== expected.length) lastNames = Object.keys(fields);
  return fields;
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
  const fields = createFields();
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

import type { Logger } from '../logger';

/**
 * Last-line redaction for text the router does not write itself: error messages from the
 * merchant's handler and hooks, from stores and from drivers. Our own log fields (route, key,
 * status, error type) carry no payer data by construction and are left alone.
 */

const REDACTED = '[redacted]';
/** 13 to 19 digits, optionally grouped by single spaces or dashes: the shape of a card number. */
const CARD_LIKE = /(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])/g;

/** The Luhn check every payment card number passes; ids that fail it are left readable. */
export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * Replaces every occurrence of the given values (secrets, payer fields) and every card-like
 * digit run that passes the Luhn check with `[redacted]`. Values shorter than 3 characters are
 * not searched for: they would redact ordinary words.
 */
export function redactText(text: string, values: readonly (string | null | undefined)[] = []): string {
  let out = text;
  for (const value of values) {
    if (typeof value === 'string' && value.length >= 3) out = out.split(value).join(REDACTED);
  }
  return out.replace(CARD_LIKE, (run) => (luhn(run.replace(/[ -]/g, '')) ? REDACTED : run));
}

function redactErr(value: unknown, values: readonly string[]): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? redactText(value, values) : value;
  const err = value as { name?: unknown; message?: unknown };
  return {
    ...err,
    ...(typeof err.message === 'string' && { message: redactText(err.message, values) }),
    ...(typeof err.name === 'string' && { name: redactText(err.name, values) }),
  };
}

/**
 * Wraps a logger so the message and the `err` field never carry a configured secret or a
 * card-like number, whoever produced them.
 */
export function redactingLogger(logger: Logger, secrets: readonly string[]): Logger {
  const wrap =
    (level: keyof Logger) =>
    (obj: Record<string, unknown>, msg?: string): void => {
      const fields = 'err' in obj ? { ...obj, err: redactErr(obj.err, secrets) } : obj;
      if (msg === undefined) logger[level](fields);
      else logger[level](fields, redactText(msg, secrets));
    };
  return { info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}

import { readFile } from 'node:fs/promises';
import { parse as parseLosslessJson } from 'lossless-json';
import { formBody, sampleNotification, type NotificationFields } from '../testing/samples';
import { UsageError } from './args';

/** The statuses `send --status` knows, as Caibo's two status ids. */
export const STATUSES = {
  paid: { paymentRequestStatusId: '1', transactionStatusId: '1' },
  unpaid: { paymentRequestStatusId: '2', transactionStatusId: '0' },
  cancelled: { paymentRequestStatusId: '3', transactionStatusId: '0' },
  declined: { paymentRequestStatusId: '2', transactionStatusId: '2' },
} as const;
export type StatusName = keyof typeof STATUSES;

/** What `send` builds a notification from. */
export interface NotificationFlags {
  file?: string;
  status?: string;
  id?: string;
  transactionId?: string;
  amount?: string;
  currency?: string;
  reference?: string;
  merchantId?: string;
  /** `name=value` pairs from `--field`. */
  fields?: string[];
}

const DIGITS = /^\d{1,32}$/;
const DECIMAL = /^\d+(\.\d+)?$/;

function digits(flag: string, value: string): string {
  if (!DIGITS.test(value)) throw new UsageError(`--${flag} must be digits (ids are strings of up to 32 digits), got "${value}"`);
  return value;
}

/** Reads a notification file: a JSON object of fields, or a form body (Caibo's own format). */
async function fromFile(path: string): Promise<NotificationFields> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      // Numbers are kept as their source text: a bare 17-digit id would lose precision as a Number.
      parsed = parseLosslessJson(trimmed, null, (digitsText: string) => digitsText);
    } catch (error) {
      throw new UsageError(`--file ${path} is not valid JSON: ${(error as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`--file ${path} must hold a JSON object of fields`);
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  }
  return Object.fromEntries(new URLSearchParams(trimmed));
}

/**
 * Builds the base notification: the file (or the published example), then `--status`, then the
 * single-field flags, then each `--field name=value`.
 */
export async function buildNotification(flags: NotificationFlags): Promise<NotificationFields> {
  const fields = flags.file === undefined ? sampleNotification() : await fromFile(flags.file);
  const status = flags.status ?? (flags.file === undefined ? 'paid' : undefined);
  if (status !== undefined) {
    if (!(status in STATUSES)) throw new UsageError(`--status must be one of ${Object.keys(STATUSES).join(', ')}, got "${status}"`);
    Object.assign(fields, STATUSES[status as StatusName]);
    if (status !== 'declined' && flags.file === undefined) {
      // The published example carries a decline reason; a generated success should not.
      delete fields.message;
      delete fields.code;
    }
  }
  if (flags.id !== undefined) fields.id = digits('id', flags.id);
  if (flags.transactionId !== undefined) fields.transactionId = digits('transaction-id', flags.transactionId);
  if (flags.merchantId !== undefined) fields.merchantId = digits('merchant-id', flags.merchantId);
  if (flags.amount !== undefined) {
    if (!DECIMAL.test(flags.amount)) throw new UsageError(`--amount must be a decimal such as 10 or 12.50, got "${flags.amount}"`);
    Object.assign(fields, { grossAmount: flags.amount, fee: '0', netAmount: flags.amount });
  }
  if (flags.currency !== undefined) fields.unit = flags.currency;
  if (flags.reference !== undefined) fields.referenceId = flags.reference;
  for (const pair of flags.fields ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--field takes name=value, got "${pair}"`);
    fields[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return fields;
}

/**
 * The `index`-th of `count` distinct events derived from `base`: the payment request id and the
 * transaction id are advanced by `index` (as decimal strings, never through Number) and the
 * reference gets a `-<n>` suffix. With one event the base is sent unchanged.
 */
export function nthEvent(base: NotificationFields, index: number, count: number): NotificationFields {
  if (count === 1) return base;
  const next = { ...base };
  const bump = (value: string | undefined): string | undefined =>
    value !== undefined && DIGITS.test(value) ? (BigInt(value) + BigInt(index)).toString().padStart(value.length, '0') : value;
  const id = bump(base.id);
  if (id !== undefined) next.id = id;
  const transactionId = bump(base.transactionId);
  if (transactionId !== undefined) next.transactionId = transactionId;
  next.referenceId = `${base.referenceId ?? 'event'}-${index + 1}`;
  return next;
}

/** Encodes fields as the body (or, for GET, the query string) that will be signed and sent. */
export function encode(fields: NotificationFields, format: 'form' | 'json'): string {
  return format === 'json' ? JSON.stringify(fields) : formBody(fields);
}

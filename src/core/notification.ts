import { z } from 'zod';
import { CallbackError } from '../errors';
import { createFields, type Fields } from './fields';
import { compileSchemaCheck } from './schema-check';
import type { CaiboPaymentEvent, CaiboProvider, PaymentStatus, TransactionStatus } from './events';
import { isoTime } from './time';

const digits = z.string().regex(/^\d{1,32}$/, 'must be digits');
const statusId = z.string().regex(/^\d{1,4}$/, 'must be a numeric status code');
const decimal = z.string().regex(/^-?\d{1,30}(\.\d{1,30})?$/, 'must be a decimal number');
const text = z.string().max(10_000);

/**
 * The documented H2H notification. Only `id` and `paymentRequestStatusId` are required: a
 * rejected callback is retried and eventually lost, so optional fields stay optional and unknown
 * status codes pass (they decode to `unknown`).
 *
 * Keep it to strings, patterns and lengths: it is also compiled by ajv from its JSON Schema
 * (see {@link compileSchemaCheck}), which has no `.refine()` or `.transform()`.
 */
export const notificationSchema = z.object({
  id: digits,
  transactionId: digits.optional(),
  transactionStatusId: statusId.optional(),
  paymentRequestStatusId: statusId,
  merchantId: digits.optional(),
  unit: z.string().regex(/^[A-Za-z0-9]{1,12}$/, 'must be a currency code').optional(),
  grossAmount: decimal.optional(),
  fee: decimal.optional(),
  netAmount: decimal.optional(),
  referenceId: text.optional(),
  notes: text.optional(),
  clientId: text.optional(),
  clientName: text.optional(),
  clientEmail: text.optional(),
  clientPhone: text.optional(),
  clientMemberId: text.optional(),
  message: text.optional(),
  code: text.optional(),
});

/** The validated notification fields. */
export type Notification = z.infer<typeof notificationSchema>;

const PAYMENT_STATUS: Record<string, PaymentStatus> = { '1': 'paid', '2': 'unpaid', '3': 'cancelled' };
const TRANSACTION_STATUS: Record<string, TransactionStatus> = {
  '0': 'waiting',
  '1': 'approved',
  '2': 'declined',
  '3': 'pending',
};

/** Decodes `paymentRequestStatusId`; codes Caibo may add later are `unknown`, never an error. */
export function paymentStatusOf(id: string): PaymentStatus {
  return PAYMENT_STATUS[id] ?? 'unknown';
}

/** Decodes `transactionStatusId`; absent or new codes are `unknown`. */
export function transactionStatusOf(id: string | undefined | null): TransactionStatus {
  return (id != null && TRANSACTION_STATUS[id]) || 'unknown';
}

/** `paid` and `cancelled` do not change again; `unpaid` may still become `paid`. */
export function isFinalPaymentStatus(status: PaymentStatus): boolean {
  return status === 'paid' || status === 'cancelled';
}

/**
 * The dedupe key is the payment state, not the channel:
 * `paymentRequestId:transactionId:transactionStatusId:paymentRequestStatusId`.
 */
export function eventKey(n: {
  id: string;
  transactionId?: string | null | undefined;
  transactionStatusId?: string | null | undefined;
  paymentRequestStatusId: string;
}): string {
  return `${n.id}:${n.transactionId ?? ''}:${n.transactionStatusId ?? ''}:${n.paymentRequestStatusId}`;
}

/** The fields the schema reads; it ignores (strips) every other one. */
const SCHEMA_FIELDS: readonly string[] = Object.keys(notificationSchema.shape);

/** Empty form values (`transactionId=`) mean "not sent". */
function withoutEmpty(fields: Fields): Fields {
  // Usually there are none: skip the copy then. Only the schema's fields can matter, and looking
  // them up costs less than enumerating every field.
  let empty = false;
  for (let i = 0; i < SCHEMA_FIELDS.length; i++) if (fields[SCHEMA_FIELDS[i]!] === '') empty = true;
  if (!empty) return fields;
  const out = createFields();
  for (const name in fields) if (fields[name] !== '') out[name] = fields[name]!;
  return out;
}

/** {@link notificationSchema} as one compiled yes/no check: the hot path's validation. */
const isNotification = compileSchemaCheck(notificationSchema);

/**
 * Validates received fields against {@link notificationSchema}, throwing `payload.invalid`.
 * Fields the check accepts are returned as they are (the schema's parse would copy them, minus
 * the fields it does not name, which nothing here reads); zod parses the rest and says what
 * is wrong.
 */
export function parseNotification(fields: Fields): Notification {
  const present = withoutEmpty(fields);
  if (isNotification(present)) return present as Notification;
  const result = notificationSchema.safeParse(present);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'body';
    const why = issue?.code === 'invalid_type' ? 'is missing or not a string' : (issue?.message ?? 'is invalid');
    throw new CallbackError('payload.invalid', `Invalid notification: ${where} ${why}`, { expose: true, cause: result.error });
  }
  return result.data;
}

/** What the router knows about a request besides its fields. */
export interface ReceiptInfo {
  provider: CaiboProvider;
  verified: boolean;
  secretIndex: number | null;
  receivedAt: Date;
}

/**
 * `fields` as a plain object (the event's `data`). A loop, because a spread (`{ ...fields }`) cost
 * more than all the rest of building the event when it was measured; `__proto__` is defined, never
 * assigned, so it stays a field and cannot replace the prototype.
 */
function plainFields(fields: Fields): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in fields) {
    if (name === '__proto__') Object.defineProperty(out, name, { value: fields[name], enumerable: true, writable: true, configurable: true });
    else out[name] = fields[name]!;
  }
  return out;
}

/** Builds the {@link CaiboPaymentEvent} from validated fields. */
export function normaliseNotification(n: Notification, fields: Fields, info: ReceiptInfo): CaiboPaymentEvent {
  const paymentStatus = paymentStatusOf(n.paymentRequestStatusId);
  return {
    kind: 'payment',
    provider: info.provider,
    key: eventKey(n),
    verified: info.verified,
    secretIndex: info.secretIndex,
    data: Object.freeze(plainFields(fields)),
    receivedAt: isoTime(info.receivedAt),
    paymentRequestId: n.id,
    transactionId: n.transactionId ?? null,
    paymentStatus,
    paymentStatusId: n.paymentRequestStatusId,
    transactionStatus: transactionStatusOf(n.transactionStatusId),
    transactionStatusId: n.transactionStatusId ?? null,
    final: isFinalPaymentStatus(paymentStatus),
    grossAmount: n.grossAmount ?? null,
    fee: n.fee ?? null,
    netAmount: n.netAmount ?? null,
    currency: n.unit ?? null,
    referenceId: n.referenceId ?? null,
    merchantId: n.merchantId ?? null,
    failure: n.message !== undefined || n.code !== undefined ? { message: n.message ?? null, code: n.code ?? null } : null,
    notes: n.notes ?? null,
    client: {
      id: n.clientId ?? null,
      name: n.clientName ?? null,
      email: n.clientEmail ?? null,
      phone: n.clientPhone ?? null,
      memberId: n.clientMemberId ?? null,
    },
  };
}

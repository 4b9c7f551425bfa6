import { z } from 'zod';
import type { CaiboPaymentEvent } from './events';
import { eventKey, isFinalPaymentStatus, paymentStatusOf, transactionStatusOf } from './notification';
import { isoTime } from './time';

const digits = z.string().regex(/^\d{1,32}$/);
const optionalText = z.string().max(10_000).nullish();
const decimal = z.string().regex(/^-?\d{1,30}(\.\d{1,30})?$/).nullish();

/**
 * The documented answer of `GET /payment-requests/status/{id}`. Numbers arrive as their source
 * text (lossless JSON), so ids and amounts are strings here too.
 */
export const statusResponseSchema = z.object({
  id: digits,
  paymentRequestStatusId: z.string().regex(/^\d{1,4}$/),
  transactionId: digits.nullish(),
  transactionNumber: optionalText,
  transactionStatusId: z.string().regex(/^\d{1,4}$/).nullish(),
  unit: optionalText,
  amount: decimal,
  referenceId: optionalText,
  notes: optionalText,
  client: z.record(z.string(), z.unknown()).nullish(),
  notifyUrl: optionalText,
  successUrl: optionalText,
  failureUrl: optionalText,
  lastLog: z
    .object({ transactionStatusId: z.string().nullish(), message: optionalText, code: optionalText })
    .nullish(),
});

/** A validated status-API answer. */
export type PaymentStatusResponse = z.infer<typeof statusResponseSchema>;

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/**
 * Turns a status-API answer into the same {@link CaiboPaymentEvent} a callback for that state
 * produces — same dedupe key — so a state learned by polling and later by callback (or the other
 * way round) reaches the handler once.
 */
export function statusToEvent(status: PaymentStatusResponse, receivedAt: Date): CaiboPaymentEvent {
  const paymentStatus = paymentStatusOf(status.paymentRequestStatusId);
  const client = status.client ?? {};
  const data: Record<string, string> = {};
  for (const [name, value] of Object.entries(status)) {
    if (value === null || value === undefined) continue;
    data[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  const failure = status.lastLog && (status.lastLog.message || status.lastLog.code)
    ? { message: status.lastLog.message ?? null, code: status.lastLog.code ?? null }
    : null;
  return {
    kind: 'payment',
    provider: 'status-api',
    key: eventKey({
      id: status.id,
      transactionId: status.transactionId,
      transactionStatusId: status.transactionStatusId,
      paymentRequestStatusId: status.paymentRequestStatusId,
    }),
    verified: true,
    secretIndex: null,
    data: Object.freeze(data),
    receivedAt: isoTime(receivedAt),
    paymentRequestId: status.id,
    transactionId: status.transactionId ?? null,
    paymentStatus,
    paymentStatusId: status.paymentRequestStatusId,
    transactionStatus: transactionStatusOf(status.transactionStatusId),
    transactionStatusId: status.transactionStatusId ?? null,
    final: isFinalPaymentStatus(paymentStatus),
    grossAmount: status.amount ?? null,
    fee: null,
    netAmount: null,
    currency: status.unit ?? null,
    referenceId: status.referenceId ?? null,
    merchantId: null,
    failure,
    notes: status.notes ?? null,
    client: {
      id: text(client.id),
      name: text(client.name),
      email: text(client.email),
      phone: text(client.phone),
      memberId: text(client.memberId),
    },
  };
}

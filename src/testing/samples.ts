/**
 * Caibo's published example notification, byte for byte. It is not percent-encoded (note the
 * spaces) and carries a failure message on an approved payment: real payloads look like this.
 */
export const PUBLISHED_EXAMPLE_BODY =
  'id=16772761082427695&transactionId=265111&transactionStatusId=1&paymentRequestStatusId=1&merchantId=16762420400394816&unit=USD&grossAmount=10&fee=0.5&netAmount=9.5&referenceId=12345&notes=Payment notes&clientId=16772748432912191&clientName=Client Name&clientEmail=client@email.com&clientPhone=1234567890&clientMemberId=12345&message=Stolen Card&code=008';

/** The fields of a Caibo H2H notification, all strings. */
export type NotificationFields = Record<string, string>;

/**
 * The published example's fields, with `overrides` applied. A field set to `undefined` is
 * removed. Ids stay strings: pass `{ id: '16772761082427695' }`, never a number.
 */
export function sampleNotification(overrides: Record<string, string | undefined> = {}): NotificationFields {
  const fields: NotificationFields = Object.fromEntries(new URLSearchParams(PUBLISHED_EXAMPLE_BODY));
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete fields[name];
    else fields[name] = value;
  }
  return fields;
}

/** Encodes fields as an `application/x-www-form-urlencoded` body (what Caibo sends). */
export function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

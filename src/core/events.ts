/**
 * The normalised events the merchant's handler receives. Ids and amounts are strings end to end:
 * Caibo ids have 17 digits and `Number('16772761082427695')` is `16772761082427696`.
 */

/** The callback routes, each a provider whose signature scheme and allowlist can be overridden. */
export type CaiboRoute = 'caibo' | 'caibo-gateway' | 'caibowh' | '3ds';

/** Where an event came from: a callback route, or `status-api` for a state learned by polling. */
export type CaiboProvider = CaiboRoute | 'status-api';

/** Payment request status: `paymentRequestStatusId` 1 paid, 2 unpaid, 3 cancelled. */
export type PaymentStatus = 'paid' | 'unpaid' | 'cancelled' | 'unknown';

/** Transaction status: `transactionStatusId` 0 waiting, 1 approved, 2 declined, 3 pending. */
export type TransactionStatus = 'waiting' | 'approved' | 'declined' | 'pending' | 'unknown';

/** Fields every event carries. */
export interface CaiboEventBase {
  /** The route the callback arrived on (`caibo`, `caibo-gateway`, `caibowh`, `3ds`). */
  provider: CaiboProvider;
  /** The dedupe key: the same key twice, by any route, is one event. */
  key: string;
  /** `true` when the signature was checked and matched; `false` only on routes opted out of signing. */
  verified: boolean;
  /** Which configured secret matched (0 is the first in the list), or `null` when not verified. */
  secretIndex: number | null;
  /** Every field received, as strings, exactly as sent (including payer data: do not log it). */
  data: Readonly<Record<string, string>>;
  /** When the router received the callback, as an ISO 8601 string. */
  receivedAt: string;
}

/** A failure reason as Caibo sends it (`message`, `code` with its leading zeros). */
export interface CaiboFailure {
  message: string | null;
  code: string | null;
}

/** The payer, as Caibo sends it. Personal data: keep it out of logs. */
export interface CaiboClientInfo {
  id: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
  memberId: string | null;
}

/** A payment status notification (the H2H notification, on any of the four routes). */
export interface CaiboPaymentEvent extends CaiboEventBase {
  kind: 'payment';
  /** The payment request id (`id`), 17 digits, as a string. */
  paymentRequestId: string;
  /** The transaction id, or `null` when the notification has none. */
  transactionId: string | null;
  /** The payment request status, decoded from `paymentRequestStatusId`. */
  paymentStatus: PaymentStatus;
  /** The raw `paymentRequestStatusId`. */
  paymentStatusId: string;
  /** The transaction status, decoded from `transactionStatusId` (`unknown` when absent or new). */
  transactionStatus: TransactionStatus;
  /** The raw `transactionStatusId`, or `null` when absent. */
  transactionStatusId: string | null;
  /** `true` for states that do not change again: `paid` and `cancelled`. */
  final: boolean;
  /** Amounts as decimal strings (`'10'`, `'0.5'`), or `null` when absent. */
  grossAmount: string | null;
  fee: string | null;
  netAmount: string | null;
  /** The currency (`unit`): `USD`, `EUR`, `BTC`, `USDT`, … */
  currency: string | null;
  /** The merchant's own order reference, echoed back. */
  referenceId: string | null;
  /** The merchant id from the control panel. */
  merchantId: string | null;
  /** `message`/`code` when sent (Caibo may send them on approved payments too). */
  failure: CaiboFailure | null;
  /** Payment notes (free text). */
  notes: string | null;
  /** The payer. */
  client: CaiboClientInfo;
}

/** A 3-D Secure authentication result on the `/3ds` route. */
export interface CaiboThreeDSEvent extends CaiboEventBase {
  kind: '3ds';
  /** `'2'` for EMV 3DS (`cres`), `'1'` for 3DS 1 (`PaRes`), `'unknown'` for plain fields without a version. */
  version: '1' | '2' | 'unknown';
  /** The 3DS transaction id (`threeDSServerTransID`, `MD`/`xid`, or `transactionId`). */
  transactionId: string;
  /** The ACS transaction id, when sent. */
  acsTransactionId: string | null;
  /** The 3DS transaction status letter (`Y`, `N`, `A`, `U`, `R`, `C`, …). */
  transStatus: string;
  /** The electronic commerce indicator, when sent. */
  eci: string | null;
  /** `true` when `transStatus` is `Y` (fully authenticated). */
  authenticated: boolean;
  /** `true` when the result will not change (`Y`, `N`, `A`, `R`); `C`/`U`/others are not final. */
  final: boolean;
  /** The payment request id, when the result carries `id`. */
  paymentRequestId: string | null;
  /** `threeDSSessionData` (3DS 2) or `MD` (3DS 1), as sent. */
  sessionData: string | null;
}

/** Any event the handler can receive; switch on `kind`. */
export type CaiboEvent = CaiboPaymentEvent | CaiboThreeDSEvent;

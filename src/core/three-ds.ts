import { inflateRawSync, inflateSync } from 'node:zlib';
import { z } from 'zod';
import { CallbackError } from '../errors';
import type { CaiboThreeDSEvent } from './events';
import type { Fields } from './fields';
import type { ReceiptInfo } from './notification';
import { isoTime } from './time';

/** A decoded PaRes is a small XML document; anything bigger is refused before it can inflate. */
const MAX_INFLATED = 64 * 1024;

const transId = z.string().min(1).max(64);
const statusLetter = z.string().regex(/^[A-Z]$/, 'must be one status letter');

/** EMV 3DS 2 challenge response (`cres`), Base64url JSON. */
const cresSchema = z.object({
  threeDSServerTransID: transId,
  acsTransID: transId.optional(),
  messageType: z.string().max(16).optional(),
  messageVersion: z.string().max(16).optional(),
  transStatus: statusLetter,
});

/** Plain result fields, for gateways that post the outcome directly. */
const plainSchema = z.object({
  transactionId: transId,
  transStatus: statusLetter,
  eci: z.string().regex(/^\d{1,2}$/).optional(),
  version: z.string().max(16).optional(),
  id: z.string().regex(/^\d{1,32}$/).optional(),
});

/** True when the fields look like a 3DS result rather than a payment notification. */
export function isThreeDSResult(fields: Fields): boolean {
  return 'cres' in fields || 'PaRes' in fields || 'transStatus' in fields;
}

function invalid(message: string, cause?: unknown): CallbackError {
  return new CallbackError('payload.invalid', `Invalid 3DS result: ${message}`, { expose: true, cause });
}

function decodeCres(value: string): z.infer<typeof cresSchema> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch (error) {
    throw invalid('cres is not Base64url JSON', error);
  }
  const result = cresSchema.safeParse(parsed);
  if (!result.success) throw invalid(`cres ${result.error.issues[0]?.path.join('.') || 'value'} is missing or invalid`);
  return result.data;
}

/** PaRes is Base64 of deflated XML; only `status`, `eci` and `xid` are read from it. */
function decodePaRes(value: string): { status: string; eci: string | null; xid: string | null } {
  const packed = Buffer.from(value.replace(/\s/g, ''), 'base64');
  let xml: string;
  try {
    xml = inflateSync(packed, { maxOutputLength: MAX_INFLATED }).toString('utf8');
  } catch {
    try {
      xml = inflateRawSync(packed, { maxOutputLength: MAX_INFLATED }).toString('utf8');
    } catch {
      xml = packed.toString('utf8');
    }
  }
  const status = /<status>\s*([A-Z])\s*<\/status>/.exec(xml)?.[1];
  if (!status) throw invalid('PaRes has no readable status');
  return {
    status,
    eci: /<eci>\s*(\d{1,2})\s*<\/eci>/.exec(xml)?.[1] ?? null,
    xid: /<xid>\s*([^<\s]{1,64})\s*<\/xid>/.exec(xml)?.[1] ?? null,
  };
}

/** The 3DS dedupe key: one authentication outcome per 3DS transaction. */
export function threeDSKey(transactionId: string, transStatus: string): string {
  return `3ds:${transactionId}:${transStatus}`;
}

/** Decodes a 3DS result in any of the accepted forms into a {@link CaiboThreeDSEvent}. */
export function normaliseThreeDS(fields: Fields, info: ReceiptInfo): CaiboThreeDSEvent {
  let version: CaiboThreeDSEvent['version'];
  let transactionId: string;
  let transStatus: string;
  let acsTransactionId: string | null = null;
  let eci: string | null = fields.eci ?? null;
  let sessionData: string | null = null;

  if (fields.cres !== undefined) {
    const cres = decodeCres(fields.cres);
    version = '2';
    transactionId = cres.threeDSServerTransID;
    transStatus = cres.transStatus;
    acsTransactionId = cres.acsTransID ?? null;
    sessionData = fields.threeDSSessionData ?? null;
  } else if (fields.PaRes !== undefined) {
    const pares = decodePaRes(fields.PaRes);
    const id = fields.MD || pares.xid;
    if (!id) throw invalid('PaRes needs MD or an xid');
    version = '1';
    transactionId = id;
    transStatus = pares.status;
    eci = pares.eci ?? eci;
    sessionData = fields.MD ?? null;
  } else {
    const result = plainSchema.safeParse(fields);
    if (!result.success) throw invalid(`${result.error.issues[0]?.path.join('.') || 'value'} is missing or invalid`);
    version = result.data.version?.startsWith('2') ? '2' : result.data.version?.startsWith('1') ? '1' : 'unknown';
    transactionId = result.data.transactionId;
    transStatus = result.data.transStatus;
  }
  if (eci !== null && !/^\d{1,2}$/.test(eci)) throw invalid('eci must be one or two digits');

  return {
    kind: '3ds',
    provider: info.provider,
    key: threeDSKey(transactionId, transStatus),
    verified: info.verified,
    secretIndex: info.secretIndex,
    data: Object.freeze({ ...fields }),
    receivedAt: isoTime(info.receivedAt),
    version,
    transactionId,
    acsTransactionId,
    transStatus,
    eci,
    authenticated: transStatus === 'Y',
    final: transStatus === 'Y' || transStatus === 'N' || transStatus === 'A' || transStatus === 'R',
    paymentRequestId: fields.id && /^\d{1,32}$/.test(fields.id) ? fields.id : null,
    sessionData,
  };
}

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { CallbackError } from '../errors';
import type { CaiboEvent } from '../core/events';

/** How inbox payloads are written: optionally encrypted, optionally without payer data. */
export interface PayloadCodec {
  encode(event: CaiboEvent): string;
  /** Throws a `CallbackError` of type `inbox.undecryptable` when a record fails authentication. */
  decode(key: string, payload: string): CaiboEvent;
}

/** One encryption key, prepared once. */
interface PreparedKey {
  id: string;
  key: Buffer;
}

/** The payer fields `payerData: 'drop'` removes before anything is stored. */
export const PAYER_FIELDS = ['clientName', 'clientEmail', 'clientPhone', 'clientMemberId', 'notes'] as const;

const PREFIX = 'enc:v1:';

/**
 * Decodes a 32-byte key given as a Buffer, base64 or hex string, throwing a fix-it `TypeError`.
 * Its id (first 8 bytes of its SHA-256, hex) names it in each record so rotation needs no migration.
 */
export function prepareKey(value: unknown, index: number): PreparedKey {
  let key: Buffer | undefined;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) key = Buffer.from(value);
  else if (typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value)) key = Buffer.from(value, 'hex');
  else if (typeof value === 'string' && /^[A-Za-z0-9+/_-]{43}=?$/.test(value)) key = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key === undefined || key.length !== 32) {
    throw new TypeError(
      `caiboCallbacks: encryption.keys[${index}] must be 32 bytes, as a Buffer, 64 hex characters or base64 ` +
        `(generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))")`,
    );
  }
  return { id: createHash('sha256').update(key).digest('hex').slice(0, 16), key };
}

/** Removes payer data from an event before it is stored. */
export function withoutPayerData(event: CaiboEvent): CaiboEvent {
  const data: Record<string, string> = { ...event.data };
  for (const field of PAYER_FIELDS) delete data[field];
  if (event.kind !== 'payment') return { ...event, data };
  return { ...event, data, notes: null, client: { ...event.client, name: null, email: null, phone: null, memberId: null } };
}

/**
 * Builds the inbox codec. With keys, payloads are sealed with AES-256-GCM: a fresh 12-byte nonce
 * per record and the record's dedupe key as associated data, so a ciphertext cannot be moved to
 * another record. The first key encrypts; every listed key decrypts.
 */
export function createCodec(options: { keys: readonly unknown[] | null; dropPayerData: boolean }): PayloadCodec {
  const keys = options.keys === null ? [] : options.keys.map(prepareKey);
  const byId = new Map(keys.map((k) => [k.id, k]));
  const current = keys[0];
  const strip = options.dropPayerData ? withoutPayerData : (event: CaiboEvent) => event;

  return {
    encode(event) {
      const json = JSON.stringify(strip(event));
      if (current === undefined) return json;
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current.key, nonce);
      cipher.setAAD(Buffer.from(event.key, 'utf8'));
      const sealed = Buffer.concat([cipher.update(json, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${PREFIX}${current.id}:${nonce.toString('base64')}:${sealed.toString('base64')}`;
    },
    decode(key, payload) {
      // A plaintext record was written before encryption was turned on: still readable.
      if (!payload.startsWith(PREFIX)) return JSON.parse(payload) as CaiboEvent;
      const [kid, nonce, sealed] = payload.slice(PREFIX.length).split(':');
      const prepared = kid === undefined ? undefined : byId.get(kid);
      if (prepared === undefined) {
        throw new CallbackError('inbox.undecryptable', `Inbox record ${key} is encrypted with key id ${kid ?? '?'}, which is not in encryption.keys`);
      }
      try {
        const bytes = Buffer.from(sealed ?? '', 'base64');
        const decipher = createDecipheriv('aes-256-gcm', prepared.key, Buffer.from(nonce ?? '', 'base64'));
        decipher.setAAD(Buffer.from(key, 'utf8'));
        decipher.setAuthTag(bytes.subarray(bytes.length - 16));
        const json = Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString('utf8');
        return JSON.parse(json) as CaiboEvent;
      } catch (cause) {
        throw new CallbackError('inbox.undecryptable', `Inbox record ${key} failed authentication (tampered, truncated or moved)`, { cause });
      }
    },
  };
}

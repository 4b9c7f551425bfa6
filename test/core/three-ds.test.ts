import { deflateRawSync, deflateSync } from 'node:zlib';
import { CallbackError } from '../../src/errors';
import { isThreeDSResult, normaliseThreeDS, threeDSKey } from '../../src/core/three-ds';
import type { ReceiptInfo } from '../../src/core/notification';

const INFO: ReceiptInfo = { provider: '3ds', verified: true, secretIndex: 0, receivedAt: new Date('2025-01-02T03:04:05Z') };

function cres(fields: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

/** A 3DS 1 PaRes as an ACS sends it: Base64 of a deflated ThreeDSecure XML document. */
function paRes(opts: { status: string; eci?: string; xid?: string; raw?: boolean }): string {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?><ThreeDSecure><Message id="m1"><PARes id="p1"><version>1.0.2</version>' +
    `<Merchant><acqBIN>411111</acqBIN><merID>123</merID></Merchant><Purchase><xid>${opts.xid ?? 'eGlkMDAwMDAwMDAwMDAwMDAwMDE='}</xid>` +
    '<date>20250102 03:04:05</date><purchAmount>1000</purchAmount><currency>840</currency><exponent>2</exponent></Purchase>' +
    `<pan>0000000000001111</pan><TX><time>20250102 03:04:06</time><status>${opts.status}</status><cavv>AAABBBCCC=</cavv>` +
    `${opts.eci === undefined ? '' : `<eci>${opts.eci}</eci>`}<cavvAlgorithm>2</cavvAlgorithm></TX></PARes></Message></ThreeDSecure>`;
  return (opts.raw ? deflateRawSync(xml) : deflateSync(xml)).toString('base64');
}

function refusal(fn: () => unknown): CallbackError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CallbackError);
    return error as CallbackError;
  }
  throw new Error('expected a CallbackError');
}

describe('isThreeDSResult', () => {
  it('recognises cres, PaRes and plain transStatus, and not a payment notification', () => {
    expect(isThreeDSResult({ cres: 'x' })).toBe(true);
    expect(isThreeDSResult({ PaRes: 'x', MD: 'y' })).toBe(true);
    expect(isThreeDSResult({ transactionId: '1', transStatus: 'Y' })).toBe(true);
    expect(isThreeDSResult({ id: '1', paymentRequestStatusId: '1' })).toBe(false);
  });
});

describe('normaliseThreeDS: EMV 3DS 2 cres', () => {
  const value = cres({
    threeDSServerTransID: '8a880dc0-d2d2-4067-bcb1-b08d1690b26e',
    acsTransID: 'd7c1ee99-9478-44a6-b1f2-391e29c6b340',
    messageType: 'CRes',
    messageVersion: '2.2.0',
    transStatus: 'Y',
  });

  it('decodes the base64url JSON and keeps threeDSSessionData', () => {
    const event = normaliseThreeDS({ cres: value, threeDSSessionData: 'c2Vzc2lvbi0xMjM' }, INFO);
    expect(event).toMatchObject({
      kind: '3ds',
      provider: '3ds',
      version: '2',
      transactionId: '8a880dc0-d2d2-4067-bcb1-b08d1690b26e',
      acsTransactionId: 'd7c1ee99-9478-44a6-b1f2-391e29c6b340',
      transStatus: 'Y',
      authenticated: true,
      final: true,
      sessionData: 'c2Vzc2lvbi0xMjM',
      key: threeDSKey('8a880dc0-d2d2-4067-bcb1-b08d1690b26e', 'Y'),
      verified: true,
      secretIndex: 0,
    });
    expect(event.data.cres).toBe(value);
  });

  it('accepts padded standard Base64 too', () => {
    const std = Buffer.from(JSON.stringify({ threeDSServerTransID: 't-1', transStatus: 'N' })).toString('base64');
    const event = normaliseThreeDS({ cres: std }, INFO);
    expect(event).toMatchObject({ transactionId: 't-1', transStatus: 'N', authenticated: false, final: true, sessionData: null });
  });

  it('marks a challenge (C) or unavailable (U) as not final and not authenticated', () => {
    for (const status of ['C', 'U']) {
      const event = normaliseThreeDS({ cres: cres({ threeDSServerTransID: 't-2', transStatus: status }) }, INFO);
      expect(event.final).toBe(false);
      expect(event.authenticated).toBe(false);
    }
  });

  it('refuses a cres that is not JSON, lacks the transaction id, or has a bad status', () => {
    expect(refusal(() => normaliseThreeDS({ cres: 'not-json' }, INFO)).type).toBe('payload.invalid');
    expect(refusal(() => normaliseThreeDS({ cres: cres({ transStatus: 'Y' }) }, INFO)).message).toMatch(/threeDSServerTransID/);
    expect(refusal(() => normaliseThreeDS({ cres: cres({ threeDSServerTransID: 't', transStatus: 'yes' }) }, INFO)).type).toBe('payload.invalid');
  });
});

describe('normaliseThreeDS: 3DS 1 PaRes + MD', () => {
  it('inflates a zlib-deflated PaRes and reads status and eci; MD is the transaction id', () => {
    const event = normaliseThreeDS({ PaRes: paRes({ status: 'Y', eci: '05' }), MD: 'order-77-session' }, INFO);
    expect(event).toMatchObject({
      kind: '3ds',
      version: '1',
      transactionId: 'order-77-session',
      transStatus: 'Y',
      eci: '05',
      authenticated: true,
      final: true,
      sessionData: 'order-77-session',
      key: '3ds:order-77-session:Y',
    });
  });

  it('inflates a raw-deflated PaRes, with line breaks in the Base64', () => {
    const wrapped = paRes({ status: 'A', eci: '06', raw: true }).replace(/(.{64})/g, '$1\r\n');
    const event = normaliseThreeDS({ PaRes: wrapped, MD: 'md-1' }, INFO);
    expect(event).toMatchObject({ transStatus: 'A', eci: '06', authenticated: false, final: true });
  });

  it('falls back to the xid when MD is absent', () => {
    const event = normaliseThreeDS({ PaRes: paRes({ status: 'N', xid: 'xid-123' }) }, INFO);
    expect(event).toMatchObject({ transactionId: 'xid-123', transStatus: 'N', eci: null, sessionData: null });
  });

  it('refuses a PaRes that inflates past the cap instead of expanding it', () => {
    const bomb = deflateSync(`<TX>${' '.repeat(2 * 1024 * 1024)}<status>Y</status></TX>`).toString('base64');
    expect(bomb.length).toBeLessThan(10_000);
    expect(refusal(() => normaliseThreeDS({ PaRes: bomb, MD: 'x' }, INFO)).type).toBe('payload.invalid');
  });

  it('refuses a PaRes without a readable status', () => {
    const e = refusal(() => normaliseThreeDS({ PaRes: Buffer.from('garbage').toString('base64'), MD: 'x' }, INFO));
    expect(e.type).toBe('payload.invalid');
    expect(e.message).toMatch(/PaRes/);
  });
});

describe('normaliseThreeDS: plain fields', () => {
  it('reads transactionId, transStatus, eci, version and id', () => {
    const event = normaliseThreeDS({ transactionId: '265111', transStatus: 'Y', eci: '05', version: '2.1.0', id: '16772761082427695' }, INFO);
    expect(event).toMatchObject({
      version: '2',
      transactionId: '265111',
      transStatus: 'Y',
      eci: '05',
      paymentRequestId: '16772761082427695',
      key: '3ds:265111:Y',
    });
  });

  it('reports version unknown when none is sent, and refuses a bad eci', () => {
    expect(normaliseThreeDS({ transactionId: '1', transStatus: 'R' }, INFO).version).toBe('unknown');
    expect(normaliseThreeDS({ transactionId: '1', transStatus: 'R', version: '1.0.2' }, INFO).version).toBe('1');
    expect(refusal(() => normaliseThreeDS({ transactionId: '1', transStatus: 'Y', eci: 'abc' }, INFO)).type).toBe('payload.invalid');
    expect(refusal(() => normaliseThreeDS({ transStatus: 'Y' }, INFO)).message).toMatch(/transactionId/);
  });

  it('gives the same outcome of one 3DS transaction one key, whatever the form', () => {
    const viaCres = normaliseThreeDS({ cres: cres({ threeDSServerTransID: 'tx-9', transStatus: 'Y' }) }, INFO);
    const viaPlain = normaliseThreeDS({ transactionId: 'tx-9', transStatus: 'Y' }, INFO);
    expect(viaPlain.key).toBe(viaCres.key);
    expect(normaliseThreeDS({ transactionId: 'tx-9', transStatus: 'N' }, INFO).key).not.toBe(viaCres.key);
  });
});

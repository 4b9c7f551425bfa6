import { createHmac } from 'node:crypto';
import { computeSignature, decodeSignature, prepareSecrets, verifySignature } from '../../src/core/signature';
import { PUBLISHED_EXAMPLE_BODY, signPayload } from '../../src/testing';

const SECRET = 'caibo_test_sk_signature';
const BODY = PUBLISHED_EXAMPLE_BODY;

/** The reference value, computed independently of the library. */
function reference(body: string, secret: string): string {
  return createHmac('sha512', secret).update(body, 'utf8').digest('base64');
}

describe('signPayload / computeSignature', () => {
  it('is the Base64 HMAC-SHA512 of the exact bytes', () => {
    expect(signPayload(BODY, SECRET)).toBe(reference(BODY, SECRET));
    expect(signPayload(Buffer.from(BODY), SECRET)).toBe(reference(BODY, SECRET));
    expect(computeSignature(BODY, prepareSecrets([SECRET])[0]!)).toBe(reference(BODY, SECRET));
    expect(signPayload(BODY, SECRET)).toHaveLength(88);
  });

  it('refuses an object with a message saying to serialise it', () => {
    expect(() => signPayload({ id: '1' } as unknown as string, SECRET)).toThrow(/serialise it first/);
  });
});

describe('verifySignature', () => {
  const good = signPayload(BODY, SECRET);
  const urlSafe = good.replace(/\+/g, '-').replace(/\//g, '_');
  const unpadded = good.replace(/=+$/, '');

  it('accepts standard Base64, padded and unpadded', () => {
    expect(verifySignature(BODY, good, [SECRET])).toEqual({ ok: true, secretIndex: 0 });
    expect(verifySignature(BODY, unpadded, [SECRET])).toEqual({ ok: true, secretIndex: 0 });
  });

  it('accepts URL-safe Base64, padded and unpadded', () => {
    // Make sure the fixture really exercises the alphabet difference.
    const body = `${BODY}&n=${[...Array(40).keys()].find((n) => /[+/]/.test(signPayload(`${BODY}&n=${n}`, SECRET)))}`;
    const sig = signPayload(body, SECRET);
    expect(sig).toMatch(/[+/]/);
    const safe = sig.replace(/\+/g, '-').replace(/\//g, '_');
    expect(verifySignature(body, safe, [SECRET])).toEqual({ ok: true, secretIndex: 0 });
    expect(verifySignature(body, safe.replace(/=+$/, ''), [SECRET])).toEqual({ ok: true, secretIndex: 0 });
    expect(verifySignature(BODY, urlSafe, [SECRET]).ok).toBe(true);
  });

  it('ignores surrounding whitespace but not inner whitespace', () => {
    expect(verifySignature(BODY, `  ${good} `, [SECRET]).ok).toBe(true);
    expect(verifySignature(BODY, `${good.slice(0, 40)} ${good.slice(40)}`, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
  });

  it('verifies bytes, string or Buffer alike', () => {
    expect(verifySignature(Buffer.from(BODY), good, [SECRET]).ok).toBe(true);
    expect(verifySignature(BODY, good, prepareSecrets([SECRET])).ok).toBe(true);
  });

  it('reports a missing header as missing', () => {
    expect(verifySignature(BODY, undefined, [SECRET])).toEqual({ ok: false, reason: 'missing' });
    expect(verifySignature(BODY, '   ', [SECRET])).toEqual({ ok: false, reason: 'missing' });
  });

  it('refuses a wrong signature, a changed body and a wrong secret as invalid', () => {
    expect(verifySignature(`${BODY}x`, good, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    expect(verifySignature(BODY, good, ['another-secret'])).toEqual({ ok: false, reason: 'invalid' });
    const flipped = (good[0] === 'A' ? 'B' : 'A') + good.slice(1);
    expect(verifySignature(BODY, flipped, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses values of the wrong length or alphabet', () => {
    const sha256 = createHmac('sha256', SECRET).update(BODY).digest('base64');
    expect(verifySignature(BODY, sha256, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    expect(verifySignature(BODY, good.slice(0, 85), [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    expect(verifySignature(BODY, `${good}AAAA`, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    const hex = createHmac('sha512', SECRET).update(BODY).digest('hex');
    expect(verifySignature(BODY, hex, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    expect(verifySignature(BODY, `sha512=${good}`, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses two X-Signature values (a list, or joined with a comma)', () => {
    expect(verifySignature(BODY, [good, good], [SECRET])).toEqual({ ok: false, reason: 'invalid' });
    expect(verifySignature(BODY, `${good}, ${good}`, [SECRET])).toEqual({ ok: false, reason: 'invalid' });
  });

  it('reports which secret of a rotation list matched', () => {
    const old = 'caibo_live_sk_old';
    const next = 'caibo_live_sk_new';
    expect(verifySignature(BODY, signPayload(BODY, next), [next, old])).toEqual({ ok: true, secretIndex: 0 });
    expect(verifySignature(BODY, signPayload(BODY, old), [next, old])).toEqual({ ok: true, secretIndex: 1 });
    // A retired secret that is no longer listed is refused.
    expect(verifySignature(BODY, signPayload(BODY, 'caibo_live_sk_retired'), [next, old])).toEqual({ ok: false, reason: 'invalid' });
  });
});

describe('decodeSignature', () => {
  it('returns the 64 digest bytes for valid input and null otherwise', () => {
    const digest = createHmac('sha512', SECRET).update(BODY).digest();
    expect(decodeSignature(digest.toString('base64'))).toEqual(digest);
    expect(decodeSignature(digest.toString('base64url'))).toEqual(digest);
    expect(decodeSignature('not base64 at all!')).toBeNull();
    expect(decodeSignature('')).toBeNull();
  });
});

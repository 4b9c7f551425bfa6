import { CaiboClient, CallbackError } from '../../src';
import { fakeStatusApi, statusBody } from './status-api';

const fast = { initialMs: 5, maxMs: 50 };

async function expectError(promise: Promise<unknown>, type: string, status: number): Promise<CallbackError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CallbackError);
  expect((error as CallbackError).type).toBe(type);
  expect((error as CallbackError).status).toBe(status);
  return error as CallbackError;
}

describe('CaiboClient.getPaymentStatus', () => {
  it('sends X-API-Key to /payment-requests/status/{id} and keeps 17-digit ids and amounts exact', async () => {
    const api = await fakeStatusApi([{ status: 200, body: statusBody() }]);
    try {
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: `${api.url}/` });
      const status = await client.getPaymentStatus('16772761082427695');
      expect(api.seen).toEqual([{ path: '/payment-requests/status/16772761082427695', apiKey: api.apiKey }]);
      expect(status.id).toBe('16772761082427695');
      expect(status.amount).toBe('10.50');
      expect(status.client).toMatchObject({ id: '16772748432912191' });
      expect(status.lastLog).toMatchObject({ code: '000' });
    } finally {
      await api.close();
    }
  });

  it('retries 429 honouring Retry-After, and 5xx, then succeeds', async () => {
    const api = await fakeStatusApi([
      { status: 429, headers: { 'retry-after': '0' } },
      { status: 503 },
      { status: 200, body: statusBody() },
    ]);
    try {
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, backoff: fast });
      expect((await client.getPaymentStatus('16772761082427695')).paymentRequestStatusId).toBe('1');
      expect(api.seen).toHaveLength(3);
    } finally {
      await api.close();
    }
  });

  it('gives up after maxRetries with api.rate_limited / api.unavailable', async () => {
    const limited = await fakeStatusApi([{ status: 429 }]);
    const down = await fakeStatusApi([{ status: 500 }]);
    try {
      await expectError(new CaiboClient({ apiKey: limited.apiKey, baseUrl: limited.url, maxRetries: 2, backoff: fast }).getPaymentStatus('1'), 'api.rate_limited', 429);
      expect(limited.seen).toHaveLength(3);
      await expectError(new CaiboClient({ apiKey: down.apiKey, baseUrl: down.url, maxRetries: 1, backoff: fast }).getPaymentStatus('1'), 'api.unavailable', 503);
      expect(down.seen).toHaveLength(2);
    } finally {
      await limited.close();
      await down.close();
    }
  });

  it('does not wait out a Retry-After longer than the backoff cap', async () => {
    const api = await fakeStatusApi([{ status: 429, headers: { 'retry-after': '3600' } }]);
    try {
      await expectError(new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, backoff: fast }).getPaymentStatus('1'), 'api.rate_limited', 429);
      expect(api.seen).toHaveLength(1);
    } finally {
      await api.close();
    }
  });

  it('times out slow answers and retries them', async () => {
    const api = await fakeStatusApi([{ status: 200, body: statusBody(), delayMs: 500 }, { status: 200, body: statusBody() }]);
    try {
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, timeoutMs: 100, backoff: fast });
      expect((await client.getPaymentStatus('16772761082427695')).id).toBe('16772761082427695');
      expect(api.seen).toHaveLength(2);
    } finally {
      await api.close();
    }
  });

  it('reports a timeout as api.timeout when no retry is left', async () => {
    const api = await fakeStatusApi([{ status: 200, body: statusBody(), delayMs: 400 }]);
    try {
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, timeoutMs: 50, maxRetries: 0 });
      await expectError(client.getPaymentStatus('16772761082427695'), 'api.timeout', 504);
    } finally {
      await api.close();
    }
  });

  it('fails clearly on 401 and 404 without retrying', async () => {
    const api = await fakeStatusApi([{ status: 404, body: '{"error":"not found"}' }]);
    try {
      const wrongKey = new CaiboClient({ apiKey: 'caibo_test_sk_wrong', baseUrl: api.url, backoff: fast });
      const unauthorized = await expectError(wrongKey.getPaymentStatus('16772761082427695'), 'api.unauthorized', 401);
      expect(unauthorized.message).toMatch(/apiKey/);
      expect(unauthorized.message).not.toContain('caibo_test_sk_wrong');
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, backoff: fast });
      await expectError(client.getPaymentStatus('16772761082427695'), 'api.not_found', 404);
      expect(api.seen).toHaveLength(2);
    } finally {
      await api.close();
    }
  });

  it('refuses invalid JSON, answers for another id, and ids passed as numbers', async () => {
    const api = await fakeStatusApi([{ status: 200, body: '{"id":' }, { status: 200, body: statusBody({ id: '16772761082427696' }) }]);
    try {
      const client = new CaiboClient({ apiKey: api.apiKey, baseUrl: api.url, backoff: fast });
      await expectError(client.getPaymentStatus('16772761082427695'), 'api.invalid_response', 502);
      await expectError(client.getPaymentStatus('16772761082427695'), 'api.invalid_response', 502);
      // A 17-digit id as a number is already corrupted; the client refuses numbers outright.
      await expect(client.getPaymentStatus(Number('16772761082427695') as unknown as string)).rejects.toThrow(TypeError);
    } finally {
      await api.close();
    }
  });

  it('checks its options', () => {
    expect(() => new CaiboClient({ apiKey: '' })).toThrow(/apiKey/);
    expect(() => new CaiboClient({ apiKey: ' k ' })).toThrow(/whitespace/);
    expect(() => new CaiboClient({ apiKey: 'k', baseUrl: 'not a url' })).toThrow(/baseUrl/);
  });
});

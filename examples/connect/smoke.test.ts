import request from 'supertest';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' by name; jest maps it to src/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('node:http').RequestListener; payments: Map<string, { status: string; amount: string }> };
};

const secret = 'example-secret';
const body = formBody(sampleNotification({ id: '16772761082427001' }));
const post = (app: import('node:http').RequestListener, headers: Record<string, string> = {}) =>
  request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, secret)).set(headers).send(body);

describe('examples/connect', () => {
  it('handles a signed notification once, answers its duplicate 200, and counts both in /metrics', async () => {
    const { app, payments } = createApp({ secret, allowIps: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] });
    await post(app).expect(200, 'OK');
    await post(app).expect(200, 'OK');
    expect(payments.get('16772761082427001')).toEqual({ status: 'paid', amount: '10', currency: 'USD' });
    await request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, 'wrong')).send(body).expect(401);

    const metrics = (await request(app).get('/metrics').expect(200)).body;
    expect(metrics).toMatchObject({ received: 3, handled: 1, duplicate: 1, rejected: 1, reasons: { 'signature.invalid': 1 } });
    expect(metrics.rates.retryRate).toBeCloseTo(1 / 3, 10);
  });

  it('with trustProxy, takes the caller from X-Forwarded-For set by a trusted proxy only', async () => {
    const trusted = createApp({ secret, allowIps: ['203.0.113.10'], trustProxy: 'loopback' });
    await post(trusted.app, { 'X-Forwarded-For': '203.0.113.10' }).expect(200);
    await post(trusted.app, { 'X-Forwarded-For': '198.51.100.7' }).expect(403);

    // Without trustProxy the header is ignored: the caller is the socket's address (loopback).
    const direct = createApp({ secret, allowIps: ['203.0.113.10'] });
    await post(direct.app, { 'X-Forwarded-For': '203.0.113.10' }).expect(403);
    expect(direct.payments.size).toBe(0);
  });
});

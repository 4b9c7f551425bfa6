import request from 'supertest';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// `express4` is an npm alias of express@4, installed beside Express 5 for this test.
const express4 = require('express4');
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('node:http').RequestListener; ledger: { paymentRequestId: string; amount: string }[] };
};

const secret = 'example-secret';

describe('examples/express4', () => {
  it('runs on Express 4', () => {
    expect((require('express4/package.json') as { version: string }).version).toMatch(/^4\./);
    const { app } = createApp({ express: express4, secret });
    expect(typeof (app as unknown as { settings: object }).settings).toBe('object');
  });

  it('credits a paid notification once; a duplicate and an unpaid one change nothing', async () => {
    const { app, ledger } = createApp({ express: express4, secret, allowIps: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] });
    const paid = formBody(sampleNotification({ id: '16772761082427003', grossAmount: '10.10' }));
    const unpaid = formBody(sampleNotification({ id: '16772761082427004', paymentRequestStatusId: '2', transactionStatusId: '2' }));
    const send = (body: string) => request(app).post('/callbacks/caibowh').type('form').set('X-Signature', signPayload(body, secret)).send(body);

    await send(paid).expect(200, 'OK');
    await send(paid).expect(200, 'OK');
    await send(unpaid).expect(200, 'OK');
    expect(ledger).toEqual([{ paymentRequestId: '16772761082427003', amount: '10.10', currency: 'USD' }]);
    expect((await request(app).get('/healthz').expect(200)).body).toEqual({ ok: true, received: 3, successRate: 1 });
  });

  it('checks allowIps against req.ip, so trust proxy decides whether X-Forwarded-For counts', async () => {
    const body = formBody(sampleNotification({ id: '16772761082427005' }));
    const send = (app: import('node:http').RequestListener) =>
      request(app).post('/callbacks/caibo').type('form').set('X-Forwarded-For', '203.0.113.10').set('X-Signature', signPayload(body, secret)).send(body);

    await send(createApp({ express: express4, secret, allowIps: ['203.0.113.10'], trustProxy: 1 }).app).expect(200);
    await send(createApp({ express: express4, secret, allowIps: ['203.0.113.10'] }).app).expect(403);
  });
});

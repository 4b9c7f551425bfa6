import request from 'supertest';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// The example requires 'caibo-callbacks' (the package's own name), which resolves to dist/.
const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('express').Express; orders: Map<string, { status: string; amount?: string }> };
};

const secret = 'example-secret';

describe('examples/basic', () => {
  it('marks the order paid once, ignores a duplicate and refuses a bad signature', async () => {
    const { app, orders } = createApp({ secret, allowIps: ['127.0.0.1', '::1'] });
    const body = formBody(sampleNotification({ referenceId: 'order-42' }));
    const signed = () =>
      request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, secret)).send(body);

    await signed().expect(200, 'OK');
    await signed().expect(200, 'OK');
    expect(orders.get('order-42')).toEqual({ status: 'paid', amount: '10', currency: 'USD', paymentRequestId: '16772761082427695' });

    await request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, 'wrong')).send(body).expect(401);
    const res = await request(app).get('/orders/order-42').expect(200);
    expect(res.body.status).toBe('paid');
  });

  it('refuses a caller outside allowIps', async () => {
    const { app, orders } = createApp({ secret, allowIps: ['203.0.113.10'] });
    const body = formBody(sampleNotification({ referenceId: 'order-43' }));
    await request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, secret)).send(body).expect(403);
    expect(orders.size).toBe(0);
  });
});

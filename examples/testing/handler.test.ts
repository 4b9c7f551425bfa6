/**
 * How to test your own Caibo handler: build the notification Caibo would send with
 * `sampleNotification(overrides)`, encode it with `formBody` (Caibo posts a form), sign the exact
 * bytes with `signPayload(body, secret)`, and send it through your real app with supertest.
 * Then assert on your own state: the order, and how many times the handler ran.
 */
import request from 'supertest';
import { formBody, sampleNotification, signPayload } from 'caibo-callbacks/testing';

const { createApp } = require('./app.js') as {
  createApp: (o: object) => { app: import('node:http').RequestListener; orders: Map<string, Order> };
};

interface Order {
  amount: string;
  currency: string;
  status: string;
  paidBy?: string;
}

// A test key: any string works, as long as the app and the signer share it.
const secret = 'caibo_test_sk_handler_tests';

function setup() {
  const orders = new Map<string, Order>([
    ['order-1', { amount: '25.00', currency: 'EUR', status: 'pending' }],
    ['order-2', { amount: '10', currency: 'USD', status: 'pending' }],
  ]);
  const { app } = createApp({ secret, orders });
  /** Posts a notification as Caibo does: form-encoded, signed over the exact body bytes. */
  const callback = (fields: Record<string, string>, route = '/callbacks/caibo') => {
    const body = formBody(fields);
    return request(app).post(route).type('form').set('X-Signature', signPayload(body, secret)).send(body);
  };
  return { app, orders, callback };
}

describe('my Caibo handler', () => {
  it('marks the order paid when the amount and currency match', async () => {
    const { orders, callback } = setup();
    await callback(sampleNotification({ referenceId: 'order-1', grossAmount: '25.00', unit: 'EUR' })).expect(200);
    expect(orders.get('order-1')).toMatchObject({ status: 'paid', paidBy: '16772761082427695' });
  });

  it('runs once per event: Caibo retrying the same notification is answered 200 without running it again', async () => {
    const { orders, callback } = setup();
    const paid = sampleNotification({ referenceId: 'order-2' });
    await callback(paid).expect(200);
    orders.get('order-2')!.status = 'shipped'; // had the handler run again, it would say 'paid'
    await callback(paid).expect(200);
    await callback(paid, '/callbacks/caibowh').expect(200); // the same event on another route
    expect(orders.get('order-2')!.status).toBe('shipped');
  });

  it('refuses a paid notification whose amount does not match: 500, so Caibo retries and you get alerted', async () => {
    const { orders, callback } = setup();
    await callback(sampleNotification({ referenceId: 'order-1', grossAmount: '2.50', unit: 'EUR' })).expect(500);
    expect(orders.get('order-1')!.status).toBe('pending');
  });

  it('a failed run is not remembered: once the cause is fixed, the retry runs the handler again', async () => {
    const { orders, callback } = setup();
    const paid = sampleNotification({ referenceId: 'order-3' });
    await callback(paid).expect(500); // order-3 does not exist yet
    orders.set('order-3', { amount: '10', currency: 'USD', status: 'pending' });
    await callback(paid).expect(200);
    expect(orders.get('order-3')!.status).toBe('paid');
  });

  it('records a decline, and a later payment of the same order still wins', async () => {
    const { orders, callback } = setup();
    const declined = sampleNotification({ referenceId: 'order-2', transactionId: '265200', transactionStatusId: '2', paymentRequestStatusId: '2' });
    await callback(declined).expect(200);
    expect(orders.get('order-2')!.status).toBe('unpaid');
    await callback(sampleNotification({ referenceId: 'order-2', transactionId: '265201' })).expect(200);
    expect(orders.get('order-2')!.status).toBe('paid');
  });

  it('never runs for a notification signed with another key', async () => {
    const { app, orders } = setup();
    const body = formBody(sampleNotification({ referenceId: 'order-1', grossAmount: '25.00', unit: 'EUR' }));
    await request(app).post('/callbacks/caibo').type('form').set('X-Signature', signPayload(body, 'someone-elses-key')).send(body).expect(401);
    expect(orders.get('order-1')!.status).toBe('pending');
  });
});

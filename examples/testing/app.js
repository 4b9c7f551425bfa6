'use strict';
// A merchant app whose callback handler is worth testing: it checks the amount against the
// order before marking it paid. handler.test.ts shows how to test it with caibo-callbacks/testing.
const express = require('express');
const { caiboCallbacks, MemoryStore } = require('caibo-callbacks');

/**
 * The handler: `orders` maps your order reference to `{ amount, currency, status }`. It throws
 * when the payment does not match the order, so the router answers 500 and Caibo retries
 * (and the mismatch shows up in your logs and alerts) instead of an order silently marked paid.
 */
function makeOnStatus(orders) {
  return async function onStatus(event) {
    if (event.kind !== 'payment') return;
    const order = orders.get(event.referenceId);
    if (!order) throw new Error(`unknown order reference ${event.referenceId}`);
    if (event.paymentStatus === 'paid') {
      // Compare decimal strings as Caibo sent them; never through floating point.
      if (event.grossAmount !== order.amount || event.currency !== order.currency) {
        throw new Error(`payment ${event.paymentRequestId} does not match order ${event.referenceId}`);
      }
      order.status = 'paid';
      order.paidBy = event.paymentRequestId;
    } else if (order.status !== 'paid') {
      order.status = event.paymentStatus; // unpaid, cancelled, unknown
    }
  };
}

function createApp({ secret = process.env.CAIBO_SECRET, allowIps = [], store = new MemoryStore(), orders = new Map() } = {}) {
  const app = express();
  app.use('/callbacks', caiboCallbacks({ secret, allowIps, store, onStatus: makeOnStatus(orders) }));
  return { app, orders };
}

module.exports = { createApp, makeOnStatus };

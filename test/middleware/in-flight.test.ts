import { InFlight } from '../../src/http/in-flight';

describe('InFlight', () => {
  const settledSoon = async (promise: Promise<void>): Promise<boolean> => {
    let settled = false;
    void promise.then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    return settled;
  };

  it('settles idle() at once with nothing in flight, and only after the last request ends otherwise', async () => {
    const inflight = new InFlight();
    expect(await settledSoon(inflight.idle())).toBe(true);
    inflight.start();
    inflight.start();
    const idle = inflight.idle();
    const end = inflight.end; // passed around unbound, as the router does
    end();
    expect(await settledSoon(idle)).toBe(false);
    end();
    expect(await settledSoon(idle)).toBe(true);
    // Reusable: a new request makes it busy again.
    inflight.start();
    const again = inflight.idle();
    expect(await settledSoon(again)).toBe(false);
    inflight.end();
    expect(await settledSoon(again)).toBe(true);
  });
});

import { MemoryStore } from '../../src/stores/memory';
import { runStoreConformance } from '../../src/testing';

describe('MemoryStore on a fake clock', () => {
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] }));
  afterEach(() => jest.useRealTimers());

  runStoreConformance({
    name: 'MemoryStore (fake clock)',
    describe,
    it,
    expect,
    createStore: () => new MemoryStore(),
    paymentStates: true,
    inbox: true,
    timing: {
      leaseMs: 30_000,
      retentionMs: 86_400_000,
      sleep: async (ms) => {
        jest.advanceTimersByTime(ms);
      },
    },
  });
});

// The same suite on the real clock, with the default node:assert expect, as a node:test user would run it.
runStoreConformance({
  name: 'MemoryStore (real clock)',
  describe,
  it,
  createStore: () => new MemoryStore({ maxEntries: 1_000 }),
  paymentStates: true,
  inbox: true,
  timing: { leaseMs: 60, retentionMs: 60, slackMs: 30 },
});

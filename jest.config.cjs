/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/examples'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 30000,
  // Examples require the package by its own name, as a merchant's code would; in tests that is src/.
  moduleNameMapper: {
    '^caibo-callbacks$': '<rootDir>/src/index.ts',
    '^caibo-callbacks/testing$': '<rootDir>/src/testing/index.ts',
    '^caibo-callbacks/prometheus$': '<rootDir>/src/prometheus.ts',
    '^caibo-callbacks/(redis|postgres|sqlite)$': '<rootDir>/src/stores/$1.ts',
  },
};

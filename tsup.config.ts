import { defineConfig } from 'tsup';

const shared = {
  target: 'node20',
  sourcemap: true,
  splitting: false,
} as const;

export default defineConfig([
  {
    ...shared,
    // The library: every public entry point, as ESM and CJS with declarations.
    entry: {
      index: 'src/index.ts',
      testing: 'src/testing/index.ts',
      prometheus: 'src/prometheus.ts',
      redis: 'src/stores/redis.ts',
      postgres: 'src/stores/postgres.ts',
      sqlite: 'src/stores/sqlite.ts',
    },
    format: ['esm', 'cjs'],
    // The SQLite store loads better-sqlite3 with createRequire(__filename); the shim defines
    // __filename in the ESM build.
    shims: true,
    clean: true,
    // tsup 8 sets baseUrl for its declaration build, which TypeScript 6 deprecates.
    dts: { compilerOptions: { ignoreDeprecations: '6.0' } },
    // The package is "type": "commonjs", so CJS declarations are plain .d.ts.
    outExtension: ({ format }) => (format === 'esm' ? { js: '.mjs', dts: '.d.mts' } : { js: '.cjs', dts: '.d.ts' }),
  },
  {
    ...shared,
    // The `caibo-callbacks` binary: CJS only, no declarations.
    entry: { cli: 'src/cli/main.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
  },
]);

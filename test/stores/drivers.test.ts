import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const TSX = require.resolve('tsx/cjs', { paths: [ROOT] });

/** Runs `code` in a fresh Node process that can require TypeScript, and returns its stdout. */
function node(code: string, cwd = ROOT): string {
  return execFileSync(process.execPath, ['--require', TSX, '-e', code], { cwd, encoding: 'utf8' }).trim();
}

describe('optional drivers', () => {
  it('are not loaded by importing the root package, the testing helpers or any store module', () => {
    const loaded = node(`
      require('./src/index.ts');
      require('./src/testing/index.ts');
      require('./src/stores/redis.ts');
      require('./src/stores/postgres.ts');
      require('./src/stores/sqlite.ts');
      const drivers = Object.keys(require.cache).filter((k) => /node_modules\\/(ioredis|redis|@redis|pg|better-sqlite3)\\//.test(k));
      process.stdout.write(JSON.stringify(drivers));
    `);
    expect(JSON.parse(loaded)).toEqual([]);
  });

  it('better-sqlite3 is loaded when a SqliteStore is opened by path', () => {
    const loaded = node(`
      const { SqliteStore } = require('./src/stores/sqlite.ts');
      new SqliteStore({ path: ':memory:' }).close();
      process.stdout.write(String(Object.keys(require.cache).some((k) => k.includes('node_modules/better-sqlite3/'))));
    `);
    expect(loaded).toBe('true');
  });

  it('a missing better-sqlite3 gives an error naming the package to install', () => {
    // The store module alone, somewhere no node_modules can be found: as in an app without the driver.
    const dir = mkdtempSync(path.join(tmpdir(), 'caibo-no-driver-'));
    try {
      // With the modules it imports (types are erased; batch.ts has no imports of its own).
      for (const file of ['sqlite.ts', 'batch.ts']) copyFileSync(path.join(ROOT, 'src/stores', file), path.join(dir, file));
      const message = node(
        `
        const { SqliteStore } = require('./sqlite.ts');
        try { new SqliteStore({ path: 'x.sqlite' }); process.stdout.write('opened'); }
        catch (error) { process.stdout.write(error.message); }
      `,
        dir,
      );
      expect(message).toBe('SqliteStore needs the better-sqlite3 package: run `npm install better-sqlite3` (version 12 on Node 20, 13 on Node 22 and later)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

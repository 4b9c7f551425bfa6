#!/usr/bin/env node
import { resolve } from 'node:path';
import { formatDemoTable, runDemo, type DemoAppFactory } from './demo';

const HELP = `Usage: caibo-callbacks <command> [options]

Commands:
  demo [--app <module>]   start an app on a free port with the memory store, send it signed,
                          duplicate, next-state, badly signed and refused callbacks, and print
                          what happened. --app loads a module exporting createApp (examples/basic).

Options:
  -h, --help              show this help

Exit codes: 0 success, 1 failure, 2 usage error.`;

async function demo(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log('Usage: caibo-callbacks demo [--app <module>]');
    return 0;
  }
  const appIndex = args.indexOf('--app');
  let createApp: DemoAppFactory | undefined;
  if (appIndex !== -1) {
    const path = args[appIndex + 1];
    if (!path) {
      console.error('demo: --app needs a module path');
      return 2;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    createApp = (require(resolve(path)) as { createApp: DemoAppFactory }).createApp;
  }
  const rows = await runDemo({ createApp });
  console.log(formatDemoTable(rows));
  const expected = [200, 200, 200, 401, 405, 403];
  const ok = rows.every((row, i) => row.status === expected[i]) && rows.filter((r) => r.handlerRan).length === 2;
  console.log(ok ? '\nEvery request was answered as expected: 2 handler runs for 2 distinct events.' : '\nUnexpected results: see the table.');
  return ok ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === 'demo') return demo(rest);
  console.error(`Unknown command "${command}".\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  },
);

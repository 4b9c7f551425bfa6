#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EXIT, parseCommand, processIo, UsageError, type Io } from './args';
import { formatDemoTable, runDemo, type DemoAppFactory } from './demo';
import { SEND_HELP, sendCommand } from './send';
import { SIGN_HELP, signCommand } from './sign';

const HELP = `Usage: caibo-callbacks <command> [options]

Commands:
  sign [<body>]     print the X-Signature Caibo sends with a body (argument, --file or stdin)
  send <url>        build, sign and send notifications to your endpoint; print a summary
  demo              start an app on a free port and show it handling signed, duplicate and
                    refused callbacks (what npm run demo does)

Run caibo-callbacks <command> --help for a command's options.

Options:
  -h, --help        show this help
  -v, --version     print the version

Exit codes: 0 success, 1 some request failed, 2 usage error.`;

const DEMO_HELP = `Usage: caibo-callbacks demo [--app <module>]

Starts an app on a free port with the memory store, sends it a signed notification, the same
again, the next state, a badly signed one and refused ones, and prints what happened.

Options:
  --app <module>   a module exporting createApp({ secret, allowIps, store }) returning { app }
                   (examples/basic/app.js fits). Defaults to a bare node:http app
  -h, --help       show this help

Exit codes: 0 every request was answered as expected, 1 otherwise, 2 usage error.`;

async function demo(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(args, { app: { type: 'string' } });
  if (parsed === null) {
    io.stdout.write(`${DEMO_HELP}\n`);
    return EXIT.ok;
  }
  if (parsed.positionals.length > 0) throw new UsageError(`demo takes no arguments, got "${parsed.positionals[0]}"`);
  let createApp: DemoAppFactory | undefined;
  const app = parsed.values.app;
  if (app !== undefined) {
    createApp = (require(resolve(app)) as { createApp?: DemoAppFactory }).createApp;
    if (typeof createApp !== 'function') throw new UsageError(`--app ${app} does not export createApp`);
  }
  const rows = await runDemo({ createApp });
  io.stdout.write(`${formatDemoTable(rows)}\n`);
  const expected = [200, 200, 200, 401, 405, 403];
  const ok = rows.every((row, i) => row.status === expected[i]) && rows.filter((r) => r.handlerRan).length === 2;
  io.stdout.write(ok ? '\nEvery request was answered as expected: 2 handler runs for 2 distinct events.\n' : '\nUnexpected results: see the table.\n');
  return ok ? EXIT.ok : EXIT.failed;
}

const COMMANDS: Record<string, { run: (args: string[], io: Io) => Promise<number>; help: string }> = {
  sign: { run: signCommand, help: SIGN_HELP },
  send: { run: sendCommand, help: SEND_HELP },
  demo: { run: demo, help: DEMO_HELP },
};

/** The installed package's version: the binary is dist/cli.cjs, next to ../package.json. */
function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    io.stdout.write(`${topic?.help ?? HELP}\n`);
    return EXIT.ok;
  }
  if (command === '--version' || command === '-v') {
    io.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const entry = command === undefined ? undefined : COMMANDS[command];
  if (entry === undefined) {
    io.stderr.write(`${command === undefined ? 'No command given.' : `Unknown command "${command}".`}\n\n${HELP}\n`);
    return EXIT.usage;
  }
  try {
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`caibo-callbacks ${command}: ${error.message}\nRun "caibo-callbacks ${command} --help" for usage.\n`);
      return EXIT.usage;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`caibo-callbacks: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = EXIT.failed;
  },
);

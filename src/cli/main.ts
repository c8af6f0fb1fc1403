// The `gatehouse` command (started through bin/gatehouse.js). Exit codes: 0 success, 1 the
// command failed (expected errors print {"error","message"} JSON on stderr), 2 bad usage.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.ts';
import { isAppError } from '../errors.ts';
import { registerClient } from './commands/client.ts';
import { registerKeys } from './commands/keys.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerResource } from './commands/resource.ts';
import { registerUser } from './commands/user.ts';
import { createCliContext, type CliContext } from './context.ts';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

function buildProgram(ctx: CliContext): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse OpenID Connect provider administration. Reads the same environment as the server (DATA_DIR, DATABASE_URL, ENCRYPTION_KEYS, ...).')
    // Set before any subcommand is added: subcommands inherit these settings when created.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  registerMigrate(program, ctx);
  registerClient(program, ctx);
  registerUser(program, ctx);
  registerResource(program, ctx);
  registerKeys(program, ctx);
  return program;
}

function report(err: unknown, ctx: CliContext): number {
  // Commander has already printed its message (and the usage hint) to stderr.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    return EXIT_FAILURE;
  }
  if (isAppError(err)) {
    process.stderr.write(`${JSON.stringify({ error: err.code, message: err.message })}\n`);
    return EXIT_FAILURE;
  }
  const verbose = ctx.config?.logLevel === 'debug' || ctx.config?.logLevel === 'trace';
  const message = err instanceof Error ? (verbose ? (err.stack ?? err.message) : err.message) : String(err);
  process.stderr.write(`error: ${message}\n`);
  return EXIT_FAILURE;
}

async function main(argv: string[]): Promise<number> {
  const ctx = createCliContext(process.env);
  try {
    await buildProgram(ctx).parseAsync(argv);
    return 0;
  } catch (err) {
    return report(err, ctx);
  }
}

const code = await main(process.argv);
// Exit only once stdout has drained: a piped consumer must receive the whole JSON document, and
// nothing left open (a pool timer, a socket) may keep a finished command alive.
process.stdout.write('', () => process.exit(code));

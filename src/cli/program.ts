// The command tree and its error reporting, independent of where it runs: in the `gatehouse`
// process itself, or inside a running server that received the command over its control socket.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.ts';
import { isAppError } from '../errors.ts';
import { registerApiKey } from './commands/api-key.ts';
import { registerClient } from './commands/client.ts';
import { registerKeys } from './commands/keys.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerPolicy } from './commands/policy.ts';
import { registerResource } from './commands/resource.ts';
import { registerRole } from './commands/role.ts';
import { registerUser } from './commands/user.ts';
import { registerSession } from './commands/session.ts';
import type { CliContext, CliOutput } from './context.ts';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

function buildProgram(ctx: CliContext, output: CliOutput): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse OpenID Connect provider administration. Reads the same environment as the server (DATA_DIR, DATABASE_URL, ENCRYPTION_KEYS, ...).')
    // Set before any subcommand is added: subcommands inherit these settings when created.
    .exitOverride()
    .configureOutput({ writeOut: output.out, writeErr: output.err })
    .showHelpAfterError('(add --help for usage)');
  registerMigrate(program, ctx);
  registerClient(program, ctx);
  registerUser(program, ctx);
  registerResource(program, ctx);
  registerRole(program, ctx);
  registerPolicy(program, ctx);
  registerKeys(program, ctx);
  registerSession(program, ctx);
  registerApiKey(program, ctx);
  return program;
}

function report(err: unknown, ctx: CliContext, output: CliOutput): number {
  // Commander has already printed its message (and the usage hint).
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
  if (err instanceof ConfigError) {
    output.err(`${err.message}\n`);
    return EXIT_FAILURE;
  }
  if (isAppError(err)) {
    output.err(`${JSON.stringify({ error: err.code, message: err.message })}\n`);
    return EXIT_FAILURE;
  }
  const verbose = ctx.config?.logLevel === 'debug' || ctx.config?.logLevel === 'trace';
  const message = err instanceof Error ? (verbose ? (err.stack ?? err.message) : err.message) : String(err);
  output.err(`error: ${message}\n`);
  return EXIT_FAILURE;
}

/** Runs one command line (argv without node and script); returns the exit code. */
export async function runCommandLine(args: string[], ctx: CliContext, output: CliOutput): Promise<number> {
  try {
    await buildProgram(ctx, output).parseAsync(args, { from: 'user' });
    return 0;
  } catch (err) {
    return report(err, ctx, output);
  }
}

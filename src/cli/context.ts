// What every command shares: configuration and services (opened per invocation and closed, or
// the running server's own when the command runs inside it), results printed as one JSON
// document, and option parsers that turn bad values into usage errors (exit code 2) before any
// database is opened.
import { InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { loadConfig, type Config } from '../config.ts';
import { createLogger } from '../logger.ts';
import { createServices, type Services } from '../services.ts';
import type { PidLock } from '../db/pid-lock.ts';

export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

export interface CliContext {
  /** The configuration once a command has loaded it; decides how much an error report shows. */
  readonly config: Config | undefined;
  /** Runs `action` with the services, prints its result as JSON. */
  run(action: (services: Services) => Promise<unknown>): Promise<void>;
}

// The server's default level (info) would mix start-up chatter into an operator's terminal;
// only an explicit debug/trace or a quieter level is taken over from LOG_LEVEL.
const LEVELS_TAKEN_OVER = new Set(['debug', 'trace', 'error', 'fatal', 'silent']);

/** A context that opens its own services from `env` for each command. */
export function createCliContext(env: Record<string, string | undefined>, output: CliOutput, lock?: PidLock): CliContext {
  let config: Config | undefined;
  return {
    get config() {
      return config;
    },
    async run(action) {
      config = loadConfig(env);
      const logger = createLogger(LEVELS_TAKEN_OVER.has(config.logLevel) ? config.logLevel : 'warn', pino.destination(2));
      const services = await createServices(config, logger, lock);
      let result: unknown;
      try {
        result = await action(services);
        // Mail queued by this command (e.g. an invitation) goes out now: the CLI exits next.
        await services.notifier.drain();
      } finally {
        await services.close();
      }
      output.out(`${JSON.stringify(result, null, 2)}\n`);
    },
  };
}

/** A context inside the running server: its services, left open after the command. */
export function serverCliContext(services: Services, output: CliOutput): CliContext {
  // Migrations ran when the server started; a `migrate` sent to it has nothing left to apply.
  const view: Services = { ...services, appliedMigrations: [] };
  return {
    config: services.config,
    async run(action) {
      const result = await action(view);
      services.notifier.kick();
      output.out(`${JSON.stringify(result, null, 2)}\n`);
    },
  };
}

/** For options given once per value: `--redirect-uri a --redirect-uri b`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function collectChoice(choices: readonly string[]): (value: string, previous: string[] | undefined) => string[] {
  return (value, previous) => {
    if (!choices.includes(value)) throw new InvalidArgumentError(`Allowed choices are ${choices.join(', ')}.`);
    return collect(value, previous);
  };
}

export function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('Expected a positive whole number.');
  return Number(value);
}

/** Audit events written by CLI commands say so. */
export const CLI_AUDIT = { source: 'cli' } as const;

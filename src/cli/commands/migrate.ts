import type { Command } from 'commander';
import type { CliContext } from '../context.ts';

export function registerMigrate(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply pending database migrations')
    // Opening the services migrates; the command reports what that did.
    .action(() => ctx.run(async (services) => ({ migrated: services.appliedMigrations, database: services.database.kind })));
}

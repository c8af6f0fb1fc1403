import { InvalidArgumentError, type Command } from 'commander';
import { createApiKey, listApiKeys, revokeApiKey, rotateApiKey } from '../../domain/api-keys.ts';
import { findAccountByEmail } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { CLI_AUDIT, positiveInteger, type CliContext } from '../context.ts';

interface CreateOptions {
  name: string;
  resource?: string;
  scope: string;
  expiresInDays?: number;
  ownerUser?: string;
  ownerClient?: string;
}

interface ListOptions {
  resource?: string;
  ownerUser?: string;
  ownerClient?: string;
}

function wholeSeconds(raw: string): number {
  if (!/^\d+$/.test(raw)) throw new InvalidArgumentError('Expected a whole number of seconds (0 or more).');
  return Number(raw);
}

/** `--owner-user` takes an account id or, more conveniently at a terminal, an email address. */
async function ownerAccountId(services: Services, value: string | undefined): Promise<string | undefined> {
  if (value === undefined || !value.includes('@')) return value;
  const account = await findAccountByEmail(services.knex, value);
  if (!account) throw new AppError('invalid_api_key', `no user has email "${value}"`, 400);
  return account.id;
}

export function registerApiKey(program: Command, ctx: CliContext): void {
  const apiKey = program.command('api-key').description('manage API keys for service-to-service calls and automation');

  apiKey
    .command('create')
    .description('create an API key; the key is shown once and stored only as a hash')
    .requiredOption('--name <name>', 'what the key is for, shown in lists')
    .option('--resource <uri>', 'identifier of the API the key is for (default: the management API)')
    .requiredOption('--scope <scopes>', 'space-separated permissions of that API, e.g. "admin:users:read"')
    .option('--expires-in-days <days>', 'lifetime in days (default: no expiry)', positiveInteger)
    .option('--owner-user <id>', 'the user (account id or email) the key acts for')
    .option('--owner-client <id>', 'the client the key acts for')
    .action((options: CreateOptions) =>
      ctx.run(async (services) =>
        createApiKey(
          services,
          {
            name: options.name,
            resource: options.resource,
            scopes: options.scope.split(' ').filter(Boolean),
            expiresInDays: options.expiresInDays,
            ownerAccountId: await ownerAccountId(services, options.ownerUser),
            ownerClientId: options.ownerClient,
          },
          CLI_AUDIT,
        ),
      ),
    );

  apiKey
    .command('list')
    .description('list API keys (never the keys themselves), newest first')
    .option('--resource <uri>', 'only keys for this API')
    .option('--owner-user <id>', 'only keys of this user (account id or email)')
    .option('--owner-client <id>', 'only keys of this client')
    .action((options: ListOptions) =>
      ctx.run(async (services) => ({
        api_keys: await listApiKeys(services, {
          resource: options.resource,
          ownerAccountId: await ownerAccountId(services, options.ownerUser),
          ownerClientId: options.ownerClient,
        }),
      })),
    );

  apiKey
    .command('rotate')
    .description('issue a successor key; the old one keeps working for the overlap, then stops')
    .argument('<id>', 'id of the key to rotate')
    .option('--overlap-seconds <n>', 'how long the old key keeps working (default: API_KEY_ROTATION_OVERLAP; 0: stops now)', wholeSeconds)
    .action((id: string, options: { overlapSeconds?: number }) =>
      ctx.run((services) => rotateApiKey(services, id, { overlapSeconds: options.overlapSeconds }, CLI_AUDIT)),
    );

  apiKey
    .command('revoke')
    .description('revoke an API key at once')
    .argument('<id>', 'id of the key to revoke')
    .action((id: string) => ctx.run((services) => revokeApiKey(services, id, CLI_AUDIT)));
}

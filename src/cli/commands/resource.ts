import { Option, type Command } from 'commander';
import { createResource, listResources, type AccessTokenFormat } from '../../domain/resources.ts';
import { CLI_AUDIT, positiveInteger, type CliContext } from '../context.ts';

interface CreateOptions {
  identifier: string;
  scope: string;
  format: AccessTokenFormat;
  accessTokenTtl?: number;
  name?: string;
}

export function registerResource(program: Command, ctx: CliContext): void {
  const resource = program.command('resource').description('manage resource servers (APIs) access tokens are issued for');

  resource
    .command('create')
    .description('register a resource server')
    .requiredOption('--identifier <uri>', 'absolute URI naming the API (the resource indicator and token audience)')
    .requiredOption('--scope <scopes>', 'space-separated scopes the API accepts, e.g. "read write"')
    .addOption(new Option('--format <format>', 'access token format').choices(['jwt', 'opaque']).default('jwt'))
    .option('--access-token-ttl <seconds>', 'access token lifetime (default: ACCESS_TOKEN_TTL)', positiveInteger)
    .option('--name <name>', 'display name')
    .action((options: CreateOptions) =>
      ctx.run((services) =>
        createResource(
          services,
          { identifier: options.identifier, scope: options.scope, format: options.format, accessTokenTtl: options.accessTokenTtl, name: options.name },
          CLI_AUDIT,
        ),
      ),
    );

  resource
    .command('list')
    .description('list resource servers')
    .action(() => ctx.run(async (services) => ({ resources: await listResources(services) })));
}

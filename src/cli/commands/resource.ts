import { Option, type Command } from 'commander';
import { addPermissions, createResource, deleteResource, getResource, listResources, removePermission, updateResource, type AccessTokenFormat } from '../../domain/resources.ts';
import { CLI_AUDIT, positiveInteger, type CliContext } from '../context.ts';

interface CreateOptions {
  identifier: string;
  scope: string;
  format: AccessTokenFormat;
  accessTokenTtl?: number;
  name?: string;
  apiClient?: string;
}

interface UpdateOptions {
  format?: AccessTokenFormat;
  accessTokenTtl?: number;
  name?: string;
  apiClient?: string;
}

export function registerResource(program: Command, ctx: CliContext): void {
  const resource = program.command('resource').description('manage resource servers (APIs) access tokens are issued for, and their permissions');

  resource
    .command('create')
    .description('register a resource server')
    .requiredOption('--identifier <uri>', 'absolute URI naming the API (the resource indicator and token audience)')
    .requiredOption('--scope <scopes>', 'space-separated permissions (scopes) the API accepts, e.g. "invoices:read invoices:write"')
    .addOption(new Option('--format <format>', 'access token format').choices(['jwt', 'opaque']).default('jwt'))
    .option('--access-token-ttl <seconds>', 'access token lifetime (default: ACCESS_TOKEN_TTL)', positiveInteger)
    .option('--name <name>', 'display name')
    .option('--api-client <client-id>', "the API's own confidential client (calls the decision endpoint)")
    .action((options: CreateOptions) =>
      ctx.run((services) =>
        createResource(
          services,
          { identifier: options.identifier, scope: options.scope, format: options.format, accessTokenTtl: options.accessTokenTtl, name: options.name, apiClientId: options.apiClient },
          CLI_AUDIT,
        ),
      ),
    );

  resource
    .command('list')
    .description('list resource servers')
    .action(() => ctx.run(async (services) => ({ resources: await listResources(services) })));

  resource
    .command('show <identifier>')
    .description('a resource server with its permissions')
    .action((identifier: string) => ctx.run((services) => getResource(services, identifier)));

  resource
    .command('update <identifier>')
    .description('change a resource server')
    .addOption(new Option('--format <format>', 'access token format').choices(['jwt', 'opaque']))
    .option('--access-token-ttl <seconds>', 'access token lifetime', positiveInteger)
    .option('--name <name>', 'display name')
    .option('--api-client <client-id>', "the API's own confidential client")
    .action((identifier: string, options: UpdateOptions) =>
      ctx.run((services) =>
        updateResource(services, identifier, { format: options.format, accessTokenTtl: options.accessTokenTtl, name: options.name, apiClientId: options.apiClient }, CLI_AUDIT),
      ),
    );

  resource
    .command('delete <identifier>')
    .description('remove a resource server with its permissions, policies and ACLs')
    .action((identifier: string) =>
      ctx.run(async (services) => {
        await deleteResource(services, identifier, CLI_AUDIT);
        return { deleted: identifier };
      }),
    );

  resource
    .command('add-permission <identifier>')
    .description('add a permission (scope) to a resource server')
    .requiredOption('--permission <name>', 'permission name, e.g. invoices:approve')
    .option('--description <text>', 'what it allows')
    .action((identifier: string, options: { permission: string; description?: string }) =>
      ctx.run((services) => addPermissions(services, identifier, [{ name: options.permission, description: options.description }], CLI_AUDIT)),
    );

  resource
    .command('remove-permission <identifier>')
    .description('remove a permission; roles holding it lose it')
    .requiredOption('--permission <name>', 'permission name')
    .action((identifier: string, options: { permission: string }) =>
      ctx.run(async (services) => {
        await removePermission(services, identifier, options.permission, CLI_AUDIT);
        return { removed: options.permission, resource: identifier };
      }),
    );
}

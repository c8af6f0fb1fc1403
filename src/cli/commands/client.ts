import { InvalidArgumentError, Option, type Command } from 'commander';
import { AUTH_METHODS, createClient, deleteClient, GRANT_TYPES, ID_TOKEN_ALGS, listClients, MAX_REFRESH_GRACE_SECONDS } from '../../domain/clients.ts';
import { assignRole } from '../../domain/roles.ts';
import { ADMIN_ROLE, ADMIN_SCOPES, managementResourceIdentifier } from '../../domain/management.ts';
import { AppError } from '../../errors.ts';
import { CLI_AUDIT, collect, collectChoice, type CliContext } from '../context.ts';

interface CreateOptions {
  name: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  grantType?: string[];
  scope?: string;
  authMethod?: string;
  clientId?: string;
  clientSecret?: string;
  firstParty?: boolean;
  jwksUri?: string;
  idTokenAlg?: string;
  dpop?: boolean;
  backchannelLogoutUri?: string;
  refreshGraceSeconds?: number;
  allowGuest?: boolean;
  admin?: boolean;
  role?: string[];
}

function wholeSeconds(raw: string): number {
  if (!/^\d+$/.test(raw)) throw new InvalidArgumentError('expected a whole number of seconds');
  return Number(raw);
}

export function registerClient(program: Command, ctx: CliContext): void {
  const client = program.command('client').description('register and remove OAuth clients');

  client
    .command('create')
    .description('register a client; a generated secret is shown once and stored only encrypted')
    .requiredOption('--name <name>', 'display name shown on consent pages')
    .option('--redirect-uri <uri>', 'redirect URI (repeatable; required unless the only grant is client_credentials)', collect)
    .option('--post-logout-redirect-uri <uri>', 'post-logout redirect URI (repeatable)', collect)
    .addOption(
      new Option('--grant-type <type>', `grant type (repeatable: ${GRANT_TYPES.join(', ')}; default authorization_code + refresh_token)`)
        .argParser(collectChoice(GRANT_TYPES)),
    )
    .option('--scope <scopes>', 'space-separated scopes the client may request')
    .addOption(new Option('--auth-method <method>', 'token endpoint authentication').choices(AUTH_METHODS).default('client_secret_basic'))
    .option('--client-id <id>', 'client id (default: random)')
    .option('--client-secret <secret>', 'client secret, at least 16 characters (default: random)')
    .option('--first-party', 'a client of our own: users are not asked for consent')
    .option('--jwks-uri <uri>', 'where the client publishes its keys (needed for private_key_jwt)')
    .addOption(new Option('--id-token-alg <alg>', 'ID token signing algorithm').choices(ID_TOKEN_ALGS))
    .option('--dpop', 'require DPoP proofs (RFC 9449): every token is bound to the client\'s key')
    .option('--backchannel-logout-uri <uri>', 'where logout tokens are POSTed when a user\'s session ends')
    .option('--refresh-grace-seconds <n>', `seconds (0-${MAX_REFRESH_GRACE_SECONDS}, default 0 = off) in which a just-rotated refresh token may be sent again and returns the same new tokens`, wholeSeconds)
    .option('--allow-guest', 'the login page offers "Continue as guest": an anonymous account the person can save later with an email and password')
    .option('--admin', `a machine client for the management API: client_credentials, holding the ${ADMIN_ROLE} role`)
    .option('--role <name>', 'give the client a role (repeatable)', collect)
    .action((options: CreateOptions) =>
      ctx.run(async (services) => {
        if (options.admin && options.grantType && !options.grantType.includes('client_credentials')) {
          throw new AppError('invalid_client_metadata', 'an admin client uses the client_credentials grant', 400);
        }
        const created = await createClient(
          services,
          {
            name: options.name,
            redirectUris: options.redirectUri ?? [],
            postLogoutRedirectUris: options.postLogoutRedirectUri ?? [],
            grantTypes: options.grantType ?? (options.admin ? ['client_credentials'] : undefined),
            scope: options.scope,
            authMethod: options.authMethod,
            clientId: options.clientId,
            clientSecret: options.clientSecret,
            firstParty: options.firstParty === true,
            jwksUri: options.jwksUri,
            idTokenSignedResponseAlg: options.idTokenAlg,
            dpop: options.dpop === true,
            backchannelLogoutUri: options.backchannelLogoutUri,
            refreshGraceSeconds: options.refreshGraceSeconds,
            allowGuest: options.allowGuest === true,
          },
          CLI_AUDIT,
        );
        const roles = [...(options.admin ? [ADMIN_ROLE] : []), ...(options.role ?? [])];
        for (const role of roles) await assignRole(services, role, { type: 'client', id: created.client_id }, CLI_AUDIT);
        return {
          ...created,
          ...(roles.length ? { roles } : {}),
          ...(options.admin ? { management_api: { resource: managementResourceIdentifier(services.config), scopes: Object.keys(ADMIN_SCOPES) } } : {}),
        };
      }),
    );

  client
    .command('list')
    .description('list registered clients (secrets are never shown)')
    .action(() => ctx.run(async (services) => ({ clients: await listClients(services) })));

  client
    .command('delete')
    .description('delete a client')
    .argument('<client-id>', 'the client to delete')
    .action((clientId: string) =>
      ctx.run(async (services) => {
        await deleteClient(services, clientId, CLI_AUDIT);
        return { deleted: clientId };
      }),
    );
}

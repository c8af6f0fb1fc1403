// `gatehouse policy ...` (ABAC policies), `gatehouse acl ...` (per-object grants) and
// `gatehouse authz check` (the decision a resource server would get) for one API each.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { grantAcl, listAcl, revokeAcl, type AclGrant } from '../../domain/acl.ts';
import { checkAuthorization } from '../../domain/authz-check.ts';
import { createPolicy, deletePolicy, getPolicy, listPolicies, updatePolicy, type PolicyEffect, type UpdatePolicyInput } from '../../domain/policies.ts';
import { findAccountByEmail } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { CLI_AUDIT, collect, type CliContext } from '../context.ts';

/** Options that take a JSON object, e.g. --context '{"ip": "10.1.2.3"}'. */
function jsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('Expected a JSON object.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('Expected a JSON object.');
  return parsed as Record<string, unknown>;
}

/** "user:<email>" is turned into "user:<account id>" so operators need not look ids up. */
async function resolveSubject(services: Services, subject: string): Promise<string> {
  const email = /^user:(.+@.+)$/.exec(subject)?.[1];
  if (email === undefined) return subject;
  const account = await findAccountByEmail(services.knex, email);
  if (!account) throw new AppError('user_not_found', `no user has email "${email}"`, 404);
  return `user:${account.id}`;
}

interface PolicyOptions {
  resource: string;
  name: string;
  effect?: PolicyEffect;
  action?: string[];
  condition?: string;
  description?: string;
  disabled?: boolean;
  enable?: boolean;
  disable?: boolean;
}

interface AclOptions {
  resource: string;
  subject: string;
  object: string;
  action: string;
}

interface CheckOptions {
  resource: string;
  subject: string;
  action: string;
  object?: string;
  objectType?: string;
  subjectAttributes?: Record<string, unknown>;
  objectAttributes?: Record<string, unknown>;
  context?: Record<string, unknown>;
}

function registerPolicyCommands(program: Command, ctx: CliContext): void {
  const policy = program.command('policy').description('manage ABAC policies of an API (see docs/authorization-policies.md)');
  const effect = () => new Option('--effect <effect>', 'allow or deny when the condition holds').choices(['allow', 'deny']);

  policy
    .command('create')
    .description('add a policy: allow or deny the actions when the condition holds')
    .requiredOption('--resource <uri>', 'the API identifier')
    .requiredOption('--name <name>', 'policy name, e.g. business-hours')
    .addOption(effect().default('allow'))
    .requiredOption('--action <action>', 'action the policy is about, "*" for every action (repeatable)', collect)
    .requiredOption('--condition <expression>', 'casbin expression over r.sub, r.obj, r.ctx, e.g. \'r.sub.department == "finance"\'')
    .option('--description <text>', 'what the policy is for')
    .option('--disabled', 'store the policy without applying it yet')
    .action((options: PolicyOptions) =>
      ctx.run((services) =>
        createPolicy(
          services,
          options.resource,
          { name: options.name, effect: options.effect ?? 'allow', actions: options.action ?? [], condition: options.condition ?? '', description: options.description, enabled: !options.disabled },
          CLI_AUDIT,
        ),
      ),
    );

  policy
    .command('list')
    .description('list the policies of an API')
    .requiredOption('--resource <uri>', 'the API identifier')
    .action((options: { resource: string }) => ctx.run(async (services) => ({ policies: await listPolicies(services, options.resource) })));

  policy
    .command('show')
    .description('one policy')
    .requiredOption('--resource <uri>', 'the API identifier')
    .requiredOption('--name <name>', 'policy name')
    .action((options: { resource: string; name: string }) => ctx.run((services) => getPolicy(services, options.resource, options.name)));

  policy
    .command('update')
    .description('change a policy (only the options given)')
    .requiredOption('--resource <uri>', 'the API identifier')
    .requiredOption('--name <name>', 'policy name')
    .addOption(effect())
    .option('--action <action>', 'replaces the actions (repeatable)', collect)
    .option('--condition <expression>', 'replaces the condition')
    .option('--description <text>', 'replaces the description')
    .addOption(new Option('--enable', 'apply the policy').conflicts('disable'))
    .option('--disable', 'keep the policy but stop applying it')
    .action((options: PolicyOptions) => {
      const patch: UpdatePolicyInput = {
        ...(options.effect !== undefined ? { effect: options.effect } : {}),
        ...(options.action !== undefined ? { actions: options.action } : {}),
        ...(options.condition !== undefined ? { condition: options.condition } : {}),
        ...(options.description !== undefined ? { description: options.description } : {}),
        ...(options.enable ? { enabled: true } : options.disable ? { enabled: false } : {}),
      };
      return ctx.run((services) => updatePolicy(services, options.resource, options.name, patch, CLI_AUDIT));
    });

  policy
    .command('delete')
    .description('remove a policy')
    .requiredOption('--resource <uri>', 'the API identifier')
    .requiredOption('--name <name>', 'policy name')
    .action((options: { resource: string; name: string }) =>
      ctx.run(async (services) => {
        await deletePolicy(services, options.resource, options.name, CLI_AUDIT);
        return { deleted: options.name, resource: options.resource };
      }),
    );
}

function registerAclCommands(program: Command, ctx: CliContext): void {
  const acl = program.command('acl').description('manage per-object grants (subject, object, action) of an API');
  const grantOptions = (command: Command) =>
    command
      .requiredOption('--resource <uri>', 'the API identifier')
      .requiredOption('--subject <subject>', 'user:<account id or email>, client:<client id> or role:<role name>')
      .requiredOption('--object <id>', 'object id of the API, "*" for every object')
      .requiredOption('--action <action>', 'the action granted');
  const grantOf = async (services: Services, options: AclOptions): Promise<AclGrant> => ({
    subject: await resolveSubject(services, options.subject),
    object: options.object,
    action: options.action,
  });

  grantOptions(acl.command('grant').description('let a subject do an action on an object'))
    .action((options: AclOptions) => ctx.run(async (services) => grantAcl(services, options.resource, await grantOf(services, options), CLI_AUDIT)));

  grantOptions(acl.command('revoke').description('take a grant away'))
    .action((options: AclOptions) =>
      ctx.run(async (services) => {
        const grant = await grantOf(services, options);
        await revokeAcl(services, options.resource, grant, CLI_AUDIT);
        return { revoked: grant, resource: options.resource };
      }),
    );

  acl
    .command('list')
    .description('grants of an API, optionally of one subject, object or action')
    .requiredOption('--resource <uri>', 'the API identifier')
    .option('--subject <subject>', 'only grants to this subject')
    .option('--object <id>', 'only grants on this object')
    .option('--action <action>', 'only grants of this action')
    .action((options: Partial<AclOptions> & { resource: string }) =>
      ctx.run(async (services) => ({
        entries: await listAcl(services, options.resource, {
          ...(options.subject !== undefined ? { subject: await resolveSubject(services, options.subject) } : {}),
          ...(options.object !== undefined ? { object: options.object } : {}),
          ...(options.action !== undefined ? { action: options.action } : {}),
        }),
      })),
    );
}

function registerCheckCommand(program: Command, ctx: CliContext): void {
  program
    .command('authz')
    .description('authorization decisions')
    .command('check')
    .description('the decision POST /api/v1/authz/check would give')
    .requiredOption('--resource <uri>', 'the API identifier')
    .requiredOption('--subject <subject>', 'user:<account id or email> or client:<client id>')
    .requiredOption('--action <action>', 'the action')
    .option('--object <id>', 'object id')
    .option('--object-type <type>', 'object type')
    .option('--subject-attributes <json>', 'attributes the API knows about the subject, e.g. \'{"department": "finance"}\'', jsonObject)
    .option('--object-attributes <json>', 'attributes of the object, e.g. \'{"owner": "..."}\'', jsonObject)
    .option('--context <json>', 'request context, e.g. \'{"ip": "10.1.2.3", "amr": ["pwd", "otp"]}\'', jsonObject)
    .action((options: CheckOptions) =>
      ctx.run(async (services) => {
        const subject = await resolveSubject(services, options.subject);
        const colon = subject.indexOf(':');
        const hasObject = options.object !== undefined || options.objectType !== undefined || options.objectAttributes !== undefined;
        return checkAuthorization(services, {
          resource: options.resource,
          subject: { type: subject.slice(0, colon), id: subject.slice(colon + 1), ...(options.subjectAttributes ? { attributes: options.subjectAttributes } : {}) },
          action: options.action,
          ...(hasObject ? { object: { id: options.object, type: options.objectType, attributes: options.objectAttributes } } : {}),
          ...(options.context ? { context: options.context } : {}),
        });
      }),
    );
}

export function registerPolicy(program: Command, ctx: CliContext): void {
  registerPolicyCommands(program, ctx);
  registerAclCommands(program, ctx);
  registerCheckCommand(program, ctx);
}

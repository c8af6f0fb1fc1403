import { Option, type Command } from 'commander';
import {
  addDefaultRoleRule,
  addRolePermissions,
  assignRole,
  createRole,
  deleteRole,
  getRole,
  listRoleMembers,
  listRoles,
  listSubjectRoles,
  removeDefaultRoleRule,
  removeRolePermission,
  unassignRole,
  type RolePermission,
  type Subject,
} from '../../domain/roles.ts';
import { findAccountByEmail } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { CLI_AUDIT, collect, type CliContext } from '../context.ts';

interface SubjectOptions {
  user?: string;
  client?: string;
}

/** `--user` takes an email address or an account id; `--client` a client id. */
async function resolveSubject(services: Services, options: SubjectOptions): Promise<Subject> {
  if ((options.user === undefined) === (options.client === undefined)) {
    throw new AppError('invalid_subject', 'name exactly one of --user <email or id> and --client <client id>', 400);
  }
  if (options.client !== undefined) return { type: 'client', id: options.client };
  const user = options.user!;
  if (user.includes('@')) {
    const account = await findAccountByEmail(services.knex, user);
    if (!account) throw new AppError('user_not_found', `no user has email "${user}"`, 404);
    return { type: 'user', id: account.id };
  }
  return { type: 'user', id: user };
}

/** "URI permission" pairs from `--permission "https://api.example.com invoices:read"`. */
function parsePermissions(raw: string[] | undefined, resource: string | undefined): RolePermission[] {
  return (raw ?? []).map((value) => {
    const parts = value.trim().split(/\s+/);
    if (parts.length === 2) return { resource: parts[0]!, permission: parts[1]! };
    if (parts.length === 1 && resource !== undefined) return { resource, permission: parts[0]! };
    throw new AppError('invalid_permission', `"${value}": give "<resource URI> <permission>" or use --resource with the permission name`, 400);
  });
}

export function registerRole(program: Command, ctx: CliContext): void {
  const role = program.command('role').description('manage roles: bundles of API permissions held by users and clients');

  role
    .command('create')
    .description('create a role')
    .requiredOption('--name <name>', 'role name, e.g. billing-admin')
    .option('--description <text>', 'what the role is for')
    .option('--resource <uri>', 'API the --permission names belong to')
    .option('--permission <permission>', 'permission to include: a name with --resource, or "<resource URI> <name>" (repeatable)', collect)
    .action((options: { name: string; description?: string; resource?: string; permission?: string[] }) =>
      ctx.run((services) => createRole(services, { name: options.name, description: options.description, permissions: parsePermissions(options.permission, options.resource) }, CLI_AUDIT)),
    );

  role
    .command('list')
    .description('list roles')
    .action(() => ctx.run(async (services) => ({ roles: await listRoles(services) })));

  role
    .command('show <name>')
    .description('a role with its permissions, default-role rules and members')
    .action((name: string) => ctx.run(async (services) => ({ ...(await getRole(services, name)), members: await listRoleMembers(services, name) })));

  role
    .command('delete <name>')
    .description('delete a role (its holders lose its permissions)')
    .action((name: string) =>
      ctx.run(async (services) => {
        await deleteRole(services, name, CLI_AUDIT);
        return { deleted: name };
      }),
    );

  role
    .command('add-permission <name>')
    .description('add permissions to a role')
    .option('--resource <uri>', 'API the --permission names belong to')
    .requiredOption('--permission <permission>', 'a name with --resource, or "<resource URI> <name>" (repeatable)', collect)
    .action((name: string, options: { resource?: string; permission: string[] }) =>
      ctx.run((services) => addRolePermissions(services, name, parsePermissions(options.permission, options.resource), CLI_AUDIT)),
    );

  role
    .command('remove-permission <name>')
    .description('take a permission away from a role')
    .requiredOption('--resource <uri>', 'API the permission belongs to')
    .requiredOption('--permission <permission>', 'permission name')
    .action((name: string, options: { resource: string; permission: string }) =>
      ctx.run((services) => removeRolePermission(services, name, { resource: options.resource, permission: options.permission }, CLI_AUDIT)),
    );

  role
    .command('assign <name>')
    .description('give a role to a user or a client')
    .option('--user <email-or-id>', 'the user')
    .option('--client <client-id>', 'the machine client')
    .action((name: string, options: SubjectOptions) =>
      ctx.run(async (services) => {
        const subject = await resolveSubject(services, options);
        return { role: name, subject, ...(await assignRole(services, name, subject, CLI_AUDIT)) };
      }),
    );

  role
    .command('unassign <name>')
    .description('take a directly held role away from a user or a client')
    .option('--user <email-or-id>', 'the user')
    .option('--client <client-id>', 'the machine client')
    .action((name: string, options: SubjectOptions) =>
      ctx.run(async (services) => {
        const subject = await resolveSubject(services, options);
        await unassignRole(services, name, subject, CLI_AUDIT);
        return { role: name, subject, unassigned: true };
      }),
    );

  role
    .command('of')
    .description('roles a user or client holds (directly, and in effect with default-role rules)')
    .option('--user <email-or-id>', 'the user')
    .option('--client <client-id>', 'the machine client')
    .action((options: SubjectOptions) =>
      ctx.run(async (services) => {
        const subject = await resolveSubject(services, options);
        return { subject, ...(await listSubjectRoles(services, subject)) };
      }),
    );

  role
    .command('add-default <name>')
    .description('every user (optionally of one email domain) or every client holds the role without an assignment')
    .addOption(new Option('--for <subjects>', 'who holds it').choices(['users', 'clients']).makeOptionMandatory())
    .option('--email-domain <domain>', 'only users whose email address is in this domain')
    .action((name: string, options: { for: 'users' | 'clients'; emailDomain?: string }) =>
      ctx.run((services) => addDefaultRoleRule(services, name, { subjectType: options.for === 'users' ? 'user' : 'client', emailDomain: options.emailDomain }, CLI_AUDIT)),
    );

  role
    .command('remove-default <rule-id>')
    .description('remove a default-role rule (ids are shown by `role show`)')
    .action((ruleId: string) =>
      ctx.run(async (services) => {
        await removeDefaultRoleRule(services, ruleId, CLI_AUDIT);
        return { removed: ruleId };
      }),
    );
}

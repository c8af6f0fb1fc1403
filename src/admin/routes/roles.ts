// Roles: bundles of API permissions held by users and machine clients, directly or through
// default-role rules.
import { z } from 'zod';
import {
  addDefaultRoleRule,
  addRolePermissions,
  assignRole,
  createRole,
  deleteRole,
  getRole,
  listRoleMembers,
  listRoles,
  removeDefaultRoleRule,
  removeRolePermission,
  unassignRole,
  updateRole,
} from '../../domain/roles.ts';
import { AppError } from '../../errors.ts';
import { defineRoute, type AdminRoute } from '../define.ts';

const TAG = 'Roles';

export const roleName = z.string().min(1).max(100).meta({ description: 'The role name', example: 'billing-admin' });

const rolePermissionSchema = z
  .object({
    resource: z.string().min(1).max(2000).meta({ description: 'Identifier of the API (resource indicator)', example: 'https://api.example.com/invoices' }),
    permission: z.string().min(1).max(200).meta({ example: 'invoices:read' }),
  })
  .meta({ id: 'RolePermission' });

const defaultRuleSchema = z
  .object({
    id: z.uuid(),
    subject_type: z.enum(['user', 'client']),
    email_domain: z.string().nullable().meta({ description: 'Users only: the rule applies to addresses at this domain; null for every user' }),
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'DefaultRoleRule' });

const roleSchema = z
  .object({
    name: z.string(),
    description: z.string().nullable(),
    built_in: z.boolean().meta({ description: 'Built-in roles cannot be renamed or deleted' }),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .meta({ id: 'Role' });

const detailedRoleSchema = roleSchema
  .extend({ permissions: z.array(rolePermissionSchema), default_rules: z.array(defaultRuleSchema) })
  .meta({ id: 'RoleDetails' });

const memberSchema = z
  .object({ type: z.enum(['user', 'client']), id: z.string(), assigned_at: z.iso.datetime() })
  .meta({ id: 'RoleMember' });

export const subjectRolesSchema = z
  .object({
    direct: z.array(z.string()).meta({ description: 'Roles assigned to the subject' }),
    effective: z.array(z.string()).meta({ description: 'Every role in effect, including those from default-role rules' }),
  })
  .meta({ id: 'SubjectRoles' });

const rolePath = z.object({ role: roleName });

export const roleRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/roles',
    operationId: 'listRoles',
    summary: 'List roles',
    tag: TAG,
    scope: 'admin:roles:read',
    status: 200,
    responseDescription: 'Every role',
    response: z.object({ items: z.array(roleSchema) }),
    handler: async ({ deps }) => ({ items: await listRoles(deps.services) }),
  }),
  defineRoute({
    method: 'post',
    path: '/roles',
    operationId: 'createRole',
    summary: 'Create a role',
    tag: TAG,
    scope: 'admin:roles:write',
    body: z.object({
      name: roleName,
      description: z.string().max(500).nullable().optional(),
      permissions: z.array(rolePermissionSchema).max(500).default([]),
    }),
    status: 201,
    responseDescription: 'The created role',
    response: detailedRoleSchema,
    errors: [404, 409],
    handler: ({ body, admin, deps }) => createRole(deps.services, body, admin.auditMeta),
  }),
  defineRoute({
    method: 'get',
    path: '/roles/{role}',
    operationId: 'getRole',
    summary: 'Get a role with its permissions and default-role rules',
    tag: TAG,
    scope: 'admin:roles:read',
    params: rolePath,
    status: 200,
    responseDescription: 'The role',
    response: detailedRoleSchema,
    errors: [404],
    handler: ({ params, deps }) => getRole(deps.services, params.role),
  }),
  defineRoute({
    method: 'patch',
    path: '/roles/{role}',
    operationId: 'updateRole',
    summary: 'Rename a role or change its description',
    tag: TAG,
    scope: 'admin:roles:write',
    params: rolePath,
    body: z.object({ name: roleName.optional(), description: z.string().max(500).nullable().optional() }),
    status: 200,
    responseDescription: 'The changed role',
    response: detailedRoleSchema,
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => updateRole(deps.services, params.role, body, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/roles/{role}',
    operationId: 'deleteRole',
    summary: 'Delete a role',
    description: 'Its assignments and default-role rules go with it.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: rolePath,
    status: 204,
    responseDescription: 'The role is deleted',
    errors: [404, 409],
    async handler({ params, admin, deps }) {
      await deleteRole(deps.services, params.role, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'post',
    path: '/roles/{role}/permissions',
    operationId: 'addRolePermissions',
    summary: 'Add permissions to a role',
    tag: TAG,
    scope: 'admin:roles:write',
    params: rolePath,
    body: z.object({ permissions: z.array(rolePermissionSchema).min(1).max(500) }),
    status: 200,
    responseDescription: 'The role with its permissions',
    response: detailedRoleSchema,
    errors: [404],
    handler: ({ params, body, admin, deps }) => addRolePermissions(deps.services, params.role, body.permissions, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/roles/{role}/permissions',
    operationId: 'removeRolePermission',
    summary: 'Remove a permission from a role',
    description: 'The permission is named in the query because API identifiers are URIs.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: rolePath,
    query: rolePermissionSchema,
    status: 200,
    responseDescription: 'The role with its remaining permissions',
    response: detailedRoleSchema,
    errors: [404],
    handler: ({ params, query, admin, deps }) => removeRolePermission(deps.services, params.role, query, admin.auditMeta),
  }),
  defineRoute({
    method: 'get',
    path: '/roles/{role}/members',
    operationId: 'listRoleMembers',
    summary: 'List the users and clients holding a role directly',
    tag: TAG,
    scope: 'admin:roles:read',
    params: rolePath,
    status: 200,
    responseDescription: 'The role\'s direct members',
    response: z.object({ items: z.array(memberSchema) }),
    errors: [404],
    handler: async ({ params, deps }) => ({ items: await listRoleMembers(deps.services, params.role) }),
  }),
  defineRoute({
    method: 'put',
    path: '/roles/{role}/members/{type}/{id}',
    operationId: 'addRoleMember',
    summary: 'Give a user or a client a role',
    description: 'Idempotent: `assigned` is false when the subject already held the role. Users are named by account id, clients by client id.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ role: roleName, type: z.enum(['user', 'client']), id: z.string().min(1).max(200) }),
    status: 200,
    responseDescription: 'The role is held',
    response: z.object({ assigned: z.boolean() }),
    errors: [404],
    handler: ({ params, admin, deps }) => assignRole(deps.services, params.role, { type: params.type, id: params.id }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/roles/{role}/members/{type}/{id}',
    operationId: 'removeRoleMember',
    summary: 'Take a role from a user or a client',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ role: roleName, type: z.enum(['user', 'client']), id: z.string().min(1).max(200) }),
    status: 204,
    responseDescription: 'The subject no longer holds the role directly',
    errors: [404],
    async handler({ params, admin, deps }) {
      await unassignRole(deps.services, params.role, { type: params.type, id: params.id }, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'post',
    path: '/roles/{role}/default-rules',
    operationId: 'addDefaultRoleRule',
    summary: 'Add a default-role rule',
    description: 'Every user, every user with an address at `email_domain`, or every client holds the role without an assignment. Rules are evaluated when tokens are issued, so they apply to existing subjects too.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: rolePath,
    body: z.object({ subject_type: z.enum(['user', 'client']), email_domain: z.string().min(1).max(253).nullable().optional() }),
    status: 201,
    responseDescription: 'The created rule',
    response: defaultRuleSchema,
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => addDefaultRoleRule(deps.services, params.role, { subjectType: body.subject_type, emailDomain: body.email_domain }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/roles/{role}/default-rules/{ruleId}',
    operationId: 'removeDefaultRoleRule',
    summary: 'Remove a default-role rule',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ role: roleName, ruleId: z.uuid() }),
    status: 204,
    responseDescription: 'The rule is removed',
    errors: [404],
    async handler({ params, admin, deps }) {
      const role = await getRole(deps.services, params.role);
      if (!role.default_rules.some((rule) => rule.id === params.ruleId)) {
        throw new AppError('rule_not_found', `the role "${role.name}" has no default-role rule with id "${params.ruleId}"`, 404);
      }
      await removeDefaultRoleRule(deps.services, params.ruleId, admin.auditMeta);
    },
  }),
];

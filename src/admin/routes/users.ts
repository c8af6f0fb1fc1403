// Users: create (with a password or by invitation), search, read, change, change status, delete,
// send a password-reset email, remove second factors, list and end sign-in sessions, roles.
import { z } from 'zod';
import { changeAccountStatusById } from '../../domain/account-status.ts';
import { inviteUser } from '../../domain/invitations.ts';
import { eraseAccount } from '../../domain/erasure.ts';
import { exportAccountData } from '../../domain/data-export.ts';
import { mfaSummary, removeFactor } from '../../domain/mfa.ts';
import { requestPasswordReset } from '../../domain/password-reset.ts';
import { assignRole, listSubjectRoles, unassignRole } from '../../domain/roles.ts';
import { accountSessions, activeSessionAccount } from '../../domain/sessions.ts';
import { createUser, getUser, searchUsers, updateUser } from '../../domain/users.ts';
import { AppError } from '../../errors.ts';
import { revokeSessions } from '../../oidc/sessions.ts';
import { defineRoute, type AdminRoute } from '../define.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../paging.ts';
import { roleName, subjectRolesSchema } from './roles.ts';

const TAG = 'Users';
const ACCOUNT_STATUSES = ['pending', 'active', 'suspended', 'blocked', 'locked', 'deleted'] as const;

export const userId = z.uuid().meta({ description: 'The account id', example: '0b5a9c4e-3c1f-4e7a-9a51-2f8d7b1c6e42' });

export const userSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    name: z.string().nullable(),
    email_verified: z.boolean(),
    status: z.enum(ACCOUNT_STATUSES),
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'User' });

const factorSchema = z
  .object({
    id: z.uuid(),
    type: z.enum(['totp', 'webauthn', 'sms']),
    name: z.string(),
    created_at: z.iso.datetime(),
    last_used_at: z.iso.datetime().nullable(),
    backed_up: z.boolean().nullable().meta({ description: 'Passkeys: whether the credential is synced to a cloud account' }),
  })
  .meta({ id: 'Factor' });

const sessionSchema = z
  .object({
    id: z.string(),
    created_at: z.iso.datetime(),
    last_active_at: z.iso.datetime(),
    login_ip: z.string().nullable(),
    last_ip: z.string().nullable(),
    browser: z.string().nullable(),
    os: z.string().nullable(),
    device_type: z.string().nullable(),
    location: z.string().nullable(),
    remember: z.boolean(),
    methods: z.array(z.string()).meta({ description: 'How the person signed in (amr values)' }),
    clients: z.array(z.string()).meta({ description: 'Clients signed in through this session' }),
  })
  .meta({ id: 'Session' });

const userPath = z.object({ id: userId });
const userCursor = z.object({ k: z.string(), i: z.uuid() });

async function requireUser(services: Parameters<typeof getUser>[0], id: string): Promise<void> {
  await getUser(services, id);
}

export const userRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/users',
    operationId: 'listUsers',
    summary: 'Search users',
    description: 'Newest first. `email` and `name` match case-insensitively anywhere in the value.',
    tag: TAG,
    scope: 'admin:users:read',
    query: z.object({
      email: z.string().min(1).max(320).optional().meta({ description: 'Part of the email address' }),
      name: z.string().min(1).max(200).optional().meta({ description: 'Part of the name' }),
      status: z.enum(ACCOUNT_STATUSES).optional(),
      ...pageQuery,
    }),
    status: 200,
    responseDescription: 'One page of users',
    response: pageOf(userSchema),
    async handler({ query, deps }) {
      const after = decodeCursor(query.cursor, userCursor);
      const { users, next } = await searchUsers(deps.services, { email: query.email, name: query.name, status: query.status }, {
        after: after ? { sortKey: after.k, id: after.i } : undefined,
        limit: query.limit,
      });
      return { items: users, next_cursor: next ? encodeCursor({ k: next.sortKey, i: next.id }) : null };
    },
  }),
  defineRoute({
    method: 'post',
    path: '/users',
    operationId: 'createUser',
    summary: 'Create a user',
    description: 'With a `password` the account is active at once. Without one, an invitation is mailed: the person chooses a password through its link, and the account stays `pending` until then.',
    tag: TAG,
    scope: 'admin:users:write',
    body: z.object({
      email: z.string().min(3).max(320),
      name: z.string().max(200).optional(),
      password: z.string().min(1).max(1024).optional(),
      email_verified: z.boolean().default(false).meta({ description: 'With a password: mark the address verified' }),
    }),
    status: 201,
    responseDescription: 'The created user',
    response: userSchema,
    errors: [409],
    async handler({ body, admin, deps }) {
      if (body.password !== undefined) {
        return createUser(deps.services, { email: body.email, password: body.password, name: body.name, emailVerified: body.email_verified }, admin.auditMeta);
      }
      const invited = await inviteUser(deps.services, { email: body.email, name: body.name }, admin.auditMeta);
      deps.services.notifier.kick();
      return getUser(deps.services, invited.id);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/{id}',
    operationId: 'getUser',
    summary: 'Get a user',
    tag: TAG,
    scope: 'admin:users:read',
    params: userPath,
    status: 200,
    responseDescription: 'The user',
    response: userSchema,
    errors: [404],
    handler: ({ params, deps }) => getUser(deps.services, params.id),
  }),
  defineRoute({
    method: 'patch',
    path: '/users/{id}',
    operationId: 'updateUser',
    summary: 'Change a user',
    description: 'Only the fields sent change. A new email address is unverified unless `email_verified` is sent too.',
    tag: TAG,
    scope: 'admin:users:write',
    params: userPath,
    body: z.object({
      email: z.string().min(3).max(320).optional(),
      name: z.string().max(200).nullable().optional(),
      email_verified: z.boolean().optional(),
    }),
    status: 200,
    responseDescription: 'The changed user',
    response: userSchema,
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => updateUser(deps.services, params.id, { email: body.email, name: body.name, emailVerified: body.email_verified }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/users/{id}',
    operationId: 'deleteUser',
    summary: 'Erase a user',
    description: 'GDPR/CCPA erasure: ends every session, grant and token of the account (apps get back-channel logouts), deletes the account and everything stored about the person, and pseudonymizes the audit rows (they keep a random id instead of the account id, without IP addresses or user agents). The email address can sign up again afterwards.',
    tag: TAG,
    scope: 'admin:users:write',
    params: userPath,
    status: 200,
    responseDescription: 'The user is erased; the pseudonym the audit rows now carry',
    response: z.object({ erased: z.literal(true), pseudonym: z.uuid().meta({ description: 'The account id in the audit trail from now on' }) }),
    errors: [404],
    async handler({ params, admin, deps }) {
      const { pseudonym } = await eraseAccount(deps.services, params.id, admin.auditMeta, deps.host.provider);
      return { erased: true as const, pseudonym };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/{id}/export',
    operationId: 'exportUser',
    summary: 'Export everything stored about a user',
    description: 'The same JSON document the person downloads from /account: profile, factors (metadata, never secrets), sessions, connected apps, remembered devices, linked identities, roles, API keys and audit events. Recorded as an audit event.',
    tag: TAG,
    scope: 'admin:users:read',
    params: userPath,
    status: 200,
    responseDescription: 'The export document',
    response: z.record(z.string(), z.unknown()).meta({ description: 'See docs/privacy.md for the format' }),
    errors: [404],
    handler: async ({ params, admin, deps }) => (await exportAccountData(deps.services, params.id, admin.auditMeta)) as unknown as Record<string, unknown>,
  }),
  defineRoute({
    method: 'post',
    path: '/users/{id}/status',
    operationId: 'changeUserStatus',
    summary: 'Suspend, block, reactivate or unlock a user',
    description: 'Suspending and blocking end the account\'s sessions and tokens. Reactivating applies to suspended, blocked and locked accounts; unlocking clears a lockout after failed sign-ins.',
    tag: TAG,
    scope: 'admin:users:write',
    params: userPath,
    body: z.object({ action: z.enum(['suspend', 'block', 'reactivate', 'unlock']) }),
    status: 200,
    responseDescription: 'The user with its new status',
    response: userSchema,
    errors: [404, 409],
    handler: ({ params, body, admin, deps }) => changeAccountStatusById(deps.services, params.id, body.action, admin.auditMeta),
  }),
  defineRoute({
    method: 'post',
    path: '/users/{id}/password-reset',
    operationId: 'sendPasswordReset',
    summary: 'Email a password-reset link',
    description: 'The same rules as a reset the person asks for: a cool-down between links and a daily cap, both recorded in the audit log when they apply.',
    tag: TAG,
    scope: 'admin:users:write',
    params: userPath,
    status: 202,
    responseDescription: 'The request was accepted; the mail goes out through the outbox',
    errors: [404],
    async handler({ params, admin, deps }) {
      const user = await getUser(deps.services, params.id);
      await requestPasswordReset(deps.services, user.email, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/{id}/factors',
    operationId: 'listUserFactors',
    summary: 'List a user\'s second factors',
    tag: TAG,
    scope: 'admin:users:read',
    params: userPath,
    status: 200,
    responseDescription: 'The confirmed second factors and the number of unused recovery codes',
    response: z.object({ items: z.array(factorSchema), recovery_codes_left: z.number().int() }),
    errors: [404],
    async handler({ params, deps }) {
      await requireUser(deps.services, params.id);
      const summary = await mfaSummary(deps.services, params.id);
      return {
        items: summary.factors.map((f) => ({
          id: f.id,
          type: f.type,
          name: f.name,
          created_at: f.createdAt.toISOString(),
          last_used_at: f.lastUsedAt?.toISOString() ?? null,
          backed_up: f.backedUp,
        })),
        recovery_codes_left: summary.recoveryCodesLeft,
      };
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/{id}/factors/{factorId}',
    operationId: 'removeUserFactor',
    summary: 'Remove a second factor',
    description: 'The owner is told by mail. Removing the last factor also removes the recovery codes.',
    tag: TAG,
    scope: 'admin:users:write',
    params: z.object({ id: userId, factorId: z.uuid() }),
    status: 204,
    responseDescription: 'The factor is removed',
    errors: [404],
    async handler({ params, admin, deps }) {
      await requireUser(deps.services, params.id);
      await removeFactor(deps.services, params.id, params.factorId, admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/{id}/sessions',
    operationId: 'listUserSessions',
    summary: 'List a user\'s active sessions',
    tag: TAG,
    scope: 'admin:users:read',
    params: userPath,
    status: 200,
    responseDescription: 'The active sessions, latest activity first',
    response: z.object({ items: z.array(sessionSchema) }),
    errors: [404],
    async handler({ params, deps }) {
      await requireUser(deps.services, params.id);
      const sessions = await accountSessions(deps.services.knex, params.id);
      return {
        items: sessions.map((s) => ({
          id: s.id,
          created_at: s.createdAt.toISOString(),
          last_active_at: s.lastActiveAt.toISOString(),
          login_ip: s.loginIp,
          last_ip: s.lastIp,
          browser: s.browser,
          os: s.os,
          device_type: s.deviceType,
          location: s.location,
          remember: s.remember,
          methods: s.methods,
          clients: s.clients,
        })),
      };
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/{id}/sessions',
    operationId: 'revokeUserSessions',
    summary: 'End every session of a user',
    description: 'Each session\'s grants and tokens are revoked and its clients get a back-channel logout.',
    tag: TAG,
    scope: 'admin:users:write',
    params: userPath,
    status: 200,
    responseDescription: 'The ids of the sessions ended',
    response: z.object({ revoked: z.array(z.string()) }),
    errors: [404],
    async handler({ params, admin, deps }) {
      await requireUser(deps.services, params.id);
      return { revoked: await revokeSessions(deps.services, deps.host.provider, { accountId: params.id }, 'revoked_by_admin', admin.auditMeta) };
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/users/{id}/sessions/{sessionId}',
    operationId: 'revokeUserSession',
    summary: 'End one session',
    tag: TAG,
    scope: 'admin:users:write',
    params: z.object({ id: userId, sessionId: z.string().min(1).max(200) }),
    status: 204,
    responseDescription: 'The session is ended',
    errors: [404],
    async handler({ params, admin, deps }) {
      if ((await activeSessionAccount(deps.services.knex, params.sessionId)) !== params.id) {
        throw new AppError('session_not_found', 'the user has no active session with this id', 404);
      }
      await revokeSessions(deps.services, deps.host.provider, { accountId: params.id, uid: params.sessionId }, 'revoked_by_admin', admin.auditMeta);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/users/{id}/roles',
    operationId: 'listUserRoles',
    summary: 'List a user\'s roles',
    tag: TAG,
    scope: 'admin:users:read',
    params: userPath,
    status: 200,
    responseDescription: 'Roles held directly and all roles in effect (direct and by default-role rules)',
    response: subjectRolesSchema,
    errors: [404],
    handler: ({ params, deps }) => listSubjectRoles(deps.services, { type: 'user', id: params.id }),
  }),
  defineRoute({
    method: 'put',
    path: '/users/{id}/roles/{role}',
    operationId: 'assignUserRole',
    summary: 'Give a user a role',
    description: 'Idempotent: `assigned` is false when the user already held the role.',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ id: userId, role: roleName }),
    status: 200,
    responseDescription: 'The role is held',
    response: z.object({ assigned: z.boolean() }),
    errors: [404],
    handler: ({ params, admin, deps }) => assignRole(deps.services, params.role, { type: 'user', id: params.id }, admin.auditMeta),
  }),
  defineRoute({
    method: 'delete',
    path: '/users/{id}/roles/{role}',
    operationId: 'unassignUserRole',
    summary: 'Take a role from a user',
    tag: TAG,
    scope: 'admin:roles:write',
    params: z.object({ id: userId, role: roleName }),
    status: 204,
    responseDescription: 'The user no longer holds the role directly',
    errors: [404],
    async handler({ params, admin, deps }) {
      await unassignRole(deps.services, params.role, { type: 'user', id: params.id }, admin.auditMeta);
    },
  }),
];


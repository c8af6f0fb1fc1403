// The authorization decision a resource server asks for: may this subject do this action on this
// object of my API, in this context? The order (docs/authorization-policies.md):
//
//   1. The subject must exist (and a user must be active).
//   2. A matching enabled deny policy refuses, whatever else would allow.
//   3. A matching enabled allow policy allows.
//   4. An ACL entry for the object (or "*") held by the subject or one of its roles allows.
//   5. Actions that no allow policy and no ACL entry names fall back to RBAC: allowed when the
//      subject's roles grant the permission of that name on the API.
//   6. Otherwise refused.
//
// Conditions run in casbin (policy-engine.ts). A condition that fails at evaluation (say it reads
// an attribute the caller did not send) does not match if it is an allow policy and refuses if it
// is a deny policy: a broken rule must never open access.
import net from 'node:net';
import { z } from 'zod';
import { findAccountRow } from '../db/accounts.ts';
import { findMatchingAclEntries } from '../db/acl.ts';
import { findClientRow } from '../db/clients.ts';
import { AppError } from '../errors.ts';
import { ACR_MFA } from '../oidc/acr.ts';
import type { Services } from '../services.ts';
import { ACTION_NAME, requireResource } from './policies.ts';
import { compiledPolicies, singlePolicyMatcher, type CompiledPolicies, type EnginePolicy } from './policy-engine.ts';
import { subjectPermissionNames, subjectRoleNames } from './roles.ts';

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

const MAX_ATTRIBUTES = 50;
const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
// Names the expression evaluator refuses to read; refusing them here says why.
const RESERVED_NAMES = new Set(['__proto__', 'prototype', 'constructor']);

const attributes = z
  .record(
    z.string().regex(ATTRIBUTE_NAME, 'attribute names are 1 to 64 characters from A-Z a-z 0-9 _ and do not start with a digit')
      .refine((name) => !RESERVED_NAMES.has(name), 'this attribute name is reserved'),
    z.json(),
  )
  .refine((value) => Object.keys(value).length <= MAX_ATTRIBUTES, `at most ${MAX_ATTRIBUTES} attributes`);

const subjectSchema = z.union(
  [
    z.string().regex(/^(user|client):.+$/, 'a subject string is "user:<account id>" or "client:<client id>"').transform((value) => {
      const colon = value.indexOf(':');
      return { type: value.slice(0, colon) as 'user' | 'client', id: value.slice(colon + 1) };
    }),
    z.strictObject({
      type: z.enum(['user', 'client'], 'the subject type is "user" or "client"'),
      id: z.string().min(1, 'the subject id is required').max(200),
      attributes: attributes.optional(),
    }),
  ],
  'the subject is {"type": "user" | "client", "id": "...", "attributes": {...}} or "user:<id>" / "client:<id>"',
);

const OBJECT_ID = z.string().min(1, 'the object id is not empty').max(200, 'the object id is at most 200 characters');

const objectSchema = z.union(
  [
    OBJECT_ID,
    z.strictObject({ id: OBJECT_ID.optional(), type: z.string().max(200).optional(), attributes: attributes.optional() }),
  ],
  'the object is an id or {"id": "...", "type": "...", "attributes": {...}}',
);

const contextSchema = attributes.pipe(
  z.object({
    ip: z.string().refine((ip) => net.isIP(ip) !== 0, 'context.ip is an IPv4 or IPv6 address').optional(),
    time: z.iso.datetime({ offset: true, message: 'context.time is an ISO 8601 date-time such as 2026-11-21T09:30:00Z' }).optional(),
    hour: z.number().int().min(0).max(23).optional(),
    minute: z.number().int().min(0).max(59).optional(),
    weekday: z.number().int().min(0, 'context.weekday is 0 (Sunday) to 6 (Saturday)').max(6, 'context.weekday is 0 (Sunday) to 6 (Saturday)').optional(),
    amr: z.array(z.string().max(64)).max(20).optional(),
    acr: z.string().max(200).optional(),
    mfa: z.boolean().optional(),
  }).catchall(z.json()),
);

export const checkRequestSchema = z.strictObject({
  resource: z.string({ error: 'resource (the API identifier) is required' }).min(1, 'resource (the API identifier) is required'),
  subject: subjectSchema,
  action: z.string({ error: 'action is required' }).regex(ACTION_NAME, 'the action is 1 to 200 characters without spaces, double quotes or backslashes'),
  object: objectSchema.optional(),
  context: contextSchema.optional(),
});

export type CheckRequestInput = z.input<typeof checkRequestSchema>;
export type CheckRequest = z.output<typeof checkRequestSchema>;

/** Validates a decision request; the message names the first problem and where it is. */
export function parseCheckRequest(input: unknown): CheckRequest {
  const parsed = checkRequestSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new AppError('invalid_request', `${where}${issue.message}`, 400);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

export interface Decision {
  allowed: boolean;
  /**
   * Machine-readable: "policy:<name>", "deny-policy:<name>", "policy-error:<name>",
   * "acl:<subject>", "permission:<name>", "subject-unknown", "subject-inactive" or "no-match".
   */
  reason: string;
  /** The same for people. */
  description: string;
}

type Attributes = Record<string, unknown>;
type CheckServices = Pick<Services, 'knex' | 'logger'>;

interface ResolvedSubject {
  /** What conditions see as r.sub. */
  attributes: Attributes;
  /** The ACL subjects it answers to: itself and each of its roles. */
  principals: string[];
  permissions: string[];
}

async function resolveSubject(services: CheckServices, resourceId: string, subject: CheckRequest['subject']): Promise<ResolvedSubject | Decision> {
  const principal = `${subject.type}:${subject.id}`;
  const supplied = 'attributes' in subject ? (subject.attributes ?? {}) : {};
  let known: Attributes;
  if (subject.type === 'user') {
    const account = await findAccountRow(services.knex, subject.id);
    if (!account || account.status === 'deleted') return { allowed: false, reason: 'subject-unknown', description: `no account has id "${subject.id}"` };
    if (account.status !== 'active') return { allowed: false, reason: 'subject-inactive', description: `the account is ${account.status}` };
    known = { email: account.email, email_verified: account.email_verified, name: account.name ?? '', status: account.status };
  } else {
    const client = await findClientRow(services.knex, subject.id);
    if (!client) return { allowed: false, reason: 'subject-unknown', description: `no client has id "${subject.id}"` };
    const name = (client.metadata as { client_name?: unknown }).client_name;
    known = { email: '', email_verified: false, name: typeof name === 'string' ? name : '', status: 'active' };
  }
  const ref = { type: subject.type, id: subject.id };
  const [roles, permissions] = await Promise.all([subjectRoleNames(services.knex, ref), subjectPermissionNames(services.knex, ref, resourceId)]);
  return {
    // What Gatehouse knows wins over what the caller sends, so a caller cannot claim a verified email.
    attributes: { ...supplied, ...known, id: subject.id, type: subject.type, principal, roles, permissions },
    principals: [principal, ...roles.map((role) => `role:${role}`)],
    permissions,
  };
}

function objectAttributes(object: CheckRequest['object']): Attributes {
  if (object === undefined) return { id: '', type: '' };
  if (typeof object === 'string') return { id: object, type: '' };
  return { ...(object.attributes ?? {}), id: object.id ?? '', type: object.type ?? '' };
}

/** The request context: the caller's values, with the time fields derived (UTC) where not given. */
export function contextAttributes(context: CheckRequest['context'], now = new Date()): Attributes {
  const given = context ?? {};
  const time = given.time !== undefined ? new Date(given.time) : now;
  const amr = given.amr ?? [];
  const acr = given.acr ?? '';
  return {
    ...given,
    ip: given.ip ?? '',
    time: time.toISOString(),
    date: time.toISOString().slice(0, 10),
    hour: given.hour ?? time.getUTCHours(),
    minute: given.minute ?? time.getUTCMinutes(),
    weekday: given.weekday ?? time.getUTCDay(),
    amr,
    acr,
    mfa: given.mfa ?? (amr.includes('mfa') || acr === ACR_MFA),
  };
}

type PolicyOutcome = { effect: 'allow' | 'deny'; name: string; failed?: boolean };

function applies(policy: EnginePolicy, action: string): boolean {
  return policy.actions.includes('*') || policy.actions.includes(action);
}

/** Each applicable policy on its own, so one failing condition cannot hide the others' results. */
async function evaluateSeparately(services: CheckServices, compiled: CompiledPolicies, resource: string, request: unknown[]): Promise<PolicyOutcome | undefined> {
  const enforcer = compiled.enforcer!;
  const action = request[2] as string;
  let allowedBy: string | undefined;
  for (const policy of compiled.policies.filter((p) => applies(p, action))) {
    try {
      const [, rule] = await enforcer.enforceExWithMatcher(singlePolicyMatcher(policy.name), ...request);
      if (rule.length === 0) continue;
      if (policy.effect === 'deny') return { effect: 'deny', name: policy.name };
      allowedBy ??= policy.name;
    } catch (err) {
      services.logger.warn({ resource, policy: policy.name, err: err instanceof Error ? err.message : String(err) }, 'an authorization policy condition failed');
      if (policy.effect === 'deny') return { effect: 'deny', name: policy.name, failed: true };
    }
  }
  return allowedBy !== undefined ? { effect: 'allow', name: allowedBy } : undefined;
}

async function evaluatePolicies(services: CheckServices, compiled: CompiledPolicies, resource: string, request: unknown[]): Promise<PolicyOutcome | undefined> {
  if (!compiled.enforcer) return undefined;
  try {
    // enforceEx names the rule that decided: the deny rule that refused, or an allow rule.
    const [allowed, rule] = await compiled.enforcer.enforceEx(...request);
    const [name, , , effect] = rule;
    if (name === undefined) return undefined;
    if (allowed && effect === 'allow') return { effect: 'allow', name };
    if (!allowed && effect === 'deny') return { effect: 'deny', name };
    return undefined;
  } catch {
    return evaluateSeparately(services, compiled, resource, request);
  }
}

/** The decision for an API already looked up (the endpoint has, to check the caller). */
export async function decideForResource(services: CheckServices, resource: { id: string; identifier: string }, request: CheckRequest): Promise<Decision> {
  const { action } = request;
  const subject = await resolveSubject(services, resource.id, request.subject);
  if ('allowed' in subject) return subject;

  const object = objectAttributes(request.object);
  const compiled = await compiledPolicies(services.knex, resource.id);
  const casbinRequest = [subject.attributes, object, action, contextAttributes(request.context)];
  const policy = await evaluatePolicies(services, compiled, resource.identifier, casbinRequest);
  if (policy?.effect === 'deny') {
    return policy.failed
      ? { allowed: false, reason: `policy-error:${policy.name}`, description: `the condition of deny policy "${policy.name}" could not be evaluated for this request, so it refuses` }
      : { allowed: false, reason: `deny-policy:${policy.name}`, description: `refused by deny policy "${policy.name}"` };
  }
  if (policy?.effect === 'allow') return { allowed: true, reason: `policy:${policy.name}`, description: `allowed by policy "${policy.name}"` };

  const objectId = typeof object.id === 'string' && object.id !== '' ? object.id : undefined;
  const grants = await findMatchingAclEntries(services.knex, resource.id, subject.principals, objectId, action);
  const grant = grants.find((g) => g.object === objectId) ?? grants[0];
  if (grant) {
    const on = grant.object === '*' ? 'every object' : `"${grant.object}"`;
    return { allowed: true, reason: `acl:${grant.subject}`, description: `an ACL entry grants "${action}" on ${on} to ${grant.subject}` };
  }

  const decidedByPolicyOrAcl = compiled.allowActions.has('*') || compiled.allowActions.has(action) || compiled.aclActions.has(action);
  if (!decidedByPolicyOrAcl && subject.permissions.includes(action)) {
    return { allowed: true, reason: `permission:${action}`, description: `the subject's roles grant the permission "${action}"` };
  }
  return {
    allowed: false,
    reason: 'no-match',
    description: decidedByPolicyOrAcl
      ? `"${action}" is decided by policies and ACL entries of this API, and none allows it`
      : 'no matching permission, policy or ACL',
  };
}

/** The decision for an API named by its identifier (the CLI's entry point). */
export async function checkAuthorization(services: CheckServices, input: unknown): Promise<Decision> {
  const request = parseCheckRequest(input);
  const resource = await requireResource(services.knex, request.resource);
  return decideForResource(services, resource, request);
}


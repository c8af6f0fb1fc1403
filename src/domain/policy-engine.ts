// The casbin side of ABAC policies: the model every API's policies are evaluated under, the check
// a condition passes before it is stored, and a short per-process cache of compiled enforcers.
//
// One casbin rule is stored per (policy, action): [name, action, condition, effect]. The matcher
// substitutes the rule's condition with casbin's eval(), so a condition is an expression over the
// request: r.sub (subject attributes), r.obj (object attributes), r.ctx (request context) and
// r.act (the action). The effect "some allow and no deny" makes a matching deny rule win.
import net from 'node:net';
import type { Knex } from 'knex';
import { newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import { listEnabledPolicyRows, type PolicyEffect, type PolicyRow } from '../db/policies.ts';
import { listAclActions } from '../db/acl.ts';
import { AppError } from '../errors.ts';

// No space right before "eval(": casbin rewrites " (a, b)" groups into arrays when an expression
// uses `in`, and a space there would make it rewrite the substituted condition. "!!" makes the
// condition's value a boolean (casbin refuses undefined, e.g. an attribute the caller left out).
const MATCHER = '(p.act == "*" || p.act == r.act) && !!eval(p.cond)';

const MODEL = `
[request_definition]
r = sub, obj, act, ctx

[policy_definition]
p = name, act, cond, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = ${MATCHER}
`;

/** Where the condition starts in the expression casbin compiles (parse errors count from there). */
const CONDITION_OFFSET = MATCHER.indexOf('eval(') + 1;

export const MAX_CONDITION_LENGTH = 2000;

/** casbin's built-in functions a condition may call. */
export const CONDITION_FUNCTIONS = [
  'ipMatch', 'regexMatch', 'globMatch', 'keyMatch', 'keyMatch2', 'keyMatch3', 'keyMatch4', 'keyMatch5', 'keyGet', 'keyGet2',
] as const;
const FUNCTIONS = new Set<string>(CONDITION_FUNCTIONS);
const REQUEST_MEMBERS = new Set(['sub', 'obj', 'ctx', 'act']);
const LITERALS = new Set(['true', 'false', 'null', 'in']);
// expression-eval refuses these at evaluation; refusing them when the policy is written says so earlier.
const FORBIDDEN_MEMBER = /^__proto__$|prototype|constructor$/;
// casbin only rewrites "r.x" into the variable it binds when one of these precedes the "r".
const BEFORE_REQUEST = /[()\s|&,=!><+\-*/]/;

function invalidPolicy(message: string): AppError {
  return new AppError('invalid_policy', message, 400);
}

/** Names the condition uses, checked without evaluating it: only r.sub/obj/ctx/act, casbin functions and literals. */
function checkNames(condition: string): void {
  let i = 0;
  while (i < condition.length) {
    const char = condition[i]!;
    if (char === '"' || char === "'") {
      let j = i + 1;
      while (j < condition.length && condition[j] !== char) j += condition[j] === '\\' ? 2 : 1;
      if (j >= condition.length) throw invalidPolicy(`the condition has an unterminated string starting at position ${i + 1}`);
      i = j + 1;
      continue;
    }
    if (/[0-9]/.test(char)) {
      while (i < condition.length && /[0-9A-Za-z_.]/.test(condition[i]!)) i += 1;
      continue;
    }
    if (!/[A-Za-z_$]/.test(char)) {
      i += 1;
      continue;
    }
    const name = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(condition.slice(i))![0];
    const before = condition.slice(0, i).trimEnd();
    const isMember = before.endsWith('.');
    if (isMember) {
      if (FORBIDDEN_MEMBER.test(name)) throw invalidPolicy(`the condition may not use the member "${name}"`);
    } else if (name === 'r') {
      const member = /^\.([A-Za-z_][A-Za-z0-9_]*)/.exec(condition.slice(i + 1))?.[1];
      if (member === undefined || !REQUEST_MEMBERS.has(member)) {
        throw invalidPolicy(`"r" must be followed by .sub, .obj, .ctx or .act (position ${i + 1})`);
      }
      const previous = condition[i - 1];
      if (previous !== undefined && !BEFORE_REQUEST.test(previous)) {
        throw invalidPolicy(`put a space or a parenthesis before "r.${member}" (position ${i + 1}): "${previous}" directly before it is not understood`);
      }
    } else if (FUNCTIONS.has(name)) {
      if (condition[i + name.length] !== '(') throw invalidPolicy(`call ${name} directly followed by "(", e.g. ${name}(r.ctx.ip, "10.0.0.0/8")`);
    } else if (!LITERALS.has(name)) {
      throw invalidPolicy(`unknown name "${name}" at position ${i + 1}: a condition uses r.sub, r.obj, r.ctx, r.act, true, false, null and the functions ${CONDITION_FUNCTIONS.join(', ')}`);
    }
    i += name.length;
  }
}

/** The literal ranges given to ipMatch must be addresses or CIDR blocks; a typo would otherwise fail every check. */
function checkIpRanges(condition: string): void {
  const calls = condition.matchAll(/ipMatch\(\s*[^,()]+,\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\)/g);
  for (const call of calls) {
    const range = call[1] ?? call[2] ?? '';
    const [address, bits, ...rest] = range.split('/');
    const family = net.isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= maxBits);
    if (family === 0 || !bitsOk || rest.length > 0) throw invalidPolicy(`ipMatch needs an IP address or a CIDR range such as "10.0.0.0/8"; "${range}" is neither`);
  }
}

// Stands in for attributes the caller may send but the sample request cannot know: any member
// of it is itself, calling it yields undefined, and it compares as the empty string.
const BLANK: object = new Proxy(Object.create(null) as object, {
  get: (_target, key) => (key === Symbol.toPrimitive ? () => '' : BLANK),
});

function lenient(known: Record<string, unknown>): Record<string, unknown> {
  return new Proxy(known, { get: (target, key) => (typeof key === 'symbol' || key in target ? Reflect.get(target, key) : BLANK) });
}

function sampleRequest(): unknown[] {
  const now = new Date();
  return [
    lenient({ id: '00000000-0000-4000-8000-000000000000', type: 'user', principal: 'user:00000000-0000-4000-8000-000000000000', email: 'someone@example.com', email_verified: true, name: 'Someone', status: 'active', roles: ['role'], permissions: ['permission'] }),
    lenient({ id: 'object', type: 'type' }),
    'action',
    lenient({ ip: '192.0.2.1', time: now.toISOString(), date: now.toISOString().slice(0, 10), hour: 12, minute: 0, weekday: 3, amr: ['pwd', 'otp', 'mfa'], acr: '', mfa: true }),
  ];
}

/** The casbin parser's message, with its position counted within the condition. */
function parseErrorMessage(err: unknown, condition: string): string {
  const parsed = err as { description?: unknown; index?: unknown; message?: unknown };
  if (typeof parsed.description === 'string' && typeof parsed.index === 'number') {
    const position = parsed.index - CONDITION_OFFSET;
    if (position < 0 || position > condition.length) return parsed.description;
    // The parser reads the condition inside parentheses of its own; where it stops early it
    // reports the group as unclosed, which says nothing about the condition.
    if (parsed.description === 'Unclosed (' && position < condition.length) {
      const hint = condition[position] === '=' ? ' (compare with ==)' : '';
      return `unexpected "${condition.slice(position, position + 10)}" at position ${position + 1}${hint}`;
    }
    if (parsed.description === 'Unexpected ")"' && position === condition.length) return 'a ")" has no matching "("';
    return `${parsed.description} at position ${position + 1}`;
  }
  return typeof parsed.message === 'string' ? parsed.message : String(err);
}

/**
 * Refuses a condition casbin could not compile or that fails on a sample request, with a message
 * an operator can act on. A stored condition can still fail at check time on attributes the
 * caller sends (see evaluation in authz-check.ts); this catches what is wrong whatever they are.
 */
export async function checkCondition(raw: unknown): Promise<string> {
  if (typeof raw !== 'string' || raw.trim().length === 0) throw invalidPolicy('a policy needs a condition, e.g. r.sub.email_verified == true');
  const condition = raw.trim();
  if (condition.length > MAX_CONDITION_LENGTH) throw invalidPolicy(`a condition is at most ${MAX_CONDITION_LENGTH} characters`);
  // casbin inserts the condition with String.replace, which would expand "$&" and the like.
  if (condition.includes('$')) throw invalidPolicy('a condition cannot contain "$"');
  checkNames(condition);
  checkIpRanges(condition);
  const enforcer = await newPolicyEnforcer([{ name: 'candidate', actions: ['*'], condition, effect: 'allow' }]);
  try {
    await enforcer.enforceEx(...sampleRequest());
  } catch (err) {
    // casbin's list syntax for `in` rewrites " (a, b)" groups anywhere in such a condition.
    const hint = / in /.test(condition) && / \([^)]*,/.test(condition)
      ? '; with "in", a parenthesis after a space holding a comma is read as a list: remove that space or use .includes()'
      : '';
    throw invalidPolicy(`the condition is not a valid expression: ${parseErrorMessage(err, condition)}${hint}`);
  }
  return condition;
}

export interface EnginePolicy {
  name: string;
  effect: PolicyEffect;
  actions: string[];
  condition: string;
}

export async function newPolicyEnforcer(policies: EnginePolicy[]): Promise<Enforcer> {
  const enforcer = await newEnforcer(newModelFromString(MODEL));
  const rules = policies.flatMap((p) => p.actions.map((action) => [p.name, action, p.condition, p.effect]));
  if (rules.length > 0) await enforcer.addNamedPolicies('p', rules);
  return enforcer;
}

/** The matcher that evaluates a single policy's rules (the others are skipped before their condition runs). */
export function singlePolicyMatcher(name: string): string {
  // Policy names are restricted to characters that need no escaping in a string literal.
  return `p.name == "${name}" && ${MATCHER}`;
}

// ---------------------------------------------------------------------------------------------
// Compiled policies per API, cached briefly
// ---------------------------------------------------------------------------------------------

export interface CompiledPolicies {
  /** Undefined when the API has no enabled policy. */
  enforcer: Enforcer | undefined;
  policies: EnginePolicy[];
  /** Actions some enabled allow policy names ("*": every action); they are decided by policies, not permissions. */
  allowActions: Set<string>;
  /** Actions the API's ACL names; they too are decided without the RBAC fallback. */
  aclActions: Set<string>;
}

/**
 * The database is the truth; this only saves re-reading and re-compiling an API's policies on
 * every check. A change made in this process is seen at once (writers call forgetCompiledPolicies);
 * one made by another process is seen within CACHE_TTL_MS.
 */
export const CACHE_TTL_MS = 5_000;
const MAX_CACHED = 1_000;

// Keyed by the Knex instance so each set of services (each database) has its own entries.
const caches = new WeakMap<Knex, Map<string, { expires: number; value: Promise<CompiledPolicies> }>>();

function toEnginePolicy(row: PolicyRow): EnginePolicy {
  return { name: row.name, effect: row.effect, actions: row.actions, condition: row.condition };
}

async function compile(knex: Knex, resourceId: string): Promise<CompiledPolicies> {
  const [rows, aclActions] = await Promise.all([listEnabledPolicyRows(knex, resourceId), listAclActions(knex, resourceId)]);
  const policies = rows.map(toEnginePolicy);
  return {
    enforcer: policies.length > 0 ? await newPolicyEnforcer(policies) : undefined,
    policies,
    allowActions: new Set(policies.filter((p) => p.effect === 'allow').flatMap((p) => p.actions)),
    aclActions: new Set(aclActions),
  };
}

export function compiledPolicies(knex: Knex, resourceId: string): Promise<CompiledPolicies> {
  let cache = caches.get(knex);
  if (!cache) {
    cache = new Map();
    caches.set(knex, cache);
  }
  const now = Date.now();
  const entry = cache.get(resourceId);
  if (entry && entry.expires > now) return entry.value;
  cache.delete(resourceId);
  if (cache.size >= MAX_CACHED) {
    for (const [key, e] of cache) if (e.expires <= now) cache.delete(key);
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  }
  const value = compile(knex, resourceId);
  const created = { expires: now + CACHE_TTL_MS, value };
  cache.set(resourceId, created);
  value.catch(() => {
    if (cache.get(resourceId) === created) cache.delete(resourceId);
  });
  return value;
}

/** Called after a change to an API's policies or ACL has committed. */
export function forgetCompiledPolicies(knex: Knex, resourceId: string): void {
  caches.get(knex)?.delete(resourceId);
}

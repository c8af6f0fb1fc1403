// Access tokens for an API carry only the requested scopes the subject's permissions allow
// (scope ∩ permissions), for people and machine clients alike. oidc-provider asks for the API's
// accepted scopes whenever it resolves a resource; answering with the subject's permissions
// there makes the library drop everything else from consent, the grant and every token,
// including tokens minted later from a refresh token after a role was taken away.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Knex } from 'knex';
import { subjectPermissionNames, type Subject } from '../domain/roles.ts';
import { TtlCache } from '../ttl-cache.ts';

/** Who the token being issued (or the consent being asked) is for, when that is known yet. */
export function tokenSubject(ctx: KoaContextWithOIDC): Subject | undefined {
  const { oidc } = ctx;
  if (!oidc) return undefined;
  if (oidc.params?.grant_type === 'client_credentials' && oidc.client) return { type: 'client', id: oidc.client.clientId };
  const entities = oidc.entities as { Grant?: { accountId?: string }; Account?: { accountId?: string } };
  const accountId = entities.Grant?.accountId ?? entities.Account?.accountId ?? oidc.session?.accountId;
  return typeof accountId === 'string' ? { type: 'user', id: accountId } : undefined;
}

export class PermissionFilter {
  // Machine clients ask for tokens far more often than their roles change; their permissions
  // are cached briefly (a role change reaches every instance within this time). People's are
  // read fresh: sign-ins and refreshes already cost several queries.
  private readonly clientCache: TtlCache<string[]>;
  private readonly knex: Knex;

  constructor(knex: Knex, cacheMs: number) {
    this.knex = knex;
    this.clientCache = new TtlCache<string[]>(cacheMs);
  }

  /** The API's scopes narrowed to what the subject may hold; all of them before sign-in. */
  async allowedScope(ctx: KoaContextWithOIDC, resourceId: string, scope: string): Promise<string> {
    const subject = tokenSubject(ctx);
    if (!subject) return scope;
    const permissions = subject.type === 'client'
      ? await this.clientCache.get(`${subject.id} ${resourceId}`, () => subjectPermissionNames(this.knex, subject, resourceId))
      : await subjectPermissionNames(this.knex, subject, resourceId);
    const allowed = new Set(permissions);
    return scope.split(' ').filter((s) => allowed.has(s)).join(' ');
  }
}

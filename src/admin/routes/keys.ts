// Token signing keys: list, and rotate. A rotation signs with new keys at once and keeps the
// old ones published (JWKS) until the tokens they signed have expired; every instance picks the
// change up through Redis pub/sub or its periodic reload, this one immediately.
import { z } from 'zod';
import { listSigningKeys, rotateSigningKeys } from '../../oidc/keys.ts';
import { defineRoute, type AdminRoute } from '../define.ts';

const TAG = 'Signing keys';

const keySchema = z
  .object({
    kid: z.string(),
    alg: z.string().meta({ example: 'ES256' }),
    status: z.enum(['active', 'retired']),
    created_at: z.iso.datetime(),
    retired_at: z.iso.datetime().nullable(),
  })
  .meta({ id: 'SigningKey' });

export const keyRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/keys',
    operationId: 'listSigningKeys',
    summary: 'List signing keys',
    description: 'Active keys sign; retired keys are still published while tokens they signed may be in use. Private halves are never shown.',
    tag: TAG,
    scope: 'admin:keys:read',
    status: 200,
    responseDescription: 'Every signing key, active first',
    response: z.object({ items: z.array(keySchema) }),
    handler: async ({ deps }) => ({ items: await listSigningKeys(deps.services) }),
  }),
  defineRoute({
    method: 'post',
    path: '/keys/rotate',
    operationId: 'rotateSigningKeys',
    summary: 'Rotate signing keys',
    tag: TAG,
    scope: 'admin:keys:write',
    status: 200,
    responseDescription: 'The keys created and the ids of those retired',
    response: z.object({
      created: z.array(z.object({ kid: z.string(), alg: z.string() })),
      retired: z.array(z.string()),
    }),
    async handler({ admin, deps }) {
      const result = await rotateSigningKeys(deps.services, admin.auditMeta);
      // Without Redis the other instances notice on their timer; this one need not wait.
      await deps.host.reload();
      return result;
    },
  }),
];

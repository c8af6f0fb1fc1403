// The audit log: every security event and administrative change, newest first, filtered by
// account, client, type, outcome and time range.
import { z } from 'zod';
import { searchAuditEvents } from '../../domain/audit.ts';
import { defineRoute, type AdminRoute } from '../define.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../paging.ts';

const TAG = 'Audit';

const auditEventSchema = z
  .object({
    id: z.string().meta({ description: 'Increases with every event recorded' }),
    occurred_at: z.iso.datetime(),
    type: z.string().meta({ example: 'user.suspended' }),
    outcome: z.enum(['success', 'failure']),
    account_id: z.string().nullable().meta({ description: 'The account the event is about' }),
    client_id: z.string().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).meta({ description: 'Event-specific facts; changes made through this API carry `source` and `actor` ({type, id}: the user, client or API key that acted)' }),
  })
  .meta({ id: 'AuditEvent' });

const eventCursor = z.object({ b: z.string().regex(/^\d{1,19}$/) });

const filterQuery = {
  account_id: z.uuid().optional().meta({ description: 'Events about this account' }),
  client_id: z.string().min(1).max(128).optional().meta({ description: 'Events recorded for this client' }),
  type: z.string().min(1).max(200).optional().meta({ example: 'user.' }),
  outcome: z.enum(['success', 'failure']).optional(),
  from: z.iso.datetime({ offset: true }).optional().meta({ description: 'Events at or after this instant' }),
  to: z.iso.datetime({ offset: true }).optional().meta({ description: 'Events before this instant' }),
};

type FilterQuery = { account_id?: string; client_id?: string; type?: string; outcome?: 'success' | 'failure'; from?: string; to?: string };

function toFilter(query: FilterQuery) {
  return {
    accountId: query.account_id,
    clientId: query.client_id,
    type: query.type,
    outcome: query.outcome,
    from: query.from === undefined ? undefined : new Date(query.from),
    to: query.to === undefined ? undefined : new Date(query.to),
  };
}

// An export is read in pages of this size and answered in one body of at most EXPORT_MAX lines;
// a longer log continues from the cursor in the Link header.
const EXPORT_PAGE = 1000;
const EXPORT_MAX = 50_000;

export const auditRoutes: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/audit-events',
    operationId: 'listAuditEvents',
    summary: 'Search the audit log',
    description: 'Newest first. `type` is an exact event type, or a prefix ending in a dot (`user.` for every user event).',
    tag: TAG,
    scope: 'admin:audit:read',
    query: z.object({ ...filterQuery, ...pageQuery }),
    status: 200,
    responseDescription: 'One page of events',
    response: pageOf(auditEventSchema),
    async handler({ query, deps }) {
      const position = decodeCursor(query.cursor, eventCursor);
      const { events, nextBefore } = await searchAuditEvents(deps.services.knex, toFilter(query), { beforeId: position?.b, limit: query.limit });
      return { items: events, next_cursor: nextBefore === undefined ? null : encodeCursor({ b: nextBefore }) };
    },
  }),
  defineRoute({
    method: 'get',
    path: '/audit-events/export',
    operationId: 'exportAuditEvents',
    summary: 'Export the audit log as JSON lines',
    description: `The same filters as the search, newest first, one event (the AuditEvent object) per line (\`application/x-ndjson\`). At most ${EXPORT_MAX} events per response; when more match, a \`Link: <...>; rel="next"\` header gives the URL of the continuation.`,
    tag: TAG,
    scope: 'admin:audit:read',
    query: z.object({ ...filterQuery, cursor: z.string().max(200).optional().meta({ description: 'From the Link header of the previous response' }) }),
    status: 200,
    responseDescription: 'Matching events, one JSON object per line',
    response: z.string().meta({ description: 'Newline-delimited JSON: one AuditEvent per line' }),
    mediaType: 'application/x-ndjson',
    async handler({ query, deps, ctx }) {
      let before = decodeCursor(query.cursor, eventCursor)?.b;
      const lines: string[] = [];
      while (lines.length < EXPORT_MAX) {
        const { events, nextBefore } = await searchAuditEvents(deps.services.knex, toFilter(query), { beforeId: before, limit: Math.min(EXPORT_PAGE, EXPORT_MAX - lines.length) });
        for (const event of events) lines.push(JSON.stringify(auditEventSchema.parse(event)));
        before = nextBefore;
        if (before === undefined) break;
      }
      if (before !== undefined) {
        const next = new URL(ctx.href);
        next.searchParams.set('cursor', encodeCursor({ b: before }));
        ctx.set('link', `<${next.pathname}${next.search}>; rel="next"`);
      }
      ctx.set('content-disposition', 'attachment; filename="gatehouse-audit.jsonl"');
      return lines.length ? `${lines.join('\n')}\n` : '';
    },
  }),
];

// Cursor paging for admin API listings: `limit` (1-100, default 50) and an opaque `cursor`
// copied from the previous page's `next_cursor`. The cursor is the base64url JSON of the last
// item's sort key; callers must not build or edit one, so a cursor that does not decode to what
// the listing expects is a 400.
import { z } from 'zod';
import { ProblemError } from './problem.ts';

export const MAX_LIMIT = 100;
export const DEFAULT_LIMIT = 50;
const MAX_CURSOR_LENGTH = 512;

export const pageQuery = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_LIMIT)
    .default(DEFAULT_LIMIT)
    .meta({ description: `How many items to return (at most ${MAX_LIMIT})`, example: 20 }),
  cursor: z
    .string()
    .max(MAX_CURSOR_LENGTH)
    .optional()
    .meta({ description: 'The next_cursor of the previous page; omit for the first page' }),
};

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` to get the next page; null on the last page' }),
  });
}

export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

/** Decodes a cursor into the position `schema` describes; undefined when none was given. */
export function decodeCursor<T>(cursor: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  const parsed = schema.safeParse(decoded);
  if (!parsed.success) {
    throw new ProblemError(400, 'invalid_request', 'The cursor is not one this listing returned.', { extra: { issues: [{ in: 'query', field: 'cursor', message: 'not a cursor of this listing' }] } });
  }
  return parsed.data;
}

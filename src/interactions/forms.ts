// Small helpers shared by the hosted forms: reading the parsed form body, the CSRF check, and
// turning a field-level AppError into messages next to the field.
import type { Context } from 'koa';
import { AppError } from '../errors.ts';
import { verifyCsrf } from '../security/csrf.ts';

export type FormBody = Record<string, unknown>;

export function formBody(ctx: Context): FormBody {
  const body = (ctx.request as { body?: unknown }).body;
  return body && typeof body === 'object' ? (body as FormBody) : {};
}

/** The CSRF-checked form body. */
export function checkedForm(ctx: Context): FormBody {
  const body = formBody(ctx);
  verifyCsrf(ctx, body._csrf);
  return body;
}

export function text(body: FormBody, field: string, max = 1024): string {
  const value = body[field];
  return typeof value === 'string' ? value.slice(0, max) : '';
}

/**
 * A validation failure meant for one field becomes `{ errors: { field: message } }`; other
 * expected failures become a page-level message; anything else is rethrown.
 */
export function formErrors(err: unknown): { errors: Record<string, string>; error: string | undefined; status: number } {
  if (!(err instanceof AppError) || err.status >= 500) throw err;
  const field = typeof err.details?.field === 'string' ? err.details.field : undefined;
  return field ? { errors: { [field]: err.message }, error: undefined, status: err.status } : { errors: {}, error: err.message, status: err.status };
}

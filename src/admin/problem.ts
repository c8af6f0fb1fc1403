// Errors of the admin API as RFC 9457 problem details (application/problem+json). Every failure
// answered under /admin/api/v1 goes through here, so callers see one shape: `type`, `title`,
// `status`, `detail`, and `error`, a stable machine-readable code. Nothing internal (stack
// traces, SQL, library messages) reaches a caller: unexpected errors become a generic 500.
import { STATUS_CODES } from 'node:http';
import type Koa from 'koa';
import { z } from 'zod';
import { isAppError } from '../errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** One invalid input value, as listed in a validation problem. */
export interface InputIssue {
  /** Where the value was: the path, the query string or the JSON body. */
  in: 'path' | 'query' | 'body';
  /** Dotted path to the value inside its location, e.g. "redirect_uris.0". */
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  error: string;
  /** Present on validation problems. */
  issues?: InputIssue[];
  /** Present on insufficient_scope problems. */
  required_scope?: string;
}

export const inputIssueSchema = z.object({
  in: z.enum(['path', 'query', 'body']),
  field: z.string(),
  message: z.string(),
});

export const problemSchema = z
  .object({
    type: z.string().meta({ description: 'URI of the problem type; it leads to this reference' }),
    title: z.string().meta({ description: 'The HTTP status phrase' }),
    status: z.number().int(),
    detail: z.string().meta({ description: 'What went wrong, for people' }),
    error: z.string().meta({ description: 'A stable code, for programs', example: 'invalid_request' }),
    issues: z.array(inputIssueSchema).optional().meta({ description: 'Each invalid input value (validation problems)' }),
    required_scope: z.string().optional().meta({ description: 'The scope the operation needs (insufficient_scope)' }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

/** A failure with everything a problem needs; thrown by the admin API's own layers. */
export class ProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly extra: Pick<Problem, 'issues' | 'required_scope'>;
  /** Extra response headers, e.g. WWW-Authenticate. */
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, detail: string, options: { extra?: Pick<Problem, 'issues' | 'required_scope'>; headers?: Record<string, string> } = {}) {
    super(detail);
    this.name = 'ProblemError';
    this.status = status;
    this.code = code;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }
}

/** Where problem types are described: an anchor per code on the reference page. */
export function problemType(docsUrl: string, code: string): string {
  return `${docsUrl}#problem-${code}`;
}

function build(docsUrl: string, status: number, code: string, detail: string, extra: Pick<Problem, 'issues' | 'required_scope'> = {}): Problem {
  return { type: problemType(docsUrl, code), title: STATUS_CODES[status] ?? 'Error', status, detail, error: code, ...extra };
}

/**
 * Maps a thrown value to a problem. Expected failures (ProblemError, AppError, client errors
 * from Koa and its body parser) keep their message; anything else is reported as a 500 and
 * `unexpected` is set so the caller logs it.
 */
export function toProblem(err: unknown, docsUrl: string): { problem: Problem; headers: Record<string, string>; unexpected: boolean } {
  if (err instanceof ProblemError) return { problem: build(docsUrl, err.status, err.code, err.message, err.extra), headers: err.headers, unexpected: false };
  if (isAppError(err)) {
    const field = typeof err.details?.field === 'string' ? err.details.field : undefined;
    const extra = err.status === 400 && field ? { issues: [{ in: 'body' as const, field, message: err.message }] } : {};
    return { problem: build(docsUrl, err.status, err.code, err.message, extra), headers: {}, unexpected: false };
  }
  // http-errors thrown by Koa and @koa/bodyparser (bad JSON, body too large, wrong type) mark
  // the ones whose message may be shown with `expose`.
  const httpError = err as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500 && httpError.expose === true) {
    const code = httpError.status === 413 ? 'payload_too_large' : httpError.status === 415 ? 'unsupported_media_type' : 'invalid_request';
    return { problem: build(docsUrl, httpError.status, code, String(httpError.message)), headers: {}, unexpected: false };
  }
  return { problem: build(docsUrl, 500, 'server_error', 'Something went wrong on our side. The request id in the x-request-id header helps find out what.'), headers: {}, unexpected: true };
}

/** Writes a problem response. */
export function sendProblem(ctx: Koa.Context, problem: Problem, headers: Record<string, string> = {}): void {
  ctx.status = problem.status;
  for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  ctx.body = problem;
  // After the body: Koa sets application/json for an object body.
  ctx.type = PROBLEM_CONTENT_TYPE;
}

/** The issues of a failed zod parse, named by where each value was. */
export function issuesOf(error: z.ZodError, location: InputIssue['in']): InputIssue[] {
  return error.issues.map((issue) => ({ in: location, field: issue.path.map(String).join('.'), message: issue.message }));
}

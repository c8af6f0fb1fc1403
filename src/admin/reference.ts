// The browsable reference of the admin API (GET /admin/api/v1/docs): the OpenAPI document turned
// into plain rows that views/admin/reference.ejs prints. Rendered on the server, with no script,
// so the page works under the CSP that forbids inline and third-party scripts.
import type { OpenApiDocument } from './openapi.ts';

type JsonSchema = Record<string, unknown>;

export interface TypeView {
  text: string;
  /** Anchor of a named schema the type refers to. */
  ref?: string;
}

export interface FieldView {
  name: string;
  type: TypeView;
  required: boolean;
  description: string;
}

export interface SchemaView {
  /** The fields of an object schema; empty for other schemas. */
  fields: FieldView[];
  /** The schema's type when it is not an object with fields. */
  type: TypeView;
}

export interface ParameterView {
  name: string;
  in: string;
  required: boolean;
  type: TypeView;
  description: string;
}

export interface ResponseView {
  status: string;
  description: string;
  contentType: string | undefined;
  schema: SchemaView | undefined;
}

/** Text with `code` spans, as alternating pieces, so the view can print them without HTML. */
export type RichText = { code: boolean; text: string }[];

export interface OperationView {
  anchor: string;
  method: string;
  path: string;
  summary: string;
  /** Paragraphs; the scope sentence generated for other viewers is left out (shown apart). */
  description: RichText[];
  scope: string;
  parameters: ParameterView[];
  body: SchemaView | undefined;
  responses: ResponseView[];
}

export interface ReferencePage {
  title: string;
  version: string;
  description: RichText;
  baseUrl: string;
  tokenUrl: string;
  scopes: { name: string; description: string }[];
  tags: { name: string; anchor: string; operations: OperationView[] }[];
  schemas: { name: string; anchor: string; schema: SchemaView }[];
  problemCodes: { code: string; status: number; meaning: string }[];
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

// The codes this API itself answers with; operations add domain codes (email_taken,
// role_not_found ...) whose detail explains them.
const PROBLEM_CODES = [
  { code: 'invalid_request', status: 400, meaning: 'A path, query or body value is not acceptable; `issues` lists each one.' },
  { code: 'missing_token', status: 401, meaning: 'No credential was sent (or not with the Bearer scheme).' },
  { code: 'invalid_token', status: 401, meaning: 'The credential is malformed, expired, revoked, signed by someone else or meant for another API.' },
  { code: 'insufficient_scope', status: 403, meaning: 'The credential lacks the scope named in `required_scope`.' },
  { code: 'not_found', status: 404, meaning: 'No operation exists at this path; other 404 codes name what was not found.' },
  { code: 'method_not_allowed', status: 405, meaning: 'The path exists but not with this method; `Allow` lists the methods.' },
  { code: 'unsupported_media_type', status: 415, meaning: 'A request body must be application/json.' },
  { code: 'payload_too_large', status: 413, meaning: 'The request body is larger than 64 KiB.' },
  { code: 'server_error', status: 500, meaning: 'Something failed on the server; the x-request-id header identifies the request in the logs.' },
];

function rich(text: string): RichText {
  return text.split('`').map((piece, index) => ({ code: index % 2 === 1, text: piece })).filter((piece) => piece.text !== '');
}

function paragraphs(text: string): RichText[] {
  return text.split('\n\n').filter((p) => p.trim() !== '' && !p.startsWith('Requires the `')).map(rich);
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function asSchema(value: unknown): JsonSchema {
  return typeof value === 'object' && value !== null ? (value as JsonSchema) : {};
}

function schemaAnchor(name: string): string {
  return `schema-${name}`;
}

function describeType(value: unknown): TypeView {
  const schema = asSchema(value);
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.split('/').at(-1) ?? schema.$ref;
    return { text: name, ref: schemaAnchor(name) };
  }
  const variants = (schema.anyOf ?? schema.oneOf) as unknown[] | undefined;
  if (Array.isArray(variants)) {
    const parts = variants.map(describeType);
    return { text: parts.map((p) => p.text).join(' | '), ref: parts.find((p) => p.ref)?.ref };
  }
  if (Array.isArray(schema.enum)) return { text: schema.enum.map((v) => JSON.stringify(v)).join(' | ') };
  if (schema.const !== undefined) return { text: JSON.stringify(schema.const) };
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : typeof schema.type === 'string' ? [schema.type] : [];
  if (types.includes('array')) {
    const item = describeType(schema.items);
    return { text: `array of ${item.text}${types.includes('null') ? ' | null' : ''}`, ref: item.ref };
  }
  const text = types.join(' | ') || 'any';
  return { text: typeof schema.format === 'string' ? `${text} (${schema.format})` : text };
}

function describeField(schema: JsonSchema): string {
  const notes: string[] = [];
  if (typeof schema.description === 'string') notes.push(sentence(schema.description));
  if (schema.default !== undefined) notes.push(`Default: ${JSON.stringify(schema.default)}.`);
  if (typeof schema.minimum === 'number' || typeof schema.maximum === 'number') notes.push(`Range: ${schema.minimum ?? '…'} to ${schema.maximum ?? '…'}.`);
  if (typeof schema.maxLength === 'number') notes.push(`At most ${schema.maxLength} characters.`);
  if (schema.example !== undefined) notes.push(`Example: ${JSON.stringify(schema.example)}.`);
  return notes.join(' ');
}

function describeSchema(value: unknown): SchemaView {
  const schema = asSchema(value);
  const properties = asSchema(schema.properties);
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  const fields = Object.entries(properties).map(([name, field]) => ({ name, type: describeType(field), required: required.has(name), description: describeField(asSchema(field)) }));
  return { fields, type: describeType(schema) };
}

export function referencePage(document: OpenApiDocument): ReferencePage {
  const tagOrder = (document.tags ?? []).map((t) => t.name);
  const byTag = new Map<string, OperationView[]>(tagOrder.map((name) => [name, []]));
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const method of METHODS) {
      const op = item?.[method];
      if (!op) continue;
      const record = op as unknown as Record<string, unknown>;
      const parameters = (op.parameters ?? []).map((p) => {
        const parameter = asSchema(p);
        return {
          name: String(parameter.name),
          in: String(parameter.in),
          required: parameter.required === true,
          type: describeType(parameter.schema),
          description: describeField({ ...asSchema(parameter.schema), ...(typeof parameter.description === 'string' ? { description: parameter.description } : {}) }),
        };
      });
      const bodyContent = asSchema(asSchema(asSchema(op.requestBody).content)['application/json']);
      const responses = Object.entries(op.responses ?? {}).map(([status, response]) => {
        const content = asSchema(asSchema(response).content);
        const contentType = Object.keys(content)[0];
        const schema = contentType ? asSchema(content[contentType]).schema : undefined;
        return { status, description: String(asSchema(response).description ?? ''), contentType, schema: schema ? describeSchema(schema) : undefined };
      });
      const tag = op.tags?.[0] ?? 'Other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)!.push({
        anchor: `op-${op.operationId ?? `${method}-${path}`}`,
        method: method.toUpperCase(),
        path,
        summary: op.summary ?? '',
        description: paragraphs(op.description ?? ''),
        scope: String(record['x-required-scope'] ?? ''),
        parameters,
        body: bodyContent.schema ? describeSchema(bodyContent.schema) : undefined,
        responses,
      });
    }
  }
  const oauth = asSchema(asSchema(document.components?.securitySchemes).oauth2);
  const clientCredentials = asSchema(asSchema(oauth.flows).clientCredentials);
  return {
    title: document.info.title,
    version: document.info.version,
    description: rich(document.info.description ?? ''),
    baseUrl: document.servers?.[0]?.url ?? '',
    tokenUrl: String(clientCredentials.tokenUrl ?? ''),
    scopes: Object.entries(asSchema(clientCredentials.scopes)).map(([name, description]) => ({ name, description: String(description) })),
    tags: [...byTag].map(([name, operations]) => ({ name, anchor: `tag-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`, operations })),
    schemas: Object.entries(document.components?.schemas ?? {}).map(([name, schema]) => ({ name, anchor: schemaAnchor(name), schema: describeSchema(schema) })),
    problemCodes: PROBLEM_CODES,
  };
}

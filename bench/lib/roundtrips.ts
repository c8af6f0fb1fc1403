// Storage round trips per request, counted exactly: a second Gatehouse instance on the same
// database and Redis talks to PostgreSQL through a small proxy that counts queries (simple
// queries and extended-protocol Syncs, one per round trip), while Redis MONITOR counts the
// commands sent to the benchmark's Redis database. Requests are made one at a time.
import net from 'node:net';
import { Redis } from 'ioredis';
import { freePort } from '../../test/helpers/server.ts';
import { authorizeOverHttp, tokenRequest } from '../../test/helpers/http-login.ts';
import { startGatehouse } from './servers.ts';
import { ccRequest, discoveryRequest, FIXTURES, introspectionRequest, jwksRequest } from './scenarios.ts';
import type { WrkRequest } from './wrk.ts';

export interface RoundTrips {
  operation: string;
  samples: number;
  /** Queries sent to PostgreSQL (each a round trip). */
  postgresPerOp: number;
  /** Commands sent to Redis by the client (a pipeline or MULTI counts each command). */
  redisPerOp: number;
  /** Commands Redis ran inside Lua scripts on top of those. */
  redisInScriptsPerOp: number;
  /** The statements sent to PostgreSQL (whitespace collapsed, cut to 120 characters), per operation. */
  postgresStatements: Record<string, number>;
  /** The commands sent to Redis by the client, as command and key prefix ("GET oidc:Session"), per operation. */
  redisCommands: Record<string, number>;
}

/** A Redis command as counted: its name and its key's prefix up to the second colon (ids left out). */
function commandShape(args: string[]): string {
  const name = args[0] ?? '?';
  // A script's first key follows its digest and key count.
  const key = /^eval(sha)?$/i.test(name) ? (Number(args[2]) > 0 ? args[3] : undefined) : args[1];
  if (key === undefined) return name.toUpperCase();
  const prefix = key.split(':').slice(0, 2).join(':');
  return `${name.toUpperCase()} ${prefix}`;
}

interface CountingProxy {
  url: string;
  queries(): number;
  /** Statements seen since the last call, with how often each was sent. */
  takeStatements(): Map<string, number>;
  close(): Promise<void>;
}

/** A TCP proxy in front of PostgreSQL that counts round trips from the client side. */
async function countingProxy(databaseUrl: string): Promise<CountingProxy> {
  const upstream = new URL(databaseUrl);
  let queries = 0;
  let statements = new Map<string, number>();
  const note = (sql: string) => {
    const key = sql.replace(/\s+/g, ' ').trim().slice(0, 120);
    statements.set(key, (statements.get(key) ?? 0) + 1);
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const db = net.connect(Number(upstream.port || 5432), upstream.hostname);
    sockets.add(client);
    sockets.add(db);
    let buffer = Buffer.alloc(0);
    let untyped = true; // the startup message (and an SSLRequest before it) has no type byte
    client.on('data', (chunk: Buffer) => {
      db.write(chunk);
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (untyped) {
          if (buffer.length < 8) break;
          const len = buffer.readInt32BE(0);
          if (buffer.length < len) break;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(len);
          if (code !== 80877103) untyped = false; // 80877103: SSLRequest, followed by the startup message
          continue;
        }
        if (buffer.length < 5) break;
        const type = String.fromCharCode(buffer[0]!);
        const len = buffer.readInt32BE(1);
        if (buffer.length < len + 1) break;
        if (type === 'Q' || type === 'S') queries += 1;
        // Query text: 'Q' carries it directly; 'P' (Parse) after the statement's name.
        if (type === 'Q') note(buffer.toString('utf8', 5, buffer.indexOf(0, 5)));
        if (type === 'P') {
          const nameEnd = buffer.indexOf(0, 5);
          note(buffer.toString('utf8', nameEnd + 1, buffer.indexOf(0, nameEnd + 1)));
        }
        buffer = buffer.subarray(len + 1);
      }
    });
    db.on('data', (chunk: Buffer) => client.write(chunk));
    const close = () => {
      client.destroy();
      db.destroy();
      sockets.delete(client);
      sockets.delete(db);
    };
    client.on('close', close);
    db.on('close', close);
    client.on('error', close);
    db.on('error', close);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const proxied = new URL(databaseUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);
  return {
    url: proxied.toString(),
    queries: () => queries,
    takeStatements: () => {
      const taken = statements;
      statements = new Map();
      return taken;
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function probeRoundTrips(opts: { serverEnv: Record<string, string>; databaseUrl: string; redisUrl: string; logDir: string }): Promise<RoundTrips[]> {
  const proxy = await countingProxy(opts.databaseUrl);
  const dbIndex = new URL(opts.redisUrl).pathname.replace('/', '') || '0';
  const monitorClient = new Redis(opts.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let redisCommands = 0;
  let redisScriptCommands = 0;
  let commandShapes = new Map<string, number>();
  const secrets = { ENCRYPTION_KEYS: opts.serverEnv.ENCRYPTION_KEYS!, COOKIE_KEYS: opts.serverEnv.COOKIE_KEYS! };
  const server = await startGatehouse({
    label: 'round-trip probe',
    env: { DATABASE_URL: proxy.url, REDIS_URL: opts.redisUrl, ...secrets },
    workers: 0,
    logDir: opts.logDir,
    logLevel: 'warn',
  });
  const monitor = await monitorClient.monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string, database: string) => {
    if (database !== dbIndex) return;
    if (source === 'lua') {
      redisScriptCommands += 1;
      return;
    }
    redisCommands += 1;
    const shape = commandShape(args);
    commandShapes.set(shape, (commandShapes.get(shape) ?? 0) + 1);
  });
  const results: RoundTrips[] = [];
  const measure = async (operation: string, samples: number, once: () => Promise<void>) => {
    await once(); // anything loaded on first use is not counted
    await pause(300);
    const pg0 = proxy.queries();
    proxy.takeStatements();
    const redis0 = redisCommands;
    const script0 = redisScriptCommands;
    commandShapes = new Map();
    for (let i = 0; i < samples; i++) await once();
    await pause(300);
    const per = (n: number) => Math.round((n / samples) * 10) / 10;
    const postgresStatements: Record<string, number> = {};
    for (const [sql, n] of [...proxy.takeStatements()].sort((a, b) => b[1] - a[1])) postgresStatements[sql] = per(n);
    const redisCommandShapes: Record<string, number> = {};
    for (const [shape, n] of [...commandShapes].sort((a, b) => b[1] - a[1])) redisCommandShapes[shape] = per(n);
    results.push({
      operation,
      samples,
      postgresPerOp: per(proxy.queries() - pg0),
      redisPerOp: per(redisCommands - redis0),
      redisInScriptsPerOp: per(redisScriptCommands - script0),
      postgresStatements,
      redisCommands: redisCommandShapes,
    });
  };
  const send = (req: WrkRequest) => async () => {
    const res = await fetch(`${server.url}${req.path}`, { method: req.method, headers: req.headers, body: req.body });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${req.method} ${req.path} answered ${res.status}`);
  };
  const web = FIXTURES.web;
  const signIn = async (scope: string, prompt?: string) => {
    const flow = await authorizeOverHttp({
      issuer: server.issuer, clientId: web.clientId, redirectUri: web.redirectUri, email: FIXTURES.user.email, password: FIXTURES.user.password, scope,
      ...(prompt ? { prompt } : {}),
    });
    const res = await tokenRequest(`${server.issuer}/token`, { clientId: web.clientId, clientSecret: web.clientSecret }, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: web.redirectUri, code_verifier: flow.codeVerifier,
    });
    if (!res.body.access_token) throw new Error(`sign-in failed: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  try {
    await measure('discovery', 20, send(discoveryRequest()));
    await measure('jwks', 20, send(jwksRequest()));
    await measure('cc-opaque', 50, send(ccRequest(FIXTURES.m2m)));
    await measure('cc-jwt', 50, send(ccRequest(FIXTURES.m2m, FIXTURES.resource)));
    await measure('introspection', 50, send(await introspectionRequest(server, FIXTURES.m2m)));
    let refreshToken = (await signIn('openid email offline_access', 'consent')).refresh_token!;
    await measure('refresh', 20, async () => {
      const res = await tokenRequest(`${server.issuer}/token`, { clientId: web.clientId, clientSecret: web.clientSecret }, { grant_type: 'refresh_token', refresh_token: refreshToken });
      if (!res.body.refresh_token) throw new Error(`refresh failed: ${JSON.stringify(res.body)}`);
      refreshToken = res.body.refresh_token;
    });
    await measure('signin', 5, async () => { await signIn('openid profile email'); });
  } finally {
    monitor.disconnect();
    await server.stop();
    await proxy.close();
  }
  return results;
}

// oidc-provider storage on Redis (ioredis).
//
// Layout, all under one prefix:
//   <prefix><Model>:<id>       the payload as JSON, with the model's TTL
//   <prefix>grant:<grantId>    set of payload keys carrying that grantId (any model), living at
//                              least as long as its longest-lived member
//   <prefix>uid:<uid>          payload key of the record with that uid (same TTL as the record)
//   <prefix>userCode:<code>    payload key of the record with that userCode (same TTL)
//
// Every write is a Lua script, so each operation is one round trip and atomic: consume cannot
// race, and upsert/destroy keep the indexes consistent with the payloads they point at. The
// scripts touch keys they only learn at run time (index targets, a previous payload's old
// indexes), which standalone Redis and Sentinel allow but Redis Cluster does not; this adapter
// therefore takes a single-node client.
import type { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from 'oidc-provider';

// Shared Lua: drop the uid/userCode index entries of a decoded payload when they still point at
// `key` (a newer record may have claimed the same value since).
const UNINDEX_SECONDARY = `
local function unindex_secondary(prefix, key, p, keep_uid, keep_user_code)
  if type(p.uid) == 'string' then
    local k = prefix .. 'uid:' .. p.uid
    if k ~= keep_uid and redis.call('GET', k) == key then redis.call('DEL', k) end
  end
  if type(p.userCode) == 'string' then
    local k = prefix .. 'userCode:' .. p.userCode
    if k ~= keep_user_code and redis.call('GET', k) == key then redis.call('DEL', k) end
  end
end
`;

const IS_CONSUMED = `
local function is_consumed(p)
  return p.consumed ~= nil and p.consumed ~= cjson.null and p.consumed ~= false
end
`;

// JSON is only ever decoded in Lua, never re-encoded: cjson turns empty arrays into objects and
// rounds numbers, so the stored text is the client's own JSON.stringify output, at most with a
// "consumed" member appended (JSON.parse keeps the last of duplicate members).
const APPEND_CONSUMED = `
local function with_consumed(json, value)
  local body = string.sub(json, 1, -2)
  if body ~= '{' then body = body .. ',' end
  return body .. '"consumed":' .. value .. '}'
end
`;

/** KEYS: payload, grant index, uid index, userCode index ('' when absent). ARGV: JSON, TTL seconds (0 = none), prefix. */
const UPSERT = `${UNINDEX_SECONDARY}${IS_CONSUMED}${APPEND_CONSUMED}
local key, grant_key, uid_key, code_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local json, ttl, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local previous = redis.call('GET', key)
if previous then
  local old = cjson.decode(previous)
  unindex_secondary(prefix, key, old, uid_key, code_key)
  if type(old.grantId) == 'string' and prefix .. 'grant:' .. old.grantId ~= grant_key then
    redis.call('SREM', prefix .. 'grant:' .. old.grantId, key)
  end
  -- Consumption is a one-way latch: re-saving a stale, unconsumed copy must not revive it.
  if is_consumed(old) and not is_consumed(cjson.decode(json)) then
    json = with_consumed(json, cjson.encode(old.consumed))
  end
end
local function set(k, v)
  if ttl > 0 then redis.call('SET', k, v, 'EX', ttl) else redis.call('SET', k, v) end
end
set(key, json)
if uid_key ~= '' then set(uid_key, key) end
if code_key ~= '' then set(code_key, key) end
if grant_key ~= '' then
  local index_ttl = redis.call('TTL', grant_key)
  redis.call('SADD', grant_key, key)
  if ttl == 0 then
    redis.call('PERSIST', grant_key)
  elseif index_ttl == -2 or (index_ttl >= 0 and index_ttl < ttl) then
    -- -2: the index is new; -1 (left alone): it already holds a member that never expires.
    redis.call('EXPIRE', grant_key, ttl)
  end
end
return 1
`;

/** KEYS: payload. Returns 1 when this call consumed it, 0 when missing or already consumed. */
const CONSUME = `${IS_CONSUMED}${APPEND_CONSUMED}
local json = redis.call('GET', KEYS[1])
if not json or is_consumed(cjson.decode(json)) then return 0 end
local now = redis.call('TIME')
redis.call('SET', KEYS[1], with_consumed(json, now[1]), 'KEEPTTL')
return 1
`;

/** KEYS: payload. ARGV: prefix. */
const DESTROY = `${UNINDEX_SECONDARY}
local json = redis.call('GET', KEYS[1])
if not json then return 0 end
redis.call('DEL', KEYS[1])
local p = cjson.decode(json)
unindex_secondary(ARGV[1], KEYS[1], p, '', '')
if type(p.grantId) == 'string' then redis.call('SREM', ARGV[1] .. 'grant:' .. p.grantId, KEYS[1]) end
return 1
`;

/** KEYS: grant index. ARGV: prefix. Returns how many payloads were deleted. */
const REVOKE = `${UNINDEX_SECONDARY}
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local json = redis.call('GET', key)
  if json then
    redis.call('DEL', key)
    unindex_secondary(ARGV[1], key, cjson.decode(json), '', '')
    deleted = deleted + 1
  end
end
redis.call('DEL', KEYS[1])
return deleted
`;

/** KEYS: uid or userCode index. Returns {target key, its JSON}, or nil when either is gone. */
const FIND_INDEXED = `
local key = redis.call('GET', KEYS[1])
if not key then return false end
local json = redis.call('GET', key)
if not json then return false end
return {key, json}
`;

interface ScriptCommands {
  gatehouseOidcUpsert(key: string, grantKey: string, uidKey: string, codeKey: string, json: string, ttl: number, prefix: string): Promise<number>;
  gatehouseOidcConsume(key: string): Promise<number>;
  gatehouseOidcDestroy(key: string, prefix: string): Promise<number>;
  gatehouseOidcRevoke(grantKey: string, prefix: string): Promise<number>;
  gatehouseOidcFindIndexed(indexKey: string): Promise<[key: string, json: string] | null>;
}

type ScriptedRedis = Redis & ScriptCommands;

const scripted = new WeakSet<Redis>();

// defineCommand sends EVALSHA and falls back to EVAL after a SCRIPT FLUSH or failover.
function withScripts(redis: Redis): ScriptedRedis {
  if (!scripted.has(redis)) {
    redis.defineCommand('gatehouseOidcUpsert', { numberOfKeys: 4, lua: UPSERT });
    redis.defineCommand('gatehouseOidcConsume', { numberOfKeys: 1, lua: CONSUME });
    redis.defineCommand('gatehouseOidcDestroy', { numberOfKeys: 1, lua: DESTROY });
    redis.defineCommand('gatehouseOidcRevoke', { numberOfKeys: 1, lua: REVOKE });
    redis.defineCommand('gatehouseOidcFindIndexed', { numberOfKeys: 1, lua: FIND_INDEXED });
    scripted.add(redis);
  }
  // defineCommand adds the methods at run time; ioredis cannot type them, hence the cast.
  return redis as ScriptedRedis;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

export class RedisAdapter implements Adapter {
  readonly model: string;
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;

  constructor(model: string, redis: Redis, prefix = 'gatehouse:') {
    // Index entries hold full key names, which a client-side keyPrefix would not apply to.
    if (redis.options.keyPrefix) throw new Error('RedisAdapter: use its prefix argument, not the ioredis keyPrefix option');
    this.model = model;
    this.#redis = withScripts(redis);
    this.#prefix = prefix;
  }

  #key(id: string): string {
    return `${this.#prefix}${this.model}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const p = this.#prefix;
    // EX takes whole seconds; rounding up never ends a record early.
    const ttl = expiresIn && expiresIn > 0 ? Math.ceil(expiresIn) : 0;
    await this.#redis.gatehouseOidcUpsert(
      this.#key(id),
      nonEmpty(payload.grantId) ? `${p}grant:${payload.grantId}` : '',
      nonEmpty(payload.uid) ? `${p}uid:${payload.uid}` : '',
      nonEmpty(payload.userCode) ? `${p}userCode:${payload.userCode}` : '',
      JSON.stringify(payload),
      ttl,
      p,
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const json = await this.#redis.get(this.#key(id));
    return json === null ? undefined : (JSON.parse(json) as AdapterPayload);
  }

  /** One round trip from index to payload; the target must be this model's and still carry the value. */
  async #findIndexed(index: 'uid' | 'userCode', value: string): Promise<AdapterPayload | undefined> {
    const hit = await this.#redis.gatehouseOidcFindIndexed(`${this.#prefix}${index}:${value}`);
    if (!hit || !hit[0].startsWith(`${this.#prefix}${this.model}:`)) return undefined;
    const payload = JSON.parse(hit[1]) as AdapterPayload;
    return payload[index] === value ? payload : undefined;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findIndexed('uid', uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findIndexed('userCode', userCode);
  }

  async consume(id: string): Promise<void> {
    await this.consumeOnce(id);
  }

  /** Marks the payload consumed, keeping its TTL; true only for the one call that actually did so. */
  async consumeOnce(id: string): Promise<boolean> {
    return (await this.#redis.gatehouseOidcConsume(this.#key(id))) === 1;
  }

  async destroy(id: string): Promise<void> {
    await this.#redis.gatehouseOidcDestroy(this.#key(id), this.#prefix);
  }

  /** Deletes every model's payloads for the grant, whichever model's adapter is asked. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#redis.gatehouseOidcRevoke(`${this.#prefix}grant:${grantId}`, this.#prefix);
  }
}

/** The `adapter` option for oidc-provider; a plain function because the provider calls it without `new`. */
export function redisAdapterFactory(redis: Redis, prefix = 'gatehouse:'): (name: string) => RedisAdapter {
  return (name: string) => new RedisAdapter(name, redis, prefix);
}

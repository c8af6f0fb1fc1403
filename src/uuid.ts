// Ids of accounts, keys, rules and the like are PostgreSQL uuids; a value that is not one is
// answered as "not found" before it reaches a query (where it would be a cast error).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

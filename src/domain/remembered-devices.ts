// Devices that may skip the second step for a while. The browser keeps a random token; only its
// hash is stored, with the browser and address it came from, so the owner can review and revoke.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { forgetRememberedDevices, insertRememberedDevice, listRememberedDevices, useRememberedDevice, type RememberedDeviceRow } from '../db/remembered-devices.ts';
import { hashToken } from './one-time-tokens.ts';

/** A new device token for the account (valid `days`); the caller stores it in the browser. */
export async function rememberNewDevice(knex: Knex, accountId: string, days: number, seen: { userAgent?: string; ip?: string }): Promise<string> {
  const token = crypto.randomBytes(32).toString('base64url');
  await insertRememberedDevice(knex, { accountId, tokenHash: hashToken(token), userAgent: seen.userAgent, ip: seen.ip, days });
  return token;
}

export async function deviceIsRemembered(knex: Knex, accountId: string, token: string): Promise<boolean> {
  return useRememberedDevice(knex, accountId, hashToken(token));
}

export function rememberedDevices(knex: Knex, accountId: string): Promise<RememberedDeviceRow[]> {
  return listRememberedDevices(knex, accountId);
}

export function forgetDevices(knex: Knex, accountId: string): Promise<number> {
  return forgetRememberedDevices(knex, accountId);
}

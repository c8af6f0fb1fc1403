// Secrets for development runs that configure none: generated once and kept in the database
// (under DATA_DIR on the embedded default), so restarts and every instance sharing a database
// agree on them. Production refuses to start without configured keys (config.ts), so these are
// never used there.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { SecretBox } from './encryption.ts';

export interface ResolvedSecrets {
  box: SecretBox;
  cookieKeys: string[];
  /** True when any secret came from the development store rather than configuration. */
  usingDevelopmentSecrets: boolean;
}

async function devSecret(knex: Knex, name: string, generate: () => string): Promise<string> {
  await knex('dev_secrets').insert({ name, value: generate() }).onConflict('name').ignore();
  const row = await knex('dev_secrets').where({ name }).first<{ value: string }>();
  return row.value;
}

export async function resolveSecrets(config: Config, knex: Knex): Promise<ResolvedSecrets> {
  let usingDevelopmentSecrets = false;
  let encryptionKeys = config.encryptionKeys;
  if (!encryptionKeys) {
    usingDevelopmentSecrets = true;
    const key = await devSecret(knex, 'encryption_key', () => crypto.randomBytes(32).toString('base64'));
    encryptionKeys = [{ kid: 'dev', key: Buffer.from(key, 'base64') }];
  }
  let cookieKeys = config.cookieKeys;
  if (!cookieKeys) {
    usingDevelopmentSecrets = true;
    cookieKeys = [await devSecret(knex, 'cookie_key', () => crypto.randomBytes(32).toString('base64url'))];
  }
  return { box: new SecretBox(encryptionKeys), cookieKeys, usingDevelopmentSecrets };
}

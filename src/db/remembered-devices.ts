import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface RememberedDeviceRow {
  id: string;
  account_id: string;
  token_hash: string;
  user_agent: string | null;
  ip: string | null;
  expires_at: Date;
  last_used_at: Date | null;
  created_at: Date;
}

export async function insertRememberedDevice(db: Db, row: { accountId: string; tokenHash: string; userAgent?: string; ip?: string; days: number }): Promise<void> {
  await db('remembered_devices').insert({
    account_id: row.accountId,
    token_hash: row.tokenHash,
    user_agent: row.userAgent?.slice(0, 512) ?? null,
    ip: row.ip ?? null,
    expires_at: db.raw("now() + (? * interval '1 day')", [row.days]),
  });
}

export async function useRememberedDevice(db: Db, accountId: string, tokenHash: string): Promise<boolean> {
  const rows = await db('remembered_devices')
    .where({ account_id: accountId, token_hash: tokenHash })
    .andWhere('expires_at', '>', db.fn.now())
    .update({ last_used_at: db.fn.now() })
    .returning<{ id: string }[]>('id');
  return rows.length === 1;
}

export async function listRememberedDevices(db: Db, accountId: string): Promise<RememberedDeviceRow[]> {
  return db<RememberedDeviceRow>('remembered_devices').where({ account_id: accountId }).andWhere('expires_at', '>', db.fn.now()).orderBy('created_at', 'desc');
}

export async function forgetRememberedDevices(db: Db, accountId: string, id?: string): Promise<number> {
  const q = db('remembered_devices').where({ account_id: accountId });
  if (id) q.andWhere({ id });
  return q.delete();
}

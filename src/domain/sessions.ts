// The sign-in sessions an account can see in /account and the CLI.
import type { Knex } from 'knex';
import { findSession, listActiveSessions, type AccountSessionRow } from '../db/account-sessions.ts';

export interface SessionView {
  id: string;
  createdAt: Date;
  lastActiveAt: Date;
  loginIp: string | null;
  lastIp: string | null;
  browser: string | null;
  os: string | null;
  deviceType: string | null;
  location: string | null;
  remember: boolean;
  methods: string[];
  clients: string[];
  current: boolean;
}

function view(row: AccountSessionRow, currentId: string | undefined): SessionView {
  return {
    id: row.id,
    createdAt: new Date(row.created_at),
    lastActiveAt: new Date(row.last_active_at),
    loginIp: row.login_ip,
    lastIp: row.last_ip,
    browser: row.browser,
    os: row.os,
    deviceType: row.device_type,
    location: row.location,
    remember: row.remember,
    methods: row.amr,
    clients: row.clients,
    current: row.id === currentId,
  };
}

/** Active sessions, the current one first, then by latest activity. */
export async function accountSessions(knex: Knex, accountId: string, currentId?: string): Promise<SessionView[]> {
  const rows = await listActiveSessions(knex, accountId);
  return rows.map((r) => view(r, currentId)).sort((a, b) => Number(b.current) - Number(a.current));
}

/** The account of an active (not revoked) session, for revoking it by id. */
export async function activeSessionAccount(knex: Knex, id: string): Promise<string | undefined> {
  const row = await findSession(knex, id);
  return row && !row.revoked_at ? row.account_id : undefined;
}

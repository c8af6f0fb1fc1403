// Ordered list of migrations. Listed explicitly (not scanned from disk) so the same list runs
// from the server, the CLI and tests whatever the working directory.
import type { Knex } from 'knex';
import * as core from './20261121000001_core.ts';
import * as accountLifecycle from './20261121000002_account_lifecycle.ts';
import * as mfa from './20261121000003_mfa.ts';
import * as sessions from './20261121000004_sessions.ts';
import * as tokenBindings from './20261121000005_token_bindings.ts';
import * as sessionLocation from './20261121000006_session_location.ts';
import * as authorization from './20261121000007_authorization.ts';
import * as auditAppendOnly from './20261121000008_audit_append_only.ts';
import * as privacy from './20261121000009_privacy.ts';
import * as federation from './20261121000010_federation.ts';
import * as guestAccounts from './20261121000011_guest_accounts.ts';

export interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: [name: string, migration: Migration][] = [
  ['20261121000001_core', core],
  ['20261121000002_account_lifecycle', accountLifecycle],
  ['20261121000003_mfa', mfa],
  ['20261121000004_sessions', sessions],
  ['20261121000005_token_bindings', tokenBindings],
  ['20261121000006_session_location', sessionLocation],
  ['20261121000007_authorization', authorization],
  ['20261121000008_audit_append_only', auditAppendOnly],
  ['20261121000009_privacy', privacy],
  ['20261121000010_federation', federation],
  ['20261121000011_guest_accounts', guestAccounts],
];

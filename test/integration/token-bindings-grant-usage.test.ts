// The storage side of refresh-token rotation and of "last used" in Connected apps, on the
// embedded PGlite database and on PostgreSQL (skipped, visibly, without TEST_DATABASE_URL):
// - recordRotation marks the presented token rotated and stores its successor's binding in one
//   statement, so either both are recorded or neither is;
// - grantUsage writes a grant's "last used" at most once a minute: within the minute an instance
//   does not ask the database at all, and the database refuses a write when any instance wrote
//   within the minute.
import crypto from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinding, insertBinding, recordRotation, type NewBinding, type Rotation } from '../../src/db/token-bindings.ts';
import { upsertGrantRecord } from '../../src/db/account-grants.ts';
import { grantUsage, LAST_USED_PRECISION_SECONDS } from '../../src/domain/connected-apps.ts';
import { TEST_DATABASE_URL } from '../helpers/postgres.ts';
import { migratedEmbedded, migratedPostgres, type MigratedDatabase } from '../helpers/databases.ts';

interface Backend {
  knex: Knex;
  /** A second connection pool on the same database, as another server instance would have. */
  other: Knex;
  close(): Promise<void>;
}

const hash = () => crypto.randomBytes(32).toString('hex');

function suite(name: string, open: () => Promise<Backend>, skip = false): void {
  describe.skipIf(skip)(name, () => {
    let backend: Backend;
    let knex: Knex;
    let accountId: string;

    beforeAll(async () => {
      backend = await open();
      knex = backend.knex;
      const [row] = await knex('accounts').insert({ email: `bindings-${hash().slice(0, 8)}@example.test` }).returning('id');
      accountId = (row as { id: string }).id;
    });
    afterAll(async () => {
      await backend?.close();
    });

    const binding = (over: Partial<NewBinding> = {}): NewBinding => ({
      tokenHash: hash(),
      accountId,
      clientId: 'mail-app',
      sessionUid: 'session-1',
      grantId: 'grant-1',
      fingerprint: 'fp-phone',
      uaFamily: 'GatehouseMobile',
      dpopJkt: undefined,
      remember: true,
      alertedFingerprint: undefined,
      expiresAt: new Date(Date.now() + 3600_000),
      ...over,
    });
    const rotation = (successorHash: string, over: Partial<Rotation> = {}): Rotation => ({
      rotatedAt: new Date(),
      rotationFingerprint: 'fp-phone',
      successorHash,
      successorCiphertext: 'sealed-answer',
      graceUntil: new Date(Date.now() + 5000),
      ...over,
    });

    describe('recordRotation', () => {
      it('marks the token rotated into its successor and stores the successor, leaving the binding as it was', async () => {
        const old = binding({ alertedFingerprint: 'fp-laptop', dpopJkt: 'jkt-1' });
        await insertBinding(knex, old);
        const next = binding({ alertedFingerprint: 'fp-laptop', dpopJkt: 'jkt-1' });
        const rotatedAt = new Date(Date.now() - 1000);
        // The values given for the old token's columns only matter when it has no row.
        await recordRotation(knex, { ...old, fingerprint: 'ignored', remember: false }, rotation(next.tokenHash, { rotatedAt, rotationFingerprint: 'fp-other' }), next);

        const oldRow = await findBinding(knex, old.tokenHash);
        expect(oldRow).toMatchObject({
          fingerprint: 'fp-phone', remember: true, alerted_fingerprint: 'fp-laptop', dpop_jkt: 'jkt-1',
          rotation_fingerprint: 'fp-other', successor_hash: next.tokenHash, successor_ciphertext: 'sealed-answer',
        });
        expect(new Date(oldRow!.rotated_at!).getTime()).toBe(rotatedAt.getTime());
        expect(oldRow!.grace_until).not.toBeNull();
        expect(await findBinding(knex, next.tokenHash)).toMatchObject({
          account_id: accountId, client_id: 'mail-app', session_uid: 'session-1', grant_id: 'grant-1', fingerprint: 'fp-phone',
          ua_family: 'GatehouseMobile', dpop_jkt: 'jkt-1', remember: true, alerted_fingerprint: 'fp-laptop',
          rotated_at: null, successor_hash: null, successor_ciphertext: null, grace_until: null,
        });
      });

      it('binds a token that has no row yet (issued before bindings were recorded) as it rotates', async () => {
        const old = binding({ fingerprint: 'fp-first-seen', remember: false });
        const next = binding({ fingerprint: 'fp-first-seen', remember: false });
        await recordRotation(knex, old, rotation(next.tokenHash, { successorCiphertext: null, graceUntil: null }), next);
        expect(await findBinding(knex, old.tokenHash)).toMatchObject({ fingerprint: 'fp-first-seen', remember: false, successor_hash: next.tokenHash, successor_ciphertext: null, grace_until: null });
        expect((await findBinding(knex, old.tokenHash))!.rotated_at).not.toBeNull();
        expect(await findBinding(knex, next.tokenHash)).toMatchObject({ fingerprint: 'fp-first-seen', rotated_at: null });
      });

      it('records the rotation alone when the successor is unknown, and ignores a successor stored already', async () => {
        const old = binding();
        await insertBinding(knex, old);
        const lost = hash();
        await recordRotation(knex, old, rotation(lost), undefined);
        expect(await findBinding(knex, old.tokenHash)).toMatchObject({ successor_hash: lost });
        expect(await findBinding(knex, lost)).toBeUndefined();

        const again = binding();
        const stored = binding({ tokenHash: hash(), fingerprint: 'fp-stored' });
        await insertBinding(knex, stored);
        await insertBinding(knex, again);
        await recordRotation(knex, again, rotation(stored.tokenHash), { ...stored, fingerprint: 'fp-new' });
        expect(await findBinding(knex, stored.tokenHash)).toMatchObject({ fingerprint: 'fp-stored' });
        expect(await findBinding(knex, again.tokenHash)).toMatchObject({ successor_hash: stored.tokenHash });
      });

      it('records neither the rotation nor the successor when one of them cannot be stored', async () => {
        const old = binding();
        await insertBinding(knex, old);
        // The successor names an account that does not exist: the statement fails as a whole.
        const orphan = binding({ accountId: crypto.randomUUID() });
        await expect(recordRotation(knex, old, rotation(orphan.tokenHash), orphan)).rejects.toThrow();
        expect(await findBinding(knex, old.tokenHash)).toMatchObject({ rotated_at: null, successor_hash: null });
        expect(await findBinding(knex, orphan.tokenHash)).toBeUndefined();
      });
    });

    describe('grantUsage', () => {
      const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000);

      const newGrant = async (): Promise<string> => {
        const grantId = `grant-${hash().slice(0, 12)}`;
        await upsertGrantRecord(knex, { grantId, accountId, clientId: 'mail-app', scopes: ['openid'], resourceScopes: {}, expiresAt: undefined });
        return grantId;
      };
      const lastUsed = async (grantId: string): Promise<Date> => {
        const row = (await knex('account_grants').where({ grant_id: grantId }).first()) as { last_used_at: Date | string };
        return new Date(row.last_used_at);
      };
      const setLastUsed = (grantId: string, at: Date) => knex('account_grants').where({ grant_id: grantId }).update({ last_used_at: at });

      it('is kept to the minute', () => {
        expect(LAST_USED_PRECISION_SECONDS).toBe(60);
      });

      it('writes a use when the last recorded one is over a minute old, then not again within the minute', async () => {
        let clock = Date.now();
        const usage = grantUsage(knex, { now: () => clock });
        const grantId = await newGrant();
        await setLastUsed(grantId, minutesAgo(10));

        await usage.used(grantId);
        const written = await lastUsed(grantId);
        expect(written.getTime()).toBeGreaterThan(minutesAgo(1).getTime());

        // Within the minute this instance does not even ask: an older date planted meanwhile stays.
        await setLastUsed(grantId, minutesAgo(10));
        clock += 59_000;
        await usage.used(grantId);
        expect((await lastUsed(grantId)).getTime()).toBeLessThan(minutesAgo(9).getTime());

        // A minute on, it writes again.
        clock += 2_000;
        await usage.used(grantId);
        expect((await lastUsed(grantId)).getTime()).toBeGreaterThan(minutesAgo(1).getTime());
      });

      it('does not write right after the grant was recorded, which set "last used" itself', async () => {
        const usage = grantUsage(knex);
        const grantId = await newGrant();
        usage.recorded(grantId);
        await setLastUsed(grantId, minutesAgo(10));
        await usage.used(grantId);
        expect((await lastUsed(grantId)).getTime()).toBeLessThan(minutesAgo(9).getTime());
      });

      it('leaves a date another instance wrote within the minute', async () => {
        const grantId = await newGrant();
        const recent = new Date(Date.now() - 30_000);
        await setLastUsed(grantId, recent);
        // An instance that has not seen the grant asks the database, which refuses the write.
        await grantUsage(backend.other).used(grantId);
        expect((await lastUsed(grantId)).getTime()).toBe(recent.getTime());
        // A grant never marked used is written.
        const unused = await newGrant();
        await knex('account_grants').where({ grant_id: unused }).update({ last_used_at: null });
        await grantUsage(backend.other).used(unused);
        expect((await lastUsed(unused)).getTime()).toBeGreaterThan(minutesAgo(1).getTime());
      });

      it('remembers a bounded number of grants; one it let go of is checked against the database again', async () => {
        const usage = grantUsage(knex, { maxEntries: 2 });
        const [first, second, third] = [await newGrant(), await newGrant(), await newGrant()];
        for (const grantId of [first, second, third]) usage.recorded(grantId);
        for (const grantId of [first, second, third]) await setLastUsed(grantId, minutesAgo(10));
        // The oldest was forgotten to make room, so its use goes to the database; the others' do not.
        for (const grantId of [second, third, first]) await usage.used(grantId);
        expect((await lastUsed(first)).getTime()).toBeGreaterThan(minutesAgo(1).getTime());
        expect((await lastUsed(second)).getTime()).toBeLessThan(minutesAgo(9).getTime());
        expect((await lastUsed(third)).getTime()).toBeLessThan(minutesAgo(9).getTime());
      });

      it('tries again at the next use when writing failed', async () => {
        const grantId = await newGrant();
        await setLastUsed(grantId, minutesAgo(10));
        const broken = knexFactory({ client: 'pg', connection: 'postgres://127.0.0.1:1/none', acquireConnectionTimeout: 500, pool: { min: 0, max: 1 } });
        try {
          const failing = grantUsage(broken);
          await expect(failing.used(grantId)).rejects.toThrow();
          await expect(failing.used(grantId), 'not skipped as if it had been written').rejects.toThrow();
        } finally {
          await broken.destroy();
        }
      });
    });
  });
}

const withOther = async (open: Promise<MigratedDatabase>) => {
  const database = await open;
  return { knex: database.knex, other: database.other(), close: () => database.close() };
};
suite('embedded PGlite', () => withOther(migratedEmbedded('gh-bindings-')));
suite('PostgreSQL', () => withOther(migratedPostgres('gh_bindings', 3)), !TEST_DATABASE_URL);

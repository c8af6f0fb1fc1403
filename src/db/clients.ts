import type { Knex } from 'knex';

export interface ClientRow {
  client_id: string;
  client_secret_ciphertext: string | null;
  metadata: Record<string, unknown>;
  first_party: boolean;
  created_at: Date;
  updated_at: Date;
}

type Db = Knex | Knex.Transaction;

/** Returns undefined when the client id is taken. */
export async function insertClient(
  db: Db,
  client: { clientId: string; secretCiphertext: string | null; metadata: Record<string, unknown>; firstParty: boolean },
): Promise<ClientRow | undefined> {
  const [row] = await db('clients')
    .insert({
      client_id: client.clientId,
      client_secret_ciphertext: client.secretCiphertext,
      // Serialised here because the pg driver would turn arrays inside into Postgres arrays.
      metadata: JSON.stringify(client.metadata),
      first_party: client.firstParty,
    })
    .onConflict('client_id')
    .ignore()
    .returning<ClientRow[]>('*');
  return row;
}

export async function findClientRow(db: Db, clientId: string): Promise<ClientRow | undefined> {
  return db('clients').where({ client_id: clientId }).first<ClientRow | undefined>();
}

export async function listClientRows(db: Db): Promise<ClientRow[]> {
  return db('clients').select('*').orderBy([{ column: 'created_at' }, { column: 'client_id' }]);
}

/** True when a row was deleted. */
export async function deleteClientRow(db: Db, clientId: string): Promise<boolean> {
  // RETURNING rather than the affected-row count, which the embedded driver does not report.
  const deleted = await db('clients').where({ client_id: clientId }).delete().returning<{ client_id: string }[]>('client_id');
  return deleted.length > 0;
}

/** Replaces what is given; returns the updated row, or undefined when the client is unknown. */
export async function updateClientRow(
  db: Db,
  clientId: string,
  changes: { secretCiphertext?: string | null; metadata?: Record<string, unknown>; firstParty?: boolean },
): Promise<ClientRow | undefined> {
  const [row] = await db('clients')
    .where({ client_id: clientId })
    .update({
      ...(changes.secretCiphertext !== undefined ? { client_secret_ciphertext: changes.secretCiphertext } : {}),
      // Serialised here for the same reason as in insertClient.
      ...(changes.metadata !== undefined ? { metadata: JSON.stringify(changes.metadata) } : {}),
      ...(changes.firstParty !== undefined ? { first_party: changes.firstParty } : {}),
      updated_at: db.fn.now(),
    })
    .returning<ClientRow[]>('*');
  return row;
}

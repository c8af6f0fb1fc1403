// AES-256-GCM for secrets at rest (client secrets, signing private keys, later TOTP seeds).
// Ciphertexts carry the key id so keys can rotate: the first configured key encrypts, any
// configured key decrypts. The associated data binds a ciphertext to the row it belongs to, so a
// value copied into another row does not decrypt.
import crypto from 'node:crypto';
import { AppError } from '../errors.ts';

export interface EncryptionKey {
  kid: string;
  key: Buffer;
}

const VERSION = 'v1';

export class SecretBox {
  readonly #keys: EncryptionKey[];

  constructor(keys: EncryptionKey[]) {
    if (keys.length === 0) throw new Error('SecretBox needs at least one key');
    this.#keys = keys;
  }

  get currentKid(): string {
    return this.#keys[0]!.kid;
  }

  encrypt(plaintext: string | Buffer, associatedData: string): string {
    const { kid, key } = this.#keys[0]!;
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, kid, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  decrypt(ciphertext: string, associatedData: string): Buffer {
    const [version, kid, ivText, bodyText] = ciphertext.split('.');
    if (version !== VERSION || !kid || !ivText || !bodyText) throw new AppError('bad_ciphertext', 'stored secret has an unknown format', 500);
    const entry = this.#keys.find((k) => k.kid === kid);
    if (!entry) throw new AppError('unknown_encryption_key', `stored secret was encrypted with key "${kid}", which is not configured in ENCRYPTION_KEYS`, 500);
    const body = Buffer.from(bodyText, 'base64url');
    const decipher = crypto.createDecipheriv('aes-256-gcm', entry.key, Buffer.from(ivText, 'base64url'));
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - 16));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
  }

  /**
   * Keyed hash for short secrets (e.g. 6-digit codes) stored for comparison: without the key a
   * leaked hash cannot be brute-forced. Derived from the current key, so it changes on rotation.
   */
  mac(data: string, purpose: string): string {
    const key = Buffer.from(crypto.hkdfSync('sha256', this.#keys[0]!.key, Buffer.alloc(0), `gatehouse-mac:${purpose}`, 32));
    return crypto.createHmac('sha256', key).update(data, 'utf8').digest('hex');
  }

  decryptText(ciphertext: string, associatedData: string): string {
    return this.decrypt(ciphertext, associatedData).toString('utf8');
  }
}

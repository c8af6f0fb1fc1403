// Password hashing with argon2id. The parameters come from configuration; hashes made under
// older parameters still verify and are upgraded on the next successful sign-in (needsRehash).
import * as argon2 from 'argon2';
import { AppError } from '../errors.ts';

export interface PasswordHashParams {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const MIN_PASSWORD_LENGTH = 8;
// argon2 accepts any length, but hashing megabytes per request is a cheap denial of service.
export const MAX_PASSWORD_LENGTH = 1024;

/** The minimal length rule; throws AppError('weak_password') when it is not met. */
export function assertPasswordAcceptable(password: string): void {
  const length = typeof password === 'string' ? [...password].length : 0;
  if (length < MIN_PASSWORD_LENGTH || length > MAX_PASSWORD_LENGTH) {
    throw new AppError('weak_password', `passwords must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long`, 400);
  }
}

export async function hashPassword(password: string, params: PasswordHashParams): Promise<string> {
  return argon2.hash(password.normalize('NFC'), {
    type: argon2.argon2id,
    memoryCost: params.memoryCost,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  });
}

/** False for a wrong password and for a hash that cannot be parsed (never throws on bad input). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password.normalize('NFC'));
  } catch {
    return false;
  }
}

export function needsRehash(hash: string, params: PasswordHashParams): boolean {
  // argon2.needsRehash compares parameters only; a hash of another argon2 variant must move too.
  if (!hash.startsWith('$argon2id$')) return true;
  try {
    return argon2.needsRehash(hash, params);
  } catch {
    return true;
  }
}

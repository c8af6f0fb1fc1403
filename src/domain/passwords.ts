// Password hashing with argon2id. The parameters come from configuration; hashes made under
// older parameters still verify and are upgraded on the next successful sign-in (needsRehash).
import * as argon2 from 'argon2';
import { DEFAULT_HASHING_CONCURRENCY } from '../config.ts';
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

/**
 * How many argon2 computations run at once: by default one per core (PASSWORD_HASHING_CONCURRENCY,
 * set by src/main.ts). Each is tens of milliseconds of pure CPU on libuv's threadpool, which
 * WebCrypto signing (every token), async fs and DNS share; libuv queues work in one FIFO, so an
 * unbounded burst of sign-ins would put every token signature behind all of them. Excess sign-ins
 * wait here instead, holding neither a thread nor argon2's memory. More at once than cores would
 * not finish sooner, the cores being busy already; fewer leaves cores to the event loop (token
 * requests, pages) during a burst, at the price of fewer sign-ins per second at peak. src/main.ts
 * sizes the threadpool to this plus the four threads libuv has by default.
 */
let slots = DEFAULT_HASHING_CONCURRENCY;
let running = 0;
const waiting: (() => void)[] = [];

/** Sets how many computations may run at once; hashes already running finish, waiters start as room appears. */
export function setHashingConcurrency(concurrency: number): void {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('hashing concurrency must be a positive integer');
  slots = concurrency;
  while (running < slots && waiting.length > 0) {
    running += 1;
    waiting.shift()!();
  }
}

/** Hashes running and waiting for a slot right now, for the metrics. */
export function hashingLoad(): { concurrency: number; running: number; waiting: number } {
  return { concurrency: slots, running, waiting: waiting.length };
}

async function withHashingSlot<T>(work: () => Promise<T>): Promise<T> {
  // A waiter is counted as running by whoever hands it the slot.
  if (running < slots) running += 1;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  try {
    return await work();
  } finally {
    // Hand the slot straight to the next waiter (first come, first served) unless the
    // concurrency was lowered meanwhile; otherwise free it.
    const next = running <= slots ? waiting.shift() : undefined;
    if (next) next();
    else running -= 1;
  }
}

export async function hashPassword(password: string, params: PasswordHashParams): Promise<string> {
  const normalized = password.normalize('NFC');
  return withHashingSlot(() => argon2.hash(normalized, {
    type: argon2.argon2id,
    memoryCost: params.memoryCost,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  }));
}

/** False for a wrong password and for a hash that cannot be parsed (never throws on bad input). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    const normalized = password.normalize('NFC');
    return await withHashingSlot(() => argon2.verify(hash, normalized));
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

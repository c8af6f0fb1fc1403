import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_HASHING_CONCURRENCY } from '../../src/config.ts';
import { assertPasswordAcceptable, hashingLoad, hashPassword, needsRehash, setHashingConcurrency, verifyPassword } from '../../src/domain/passwords.ts';

const OWASP = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

describe('password hashing', () => {
  it('produces an argon2id hash with the configured parameters and a fresh salt', async () => {
    const first = await hashPassword('correct horse battery staple', OWASP);
    const second = await hashPassword('correct horse battery staple', OWASP);
    const [, variant, , params] = first.split('$');
    expect(variant).toBe('argon2id');
    expect(params?.split(',').sort()).toEqual(['m=19456', 'p=1', 't=2']);
    expect(first).not.toBe(second);
    expect(first).not.toContain('correct horse');
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const hash = await hashPassword('correct horse battery staple', OWASP);
    expect(await verifyPassword(hash, 'correct horse battery staple')).toBe(true);
    expect(await verifyPassword(hash, 'Correct horse battery staple')).toBe(false);
    expect(await verifyPassword(hash, '')).toBe(false);
  });

  it('treats differently composed Unicode passwords as the same password', async () => {
    const hash = await hashPassword('caf\u00e9-au-lait', OWASP);
    expect(await verifyPassword(hash, 'cafe\u0301-au-lait')).toBe(true);
  });

  it('returns false instead of throwing for a hash it cannot parse', async () => {
    expect(await verifyPassword('not-a-hash', 'whatever-password')).toBe(false);
    expect(await verifyPassword('', 'whatever-password')).toBe(false);
  });

  it('asks for a rehash when parameters grow or the variant is not argon2id', async () => {
    const hash = await hashPassword('correct horse battery staple', OWASP);
    expect(needsRehash(hash, OWASP)).toBe(false);
    expect(needsRehash(hash, { ...OWASP, memoryCost: 65536 })).toBe(true);
    expect(needsRehash(hash, { ...OWASP, timeCost: 3 })).toBe(true);
    expect(needsRehash(hash.replace('$argon2id$', '$argon2i$'), OWASP)).toBe(true);
    expect(needsRehash('garbage', OWASP)).toBe(true);
  });
});

describe('minimal password rule', () => {
  it('accepts 8 to 1024 characters, counting characters rather than UTF-16 units', () => {
    expect(() => assertPasswordAcceptable('12345678')).not.toThrow();
    expect(() => assertPasswordAcceptable('x'.repeat(1024))).not.toThrow();
    expect(() => assertPasswordAcceptable('\u{1F512}'.repeat(1024))).not.toThrow();
  });

  it('rejects shorter and longer passwords with weak_password', () => {
    expect(() => assertPasswordAcceptable('1234567')).toThrow(expect.objectContaining({ code: 'weak_password', status: 400 }));
    expect(() => assertPasswordAcceptable('\u{1F512}'.repeat(7))).toThrow(expect.objectContaining({ code: 'weak_password' }));
    expect(() => assertPasswordAcceptable('x'.repeat(1025))).toThrow(expect.objectContaining({ code: 'weak_password' }));
  });
});

describe('hashing concurrency', () => {
  afterEach(() => setHashingConcurrency(DEFAULT_HASHING_CONCURRENCY));

  it('runs at most the configured number of hashes at once; the rest wait their turn and all finish', async () => {
    const hash = await hashPassword('correct horse battery staple', OWASP);
    setHashingConcurrency(1);
    const checks = [0, 1, 2].map((i) => verifyPassword(hash, i === 1 ? 'a wrong password' : 'correct horse battery staple'));
    expect(hashingLoad()).toEqual({ concurrency: 1, running: 1, waiting: 2 });
    expect(await Promise.all(checks)).toEqual([true, false, true]);
    expect(hashingLoad()).toEqual({ concurrency: 1, running: 0, waiting: 0 });

    setHashingConcurrency(2);
    const more = [0, 1, 2].map(() => verifyPassword(hash, 'correct horse battery staple'));
    expect(hashingLoad()).toEqual({ concurrency: 2, running: 2, waiting: 1 });
    expect(await Promise.all(more)).toEqual([true, true, true]);
  });

  it('starts waiting hashes when the concurrency is raised, and lets running ones finish when it is lowered', async () => {
    const hash = await hashPassword('correct horse battery staple', OWASP);
    setHashingConcurrency(1);
    const checks = [0, 1, 2, 3].map(() => verifyPassword(hash, 'correct horse battery staple'));
    setHashingConcurrency(3);
    expect(hashingLoad()).toEqual({ concurrency: 3, running: 3, waiting: 1 });
    setHashingConcurrency(1);
    expect(hashingLoad()).toEqual({ concurrency: 1, running: 3, waiting: 1 });
    expect(await Promise.all(checks)).toEqual([true, true, true, true]);
    expect(hashingLoad()).toEqual({ concurrency: 1, running: 0, waiting: 0 });
  });

  it('refuses a concurrency that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => setHashingConcurrency(bad)).toThrow(RangeError);
    expect(hashingLoad().concurrency).toBe(DEFAULT_HASHING_CONCURRENCY);
  });
});

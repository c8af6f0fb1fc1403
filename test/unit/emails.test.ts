import { describe, expect, it } from 'vitest';
import { normalizeEmail } from '../../src/domain/emails.ts';
import { AppError } from '../../src/errors.ts';

function rejection(input: string): unknown {
  try {
    normalizeEmail(input);
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('normalizeEmail', () => {
  it('trims and lowercases the domain but keeps the local part as typed', () => {
    expect(normalizeEmail('  Ada.Lovelace@Example.COM \n')).toBe('Ada.Lovelace@example.com');
  });

  it('composes Unicode to NFC so one address has one spelling', () => {
    const decomposed = 'jose\u0301@example.com';
    expect(normalizeEmail(decomposed)).toBe('jos\u00e9@example.com');
    expect(normalizeEmail(decomposed)).toBe(normalizeEmail('jos\u00e9@example.com'));
  });

  it('accepts plus addressing and subdomains', () => {
    expect(normalizeEmail('ada+test@mail.Example.co.uk')).toBe('ada+test@mail.example.co.uk');
  });

  it.each([
    ['empty', ''],
    ['no @', 'ada.example.com'],
    ['two @', 'ada@lovelace@example.com'],
    ['empty local part', '@example.com'],
    ['domain without a dot', 'ada@localhost'],
    ['empty domain label', 'ada@example..com'],
    ['leading dot in domain', 'ada@.example.com'],
    ['trailing dot in domain', 'ada@example.com.'],
    ['space inside', 'ada lovelace@example.com'],
    ['non-breaking space inside', 'ada\u00a0@example.com'],
    ['control character', 'ada\u0000@example.com'],
    ['too long', `${'a'.repeat(250)}@example.com`],
  ])('rejects %s with AppError invalid_email (400)', (_label, input) => {
    const err = rejection(input);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'invalid_email', status: 400 });
  });

  it('accepts an address of exactly 254 characters', () => {
    const email = `${'a'.repeat(254 - '@example.com'.length)}@example.com`;
    expect(normalizeEmail(email)).toBe(email);
  });
});

// Password rules after NIST SP 800-63B: length 8..128+, no composition rules, and a check
// against common and guessable passwords (zxcvbn's dictionaries of common passwords, names and
// words, keyboard patterns, dates, repeats, and the user's own email and name).
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import * as english from '@zxcvbn-ts/language-en';
import { AppError } from '../errors.ts';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from './passwords.ts';

const zxcvbn = new ZxcvbnFactory({
  translations: english.translations,
  graphs: common.adjacencyGraphs,
  dictionary: { ...common.dictionary, ...english.dictionary },
});

// zxcvbn score 2 means "somewhat guessable" (about 10^8 guesses): beyond online guessing, which
// is what rate limits and lockout already bound. Scores 0-1 are dictionary-level passwords.
const MIN_SCORE = 2;

/** Why a password is refused, in words for the person choosing it; undefined when acceptable. */
export function passwordProblem(password: string, context: (string | undefined | null)[] = []): string | undefined {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) return `Use at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (length > MAX_PASSWORD_LENGTH) return `Use at most ${MAX_PASSWORD_LENGTH} characters.`;
  const userInputs = context.filter((v): v is string => Boolean(v)).flatMap((v) => [v, ...v.split(/[@.\s_-]+/)]).filter((v) => v.length >= 3);
  // Long passphrases are fine whatever zxcvbn says of their words; checking them is also slow.
  if (length >= 64) return undefined;
  const result = zxcvbn.check(password, userInputs);
  if (result.score >= MIN_SCORE) return undefined;
  const why = result.feedback.warning ? `${result.feedback.warning.replace(/\.$/, '')}.` : 'It is too easy to guess.';
  const hint = result.feedback.suggestions[0] ?? 'A few unrelated words make a strong password that is easy to remember.';
  return `This password is too common or too easy to guess: ${why} ${hint}`;
}

export function assertStrongPassword(password: string, context: (string | undefined | null)[] = []): void {
  const problem = passwordProblem(password, context);
  if (problem) throw new AppError('weak_password', problem, 400, { field: 'password' });
}

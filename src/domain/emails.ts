// One spelling per address. The domain part is case-insensitive (DNS); the local part is kept as
// typed because some mail systems treat it case-sensitively, while account lookups and the
// unique index compare lower(email) so Ada@x and ada@x are still one account.
import { AppError } from '../errors.ts';

// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_EMAIL_LENGTH = 254;

function invalid(): AppError {
  return new AppError('invalid_email', 'enter a valid email address', 400);
}

export function normalizeEmail(input: string): string {
  if (typeof input !== 'string') throw invalid();
  const email = input.trim().normalize('NFC');
  // \s covers Unicode spaces; control characters would corrupt mail headers and log lines.
  // eslint-disable-next-line no-control-regex
  if (email.length === 0 || email.length > MAX_EMAIL_LENGTH || /[\s\u0000-\u001f\u007f]/.test(email)) throw invalid();
  const at = email.indexOf('@');
  if (at <= 0 || at !== email.lastIndexOf('@')) throw invalid();
  const local = email.slice(0, at);
  const domain = email.slice(at + 1).toLowerCase();
  const labels = domain.split('.');
  if (labels.length < 2 || labels.some((label) => label.length === 0)) throw invalid();
  return `${local}@${domain}`;
}

/** The normalized address, or undefined for input that cannot be one (it then names no account). */
export function emailOrUndefined(input: string): string | undefined {
  try {
    return normalizeEmail(input);
  } catch {
    return undefined;
  }
}

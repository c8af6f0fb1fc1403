// Small pieces every check of a presented credential needs: comparing secrets in constant time
// and reading HTTP Basic client credentials (RFC 6749 2.3.1).
import crypto from 'node:crypto';

/** Compares through fixed-length digests, so neither the content nor the length leaks by timing. */
export function sameSecret(expected: string, actual: string): boolean {
  return crypto.timingSafeEqual(crypto.createHash('sha256').update(expected).digest(), crypto.createHash('sha256').update(actual).digest());
}

/** RFC 6749 2.3.1: both parts of Basic credentials are form-encoded; undefined when malformed. */
export function formDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/** The still form-encoded id and secret in the base64 value of `Authorization: Basic`. */
export function basicCredentials(value: string): { id: string; secret: string } | undefined {
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) } : undefined;
}

// Approximate locations of sign-ins from a MaxMind DB file (GeoLite2/GeoIP2 City or Country), when
// the operator configures one. Lookups are local (no network) and cached by the reader.
import maxmind, { type CityResponse } from 'maxmind';
import type { Logger } from './logger.ts';

export interface GeoIp {
  /** "City, Country" (or the country alone), undefined when the address is not in the database. */
  locate(ip: string | undefined): string | undefined;
}

export async function openGeoIp(file: string | undefined, logger: Logger): Promise<GeoIp | undefined> {
  if (!file) return undefined;
  try {
    const reader = await maxmind.open<CityResponse>(file, { cache: { max: 10_000 } });
    return {
      locate(ip) {
        // Node reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
        const address = ip?.replace(/^::ffff:/i, '');
        if (!address || !maxmind.validate(address)) return undefined;
        const found = reader.get(address);
        const city = found?.city?.names?.en;
        const country = found?.country?.names?.en;
        return [city, country].filter(Boolean).join(', ') || undefined;
      },
    };
  } catch (err) {
    // A missing or unreadable file must not stop sign-ins; sessions then show addresses only.
    logger.error({ err: err instanceof Error ? err.message : String(err), file }, 'GEOIP_DATABASE could not be opened; session locations are off');
    return undefined;
  }
}

// What a User-Agent header says about the browser, system and device, as session lists and
// new-device mails show it, and the browser family refresh-token bindings compare. ua-parser-js tries its regular expressions one by one (60 to 100 µs
// per header here, most for headers it does not recognise), and a browser sends the same header
// on every request, so descriptions are remembered per header value. The answer depends on the
// header alone, so remembering it in each process is as correct as parsing again.
import { UAParser } from 'ua-parser-js';
import { LruCache } from './lru-cache.ts';

export interface DeviceDescription {
  /** Browser name and major version, e.g. "Chrome 142". */
  browser?: string;
  /** System name and version, e.g. "Windows 10". */
  os?: string;
  /** "mobile", "tablet", ... or "desktop" when the header names no device type. */
  deviceType?: string;
}

// Browsers send a few hundred characters at most; longer values are parsed but not kept, so
// clients sending huge headers cannot make the cache hold much memory.
const MAX_REMEMBERED_LENGTH = 512;

interface ParsedUserAgent {
  description: Readonly<DeviceDescription>;
  family: string;
}

const parsedHeaders = new LruCache<string, ParsedUserAgent>(1_000);

function parse(userAgent: string): ParsedUserAgent {
  const parsed = new UAParser(userAgent).getResult();
  const browser = [parsed.browser.name, parsed.browser.major].filter(Boolean).join(' ') || undefined;
  const os = [parsed.os.name, parsed.os.version].filter(Boolean).join(' ') || undefined;
  // Apps and libraries ("okhttp/4.12", "MyApp/3.1 CFNetwork/...") name themselves first.
  const family = parsed.browser.name?.slice(0, 64) || (/^\s*([A-Za-z][A-Za-z0-9._-]*)/.exec(userAgent)?.[1]?.slice(0, 64) ?? 'unknown');
  // Frozen: one object is handed to every caller with the same header.
  return { description: Object.freeze({ browser, os, deviceType: parsed.device.type ?? 'desktop' }), family };
}

function parsedOnce(userAgent: string): ParsedUserAgent {
  const known = parsedHeaders.get(userAgent);
  if (known) return known;
  const parsed = parse(userAgent);
  if (userAgent.length <= MAX_REMEMBERED_LENGTH) parsedHeaders.set(userAgent, parsed);
  return parsed;
}

export function describeUserAgent(userAgent: string | undefined): Readonly<DeviceDescription> {
  return userAgent ? parsedOnce(userAgent).description : {};
}

/** The browser (or HTTP library) family, without its version, so updates do not count as a new device. */
export function userAgentFamily(userAgent: string | undefined): string {
  return userAgent ? parsedOnce(userAgent).family : 'unknown';
}

// Writes a minimal MaxMind DB (GeoIP2 City layout) mapping one IPv4 /24 to a city and country, so
// GeoIP lookups are tested against a real .mmdb file read by the real reader, without shipping a
// licensed database. Format: https://maxmind.github.io/MaxMind-DB/ (search tree of 24-bit
// records, 16-byte separator, data section, metadata after the marker).
import fs from 'node:fs';

type Value = string | number | bigint | Value[] | { [key: string]: Value };

function control(type: number, size: number): Buffer {
  if (size >= 29) throw new Error('sizes of 29 and more are not needed here');
  return type <= 7 ? Buffer.from([(type << 5) | size]) : Buffer.from([size, type - 7]);
}

function uint(type: number, value: number | bigint, maxBytes: number): Buffer {
  let hex = BigInt(value).toString(16);
  if (hex === '0') hex = '';
  if (hex.length % 2) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length > maxBytes) throw new Error('value too large');
  return Buffer.concat([control(type, bytes.length), bytes]);
}

function encode(value: Value, as?: 'uint16' | 'uint32' | 'uint64'): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(2, bytes.length), bytes]);
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    if (as === 'uint16') return uint(5, value, 2);
    if (as === 'uint64') return uint(9, value, 8);
    return uint(6, value, 4);
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map((v) => encode(v))]);
  const entries = Object.entries(value);
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v, UINT_KINDS[k])])]);
}

const UINT_KINDS: Record<string, 'uint16' | 'uint32' | 'uint64'> = {
  node_count: 'uint32',
  record_size: 'uint16',
  ip_version: 'uint16',
  binary_format_major_version: 'uint16',
  binary_format_minor_version: 'uint16',
  build_epoch: 'uint64',
};

/** A database answering `city`/`country` for every address in `network` (an IPv4 /24). */
export function writeCityDatabase(file: string, network: string, city: string, country: string, isoCode: string): void {
  const [a, b, c] = network.split('.').map(Number);
  const prefix = ((a! << 16) | (b! << 8) | c!) >>> 0;
  const depth = 24;
  const nodeCount = depth;
  const record = { city: { names: { en: city } }, country: { iso_code: isoCode, names: { en: country } } };
  const data = encode(record);
  const tree = Buffer.alloc(nodeCount * 6);
  for (let i = 0; i < depth; i += 1) {
    const bit = (prefix >>> (depth - 1 - i)) & 1;
    // The last node points into the data section (pointer = node_count + 16 + offset 0).
    const next = i === depth - 1 ? nodeCount + 16 : i + 1;
    const left = bit === 0 ? next : nodeCount;
    const right = bit === 1 ? next : nodeCount;
    tree.writeUIntBE(left, i * 6, 3);
    tree.writeUIntBE(right, i * 6 + 3, 3);
  }
  const metadata = encode({
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: BigInt(Math.floor(Date.now() / 1000)),
    database_type: 'GeoIP2-City',
    description: { en: 'Gatehouse test database' },
    ip_version: 4,
    languages: ['en'],
    node_count: nodeCount,
    record_size: 24,
  });
  fs.writeFileSync(file, Buffer.concat([tree, Buffer.alloc(16), data, Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), metadata]));
}

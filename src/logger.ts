// Structured JSON logs. Redaction keeps secrets and tokens out of the log even when a caller
// logs a whole request or object by mistake.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      redact: {
        paths: [
          'password', '*.password', 'client_secret', '*.client_secret', 'clientSecret', '*.clientSecret',
          'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
          'access_token', 'refresh_token', 'id_token', 'code', '*.access_token', '*.refresh_token', '*.id_token',
        ],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

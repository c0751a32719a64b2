import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths redacted in every log line. Secrets must never reach job data, but logs also see
 * configuration, HTTP headers and errors, so redact by name as a second line of defence.
 */
export const redactPaths: string[] = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  '*.clientSecret',
  'signingKey',
  '*.signingKey',
  '*.JOB_SIGNING_KEY',
  '*.MicrosoftAppPassword',
  '*.CRM_PASSWORD',
  '*.CERT_PFX_PASSWORD',
  '*.GRAPH_CLIENT_SECRET',
  'pfxPassword',
  '*.pfxPassword',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.headers.cookie',
  'sig.mac',
  '*.sig.mac',
  'token',
  '*.token',
];

export interface CreateLoggerOptions {
  name: string;
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const config: LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { service: options.name },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** A logger that writes nothing: for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

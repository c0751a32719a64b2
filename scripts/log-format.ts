/**
 * Turns a pino JSON line into one short readable line for the demo's merged log:
 * `12:03:04 INFO  message  key=value …`. Lines that are not pino JSON pass through unchanged.
 */
const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const skipped = new Set(['level', 'time', 'pid', 'hostname', 'name', 'service', 'msg', 'v']);

export function formatPinoLine(line: string, maxLength = 400): string {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) return line;
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line;
    record = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof record.level !== 'number' && typeof record.msg !== 'string') return line;
  const level = typeof record.level === 'number' ? (levels[record.level] ?? String(record.level)) : '';
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 19) : '';
  const extras: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (skipped.has(key) || value === undefined) continue;
    extras.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  const text = [time, level.padEnd(5), typeof record.msg === 'string' ? record.msg : '', extras.join(' ')]
    .filter((part) => part.length > 0)
    .join(' ');
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

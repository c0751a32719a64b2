import { chmod, readFile, unlink, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CliUsageError, EXIT_USAGE, reportUsageError } from '../../core/cli-usage-error.ts';
import { SetupError } from '../../core/setup-error.ts';
import type { CertSummary } from '../../jobs/cert-types.ts';
import { readCertificateFile, type CertificateFileFormat } from '../certkit/kit.ts';
import { makeEvaluationPfx } from '../certkit/evaluation-pfx.ts';

/**
 * `npm run cert -- inspect <file> [--password-env NAME] [--json] [--min-days N]`
 * `npm run cert -- new --subject "CN=…" --days N --out <file.pfx> --password-env NAME [--key-size N] [--legacy] [--force] [--json]`
 *
 * The certificate kit for an administrator at a terminal on the agent host. Passwords come only from
 * the environment variable named by --password-env (never from the command line, where shell history
 * and process lists keep them). Exit codes: 0 fine (warnings allowed), 1 the certificate has
 * error-severity problems, 2 usage errors, unreadable files, wrong passwords.
 */

export interface CertCliFs {
  readFile(path: string): Promise<Buffer>;
  /** Creates the file; fails with EEXIST when it exists. */
  writeNewFile(path: string, data: Buffer, mode: number): Promise<void>;
  remove(path: string): Promise<void>;
}

export interface CertCliDeps {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  fs?: CertCliFs;
  now?: () => number;
}

export const EXIT_OK = 0;
export const EXIT_PROBLEMS = 1;
export { EXIT_USAGE };

const DEFAULT_MIN_DAYS = 30;

export const certCliUsage = `Usage:
  npm run cert -- inspect <file> [--password-env NAME] [--json] [--min-days N]
      Reads a .pfx/.p12 (password from the environment variable NAME), .cer or .pem and checks it
      against the S2S requirements. --min-days: it must be valid this many more days (default ${DEFAULT_MIN_DAYS}).
  npm run cert -- new --subject "CN=crm-s2s.contoso.com, O=Contoso" --days <n> --out <file.pfx>
                      --password-env NAME [--key-size 2048] [--legacy] [--force] [--json]
      Makes a self-signed evaluation certificate as a PFX Windows imports with KeySpec 1.
      --legacy: TripleDES/SHA-1 PFX for Windows Server 2016 and older. --force: overwrite <file.pfx>.
Passwords are never taken on the command line: put it in an environment variable and name it with --password-env.
Exit codes: 0 fine, 1 the certificate has errors, 2 usage error, unreadable file or wrong password.`;

const nodeFs: CertCliFs = {
  readFile: (path) => readFile(path),
  writeNewFile: async (path, data, mode) => {
    await writeFile(path, data, { mode, flag: 'wx' });
    await chmod(path, mode); // the umask may have taken bits away; never added
  },
  remove: (path) => unlink(path),
};

export async function main(deps: CertCliDeps): Promise<number> {
  try {
    return await run(deps);
  } catch (error) {
    return reportUsageError(error, certCliUsage, deps.stderr);
  }
}

async function run(deps: CertCliDeps): Promise<number> {
  const fs = deps.fs ?? nodeFs;
  const now = (deps.now ?? Date.now)();
  const refused = deps.argv.find((arg) => /^--?(password|pass|pwd|passin|passout|p)(=|$)/i.test(arg));
  if (refused) {
    throw new CliUsageError(`${refused.split('=')[0] ?? refused} is refused: a password on the command line ends up in shell history and process lists. Put it in an environment variable and name it with --password-env NAME.`);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...deps.argv],
      allowPositionals: true,
      strict: true,
      options: {
        'password-env': { type: 'string' },
        json: { type: 'boolean' },
        'min-days': { type: 'string' },
        subject: { type: 'string' },
        days: { type: 'string' },
        out: { type: 'string' },
        'key-size': { type: 'string' },
        legacy: { type: 'boolean' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // Node's message quotes the argument; cut any "=value" so nothing typed after "=" is echoed.
    const message = error instanceof Error ? error.message.split('. ')[0]?.replace(/=[^'"\s]*/g, '=…') : 'Cannot read the arguments';
    throw new CliUsageError(message ?? 'Cannot read the arguments');
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === 'help') {
    deps.stdout(`${certCliUsage}\n`);
    return EXIT_OK;
  }
  if (command === 'inspect') {
    const [file, extra] = rest;
    if (!file || extra !== undefined) throw new CliUsageError('inspect takes exactly one file.');
    for (const option of ['subject', 'days', 'out', 'key-size', 'legacy', 'force'] as const) {
      if (values[option] !== undefined) throw new CliUsageError(`--${option} belongs to "new", not "inspect".`);
    }
    return inspect(deps, fs, now, file, {
      password: passwordFrom(deps.env, values['password-env'], false),
      json: values.json === true,
      minDays: integer(values['min-days'], '--min-days', DEFAULT_MIN_DAYS, 0, 3650),
    });
  }
  if (command === 'new') {
    // Not echoed: a stray argument may be a password typed where it does not belong.
    if (rest.length > 0) throw new CliUsageError('new takes no file argument; name the output with --out.');
    if (values['min-days'] !== undefined) throw new CliUsageError('--min-days belongs to "inspect", not "new".');
    const subject = values.subject;
    const out = values.out;
    if (!subject) throw new CliUsageError('new needs --subject "CN=…".');
    if (!out) throw new CliUsageError('new needs --out <file.pfx>.');
    if (!/\.(pfx|p12)$/i.test(out)) throw new CliUsageError(`--out ${out} should end with .pfx or .p12.`);
    if (values.days === undefined) throw new CliUsageError('new needs --days <n> (how long the certificate is valid).');
    const password = passwordFrom(deps.env, values['password-env'], true);
    if (password === undefined) throw new CliUsageError('new needs --password-env NAME: the environment variable that holds the PFX password.');
    const keySize = integer(values['key-size'], '--key-size', 2048, 2048, 16384);
    if (keySize % 8 !== 0) throw new CliUsageError('--key-size must be a multiple of 8 (2048, 3072, 4096).');
    return create(deps, fs, now, {
      subject,
      out,
      days: integer(values.days, '--days', 0, 1, 3650),
      keySize,
      password,
      legacy: values.legacy === true,
      force: values.force === true,
      json: values.json === true,
    });
  }
  throw new CliUsageError(command ? `Unknown command "${command}".` : 'Give a command: inspect or new.');
}

function passwordFrom(env: CertCliDeps['env'], name: string | undefined, required: boolean): string | undefined {
  if (name === undefined) return undefined;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new CliUsageError('--password-env takes the NAME of an environment variable (letters, digits, underscore), not the password.');
  const value = env[name];
  if (value === undefined || (required && value === '')) {
    // The name is echoed only when it looks like one: someone may have given the password itself.
    const which = /^[A-Z_][A-Z0-9_]*$/.test(name) ? `The environment variable ${name}` : 'The environment variable named by --password-env (names are usually upper-case, like CERT_PFX_PASSWORD)';
    throw new CliUsageError(`${which} is not set${value === '' ? ' (it is empty)' : ''}. Set it to the PFX password, then run the command again.`);
  }
  return value;
}

function integer(text: string | undefined, option: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^-?\d+$/.test(text)) throw new CliUsageError(`${option} takes a whole number, not "${text}".`);
  const value = Number(text);
  if (value < min || value > max) {
    throw new CliUsageError(option === '--key-size' && value < min
      ? `${option} ${value} is too small: Entra ID rejects RSA keys below ${min} bits (AADSTS700027).`
      : `${option} must be between ${min} and ${max}.`);
  }
  return value;
}

async function inspect(deps: CertCliDeps, fs: CertCliFs, now: number, file: string, options: { password: string | undefined; json: boolean; minDays: number }): Promise<number> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new SetupError('CERT_FILE_NOT_FOUND', `Cannot read ${file}${code === 'ENOENT' ? ': there is no such file' : typeof code === 'string' ? ` (${code})` : ''}.`, { hint: 'Check the path (relative paths start in the current folder).' });
  }
  const info = readCertificateFile(bytes, {
    fileName: basename(file),
    ...(options.password === undefined ? {} : { password: options.password }),
    now,
    minDaysLeft: options.minDays,
  });
  const summary = info.summary;
  if (options.json) deps.stdout(`${JSON.stringify(summary)}\n`);
  else deps.stdout(humanSummary(file, info.format, summary, now));
  return summary.problems.some((problem) => problem.severity === 'error') ? EXIT_PROBLEMS : EXIT_OK;
}

async function create(deps: CertCliDeps, fs: CertCliFs, now: number, options: { subject: string; out: string; days: number; keySize: number; password: string; legacy: boolean; force: boolean; json: boolean }): Promise<number> {
  const made = makeEvaluationPfx({ subject: options.subject, days: options.days, password: options.password, now, keySize: options.keySize, encryption: options.legacy ? 'legacy' : 'aes256' });
  if (options.force) {
    await fs.remove(options.out).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    });
  }
  try {
    await fs.writeNewFile(options.out, made.pfx, 0o600);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EEXIST') throw new CliUsageError(`${options.out} exists already; nothing was written. Choose another --out, or add --force to replace it.`);
    throw new SetupError('CERT_FILE_NOT_FOUND', `Cannot write ${options.out}${typeof code === 'string' ? ` (${code})` : ''}.`, { hint: 'Check that the folder exists and that you may write to it.' });
  }
  const path = resolve(options.out);
  if (options.json) {
    deps.stdout(`${JSON.stringify({ thumbprint: made.thumbprint, path })}\n`);
  } else {
    deps.stdout([
      `Wrote ${path} (mode 0600)`,
      `Thumbprint  ${made.thumbprint}`,
      `Subject     ${options.subject}`,
      `Valid       ${options.days} days, RSA ${options.keySize}, SHA-256, self-signed: for evaluation only.`,
      'Check it with: npm run cert -- inspect <file> --password-env <NAME>',
      '',
    ].join('\n'));
  }
  return EXIT_OK;
}

const formatNames: Record<CertificateFileFormat, string> = { pfx: 'PFX/PKCS#12', der: 'DER certificate', pem: 'PEM' };
const keySpecNames: Record<0 | 1 | 2, string> = { 0: '0 (CNG key)', 1: '1 (AT_KEYEXCHANGE)', 2: '2 (AT_SIGNATURE)' };

function humanSummary(file: string, format: CertificateFileFormat, s: CertSummary, now: number): string {
  const daysLeft = Math.floor((Date.parse(s.notAfter) - now) / 86_400_000);
  const lines = [
    `File          ${file} (${formatNames[format]})`,
    `Thumbprint    ${s.thumbprint}`,
    `Subject       ${s.subject}`,
    `Issuer        ${s.issuer}${s.selfSigned ? ' (self-signed)' : ''}`,
    `Serial        ${s.serialNumber}`,
    `Valid         ${s.notBefore} to ${s.notAfter} (${daysLeft < 0 ? `expired ${-daysLeft} days ago` : `${daysLeft} days left`})`,
    `Key           ${s.keyAlgorithm} ${s.keySize} bits, private key ${s.hasPrivateKey ? 'included' : 'not included'}${s.keySpec === null ? '' : `, KeySpec ${keySpecNames[s.keySpec]}`}`,
    `Signature     ${s.signatureHash}`,
    `Key usage     ${s.keyUsage.length > 0 ? s.keyUsage.join(', ') : '(no key-usage extension)'}`,
    `Extended use  ${s.extendedKeyUsage.length > 0 ? s.extendedKeyUsage.join(', ') : '(none)'}`,
    '',
  ];
  const errors = s.problems.filter((p) => p.severity === 'error').length;
  if (s.problems.length === 0) {
    lines.push('No problems: the certificate meets the S2S requirements.');
  } else {
    lines.push(errors > 0 ? `${errors} error(s): this certificate cannot be used for S2S as it is.` : 'Warnings only: the certificate can be used.');
    for (const problem of s.problems) {
      lines.push(`  ${problem.severity === 'error' ? 'ERROR  ' : 'warning'} ${problem.code}: ${problem.message}`);
      lines.push(`          Fix: ${problem.fix}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** True when this module is the program tsx was started with (not imported by a test). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main({
    argv: process.argv.slice(2),
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`Unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = EXIT_USAGE;
    },
  );
}

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../../core/logger.ts';
import { SetupError } from '../../../core/setup-error.ts';
import {
  PFX_PASSWORD_ENV,
  powershellScripts,
  type PowershellOutput,
  type PowershellParams,
  type PowershellScriptName,
} from './scripts.ts';

/**
 * Runs the agent's PowerShell scripts (agent/adapters/powershell/<name>.ps1) as
 * `<executable> -NoProfile -NonInteractive -ExecutionPolicy Bypass -File <script> -<Param> <value> …`
 * with shell: false: every value is its own argv entry, no command text is built from input. The
 * PFX password goes only into the child's environment (SETUP_PFX_PASSWORD), only for the scripts
 * that need it. The script's result is the JSON object on the last non-empty line of stdout.
 *
 * The child's environment is built from an allowlist, never copied whole: the variables Windows and
 * PowerShell need (POWERSHELL_ENV_ALLOWLIST) and the names in `passEnv` (the agent's
 * POWERSHELL_PASS_ENV), taken from the base environment (`env`, default process.env), plus
 * SETUP_PFX_PASSWORD for the import script. The agent's secrets (NEVER_PASSED_ENV) never reach a
 * script, even when `passEnv` names them.
 */
export interface PowershellRunnerOptions {
  /** `powershell.exe` (Windows PowerShell 5.1: the CRM snap-in does not load in pwsh), or the simulator's stand-in. */
  executable: string;
  /** Default time-out of one script. */
  timeoutMs: number;
  logger: Logger;
  /** The environment the child's variables are picked from (default process.env); never passed whole. */
  env?: NodeJS.ProcessEnv;
  /** Names passed to the scripts on top of the allowlist (POWERSHELL_PASS_ENV), matched case-insensitively. */
  passEnv?: readonly string[];
  /** Folder of the .ps1 files (default the repository's agent/adapters/powershell). */
  scriptsDir?: string;
}

export interface PowershellRunOptions {
  /** Only for scripts with needsPassword; ignored otherwise. */
  pfxPassword?: string;
  timeoutMs?: number;
  /** Aborting kills the script's process tree. */
  signal?: AbortSignal;
}

export interface PowershellRunner {
  run<N extends PowershellScriptName>(name: N, params: PowershellParams<N>, options?: PowershellRunOptions): Promise<PowershellOutput<N>>;
}

export const DEFAULT_SCRIPTS_DIR = fileURLToPath(new URL('./', import.meta.url));

/** stdout/stderr kept per stream: the result is one JSON line, errors need only an excerpt. */
const MAX_STREAM_BYTES = 1024 * 1024;
const STDERR_EXCERPT_CHARS = 400;
const REDACTED = '[redacted]';

/** What Windows, .NET and PowerShell remoting need in a child process; nothing of the agent's own. */
export const POWERSHELL_ENV_ALLOWLIST = [
  'SystemRoot', 'windir', 'PATH', 'PATHEXT', 'TEMP', 'TMP', 'PSModulePath', 'ProgramData', 'ProgramFiles',
  'ProgramFiles(x86)', 'CommonProgramFiles', 'COMPUTERNAME', 'USERDOMAIN', 'USERNAME', 'USERPROFILE', 'APPDATA',
  'LOCALAPPDATA', 'HOMEDRIVE', 'HOMEPATH', 'NUMBER_OF_PROCESSORS', 'PROCESSOR_ARCHITECTURE', 'OS', 'ComSpec',
] as const;

/** The agent's secrets (and the import script's password variable): never taken from the base environment. */
export const NEVER_PASSED_ENV = [PFX_PASSWORD_ENV, 'CERT_PFX_PASSWORD', 'GRAPH_CLIENT_SECRET', 'JOB_SIGNING_KEY', 'CRM_PASSWORD', 'REDIS_URL'] as const;

/**
 * The child's environment: the base's variables named by the allowlist or `passEnv` (Windows names
 * are case-insensitive, so 'Path' matches PATH), never one of NEVER_PASSED_ENV.
 */
export function powershellChildEnv(base: NodeJS.ProcessEnv, passEnv: readonly string[] = []): NodeJS.ProcessEnv {
  const wanted = new Set([...POWERSHELL_ENV_ALLOWLIST, ...passEnv].map((name) => name.toLowerCase()));
  for (const name of NEVER_PASSED_ENV) wanted.delete(name.toLowerCase());
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) {
    if (value !== undefined && wanted.has(name.toLowerCase())) env[name] = value;
  }
  return env;
}

type ScriptEntry = (typeof powershellScripts)[PowershellScriptName];

function needsPassword(entry: ScriptEntry): boolean {
  return 'needsPassword' in entry && entry.needsPassword;
}

/** Only the table's parameters, every one present, each value one safe argv entry. */
function scriptArguments(name: PowershellScriptName, params: Readonly<Record<string, unknown>>): string[] {
  const allowed: readonly string[] = powershellScripts[name].params;
  const unknown = Object.keys(params).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new SetupError('POWERSHELL_FAILED', `The script ${name} has no parameter ${unknown.map((k) => `-${k}`).join(', ')}.`);
  }
  const args: string[] = [];
  for (const param of allowed) {
    const value = params[param];
    if (typeof value !== 'string' || value.length === 0) {
      throw new SetupError('POWERSHELL_FAILED', `The script ${name} needs a value for -${param}.`);
    }
    if (/[\0\r\n]/.test(value)) {
      throw new SetupError('POWERSHELL_FAILED', `The value of -${param} for ${name} contains a NUL or line break; it cannot be passed to PowerShell.`);
    }
    // powershell.exe -File binds an argument that starts with '-' as a parameter name, not a value.
    if (value.startsWith('-')) {
      throw new SetupError('POWERSHELL_FAILED', `The value of -${param} for ${name} starts with '-'; PowerShell would read it as a parameter name.`);
    }
    args.push(`-${param}`, value);
  }
  return args;
}

/** Replaces the password (and anything after a `-p`, as certutil would print it) so no excerpt can carry it. */
function redact(text: string, password: string | undefined): string {
  let out = password ? text.split(password).join(REDACTED) : text;
  out = out.replace(/(^|\s)(-p\s+)("[^"]*"|'[^']*'|\S+)/gi, `$1$2${REDACTED}`);
  return out;
}

function excerpt(text: string, password: string | undefined): string {
  const cleaned = redact(text, password).replace(/\s+/g, ' ').trim();
  return cleaned.length > STDERR_EXCERPT_CHARS ? `${cleaned.slice(0, STDERR_EXCERPT_CHARS)}…` : cleaned;
}

function lastNonEmptyLine(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]?.trim();
    if (line) return line;
  }
  return undefined;
}

/** Kills the child and everything it started (remoting sessions). */
function killTree(child: ChildProcess, logger: Logger): void {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (process.platform === 'win32') {
      const killer = spawn('taskkill', ['/pid', String(pid), '/T', '/F'], { shell: false, windowsHide: true, stdio: 'ignore' });
      killer.on('error', (error) => logger.warn({ err: error, pid }, 'taskkill failed'));
    } else {
      // The child leads its own process group (detached), so -pid reaches its children too.
      process.kill(-pid, 'SIGKILL');
    }
  } catch (error) {
    logger.debug({ err: error, pid }, 'could not kill the process group; killing the child');
    child.kill('SIGKILL');
  }
}

class Collector {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  add(chunk: Buffer): void {
    if (this.size >= MAX_STREAM_BYTES) {
      this.truncated = true;
      return;
    }
    const room = MAX_STREAM_BYTES - this.size;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutTruncated: boolean;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
}

export function createPowershellRunner(options: PowershellRunnerOptions): PowershellRunner {
  const scriptsDir = options.scriptsDir ?? DEFAULT_SCRIPTS_DIR;
  const childEnv = powershellChildEnv(options.env ?? process.env, options.passEnv);
  const logger = options.logger.child({ component: 'powershell' });

  async function run<N extends PowershellScriptName>(name: N, params: PowershellParams<N>, runOptions: PowershellRunOptions = {}): Promise<PowershellOutput<N>> {
    const entry: ScriptEntry | undefined = Object.hasOwn(powershellScripts, name) ? powershellScripts[name] : undefined;
    if (!entry) throw new SetupError('POWERSHELL_FAILED', `There is no PowerShell script named '${String(name)}'.`);
    const args = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', join(scriptsDir, `${name}.ps1`), ...scriptArguments(name, params)];
    const env: NodeJS.ProcessEnv = { ...childEnv };
    const password = needsPassword(entry) ? runOptions.pfxPassword : undefined;
    if (needsPassword(entry)) {
      // '' is a valid PFX password; only a missing one is refused.
      if (password === undefined) throw new SetupError('POWERSHELL_FAILED', `The script ${name} needs the PFX password.`, { hint: 'Set CERT_PFX_PASSWORD in the agent\'s environment.' });
      env[PFX_PASSWORD_ENV] = password;
    }
    const timeoutMs = runOptions.timeoutMs ?? options.timeoutMs;
    const signal = runOptions.signal;
    if (signal?.aborted) throw signal.reason;

    const started = Date.now();
    const finished = await new Promise<Finished>((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(options.executable, args, {
          shell: false,
          windowsHide: true,
          detached: process.platform !== 'win32',
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (error) {
        reject(startError(options.executable, error));
        return;
      }
      const stdout = new Collector();
      const stderr = new Collector();
      let timedOut = false;
      let aborted = false;
      let settled = false;
      const timer = setTimeout(() => {
        timedOut = true;
        killTree(child, logger);
      }, timeoutMs);
      const onAbort = (): void => {
        aborted = true;
        killTree(child, logger);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      child.stdout?.on('data', (chunk: Buffer) => stdout.add(chunk));
      child.stderr?.on('data', (chunk: Buffer) => stderr.add(chunk));
      child.once('error', (error) => {
        if (settled) return;
        cleanup();
        killTree(child, logger);
        reject(startError(options.executable, error));
      });
      child.once('close', (code, exitSignal) => {
        if (settled) return;
        cleanup();
        resolve({ code, signal: exitSignal, stdout: stdout.text(), stdoutTruncated: stdout.truncated, stderr: stderr.text(), timedOut, aborted });
      });
    });
    const durationMs = Date.now() - started;
    logger.info({ script: name, durationMs, exitCode: finished.code, signal: finished.signal, timedOut: finished.timedOut }, 'powershell script finished');

    if (finished.aborted) throw signal?.reason ?? new SetupError('POWERSHELL_FAILED', `The script ${name} was stopped.`);
    if (finished.timedOut) {
      throw new SetupError('POWERSHELL_TIMEOUT', `The PowerShell script ${name} did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped.`, {
        retryable: true,
        hint: 'Check that the server is reachable (WinRM) and not busy, or raise POWERSHELL_TIMEOUT_MS.',
        details: { script: name, durationMs },
      });
    }
    if (finished.code !== 0) {
      const detail = excerpt(finished.stderr, password) || excerpt(finished.stdout, password) || 'no error output';
      throw new SetupError('POWERSHELL_FAILED', `The PowerShell script ${name} failed (exit code ${finished.code ?? finished.signal ?? 'unknown'}): ${detail}`, {
        details: { script: name, exitCode: finished.code, durationMs },
      });
    }
    const line = lastNonEmptyLine(finished.stdout);
    if (line === undefined) throw invalidOutput(name, 'it printed nothing');
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw invalidOutput(name, `its last line is not JSON${finished.stdoutTruncated ? ' (the output was too long)' : ''}: ${excerpt(line, password).slice(0, 200)}`);
    }
    const parsed = entry.output.safeParse(json);
    if (!parsed.success) {
      throw invalidOutput(name, parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(result)'}: ${i.message}`).join('; '));
    }
    return parsed.data;
  }

  return { run };
}

function startError(executable: string, error: unknown): SetupError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return new SetupError('POWERSHELL_FAILED', `could not start ${executable}: set POWERSHELL to the PowerShell executable (${code ?? (error instanceof Error ? error.message : String(error))}).`, {
    cause: error,
    hint: 'Set POWERSHELL to powershell.exe (Windows PowerShell 5.1) or its full path.',
  });
}

function invalidOutput(name: string, why: string): SetupError {
  return new SetupError('POWERSHELL_FAILED', `The PowerShell script ${name} gave a result the agent cannot read: ${why}.`, {
    hint: 'Check that the agent\'s agent/adapters/powershell scripts are the ones shipped with this version.',
    details: { script: name },
  });
}

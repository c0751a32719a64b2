import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * PowerShell 7 for Linux (`pwsh`), which the tests run the agent's scripts under (against stand-ins
 * of the CRM snap-in, Exchange Online and Windows: test/support/powershell/). Found on PATH or as
 * the .NET global tool in ~/.dotnet/tools. 7.6.10 is pinned: 7.7.0 fails to install as a tool.
 * Missing pwsh fails the tests (never skips them) with the command that installs it; `.ci/run`
 * installs it.
 */
export const PWSH_VERSION = '7.6.10';
export const PWSH_INSTALL_COMMAND = `dotnet tool install --global PowerShell --version ${PWSH_VERSION}`;

export function findPwsh(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), join(homedir(), '.dotnet', 'tools')];
  return dirs.map((dir) => join(dir, 'pwsh')).find((path) => existsSync(path));
}

/** The pwsh executable, or an error that says how to install it. */
export function pwshExecutable(): string {
  const found = findPwsh();
  if (found === undefined) {
    throw new Error(
      `pwsh (PowerShell ${PWSH_VERSION}) is not installed: the tests run agent/adapters/powershell/*.ps1 under it. ` +
        `Install it with \`${PWSH_INSTALL_COMMAND}\` (needs the .NET SDK) and put ~/.dotnet/tools on PATH, or run .ci/run, which does both.`,
    );
  }
  return found;
}

export interface PwshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pwsh -NoProfile -NonInteractive -File <script> <args…>` (no shell, every argument its own argv entry). */
export function runPwshFile(script: string, args: readonly string[], timeoutMs = 60_000): Promise<PwshResult> {
  const executable = pwshExecutable();
  return new Promise((resolve, reject) => {
    execFile(
      executable,
      ['-NoProfile', '-NonInteractive', '-File', script, ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, POWERSHELL_TELEMETRY_OPTOUT: '1', POWERSHELL_UPDATECHECK: 'Off' } },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`pwsh ${script} did not finish: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}

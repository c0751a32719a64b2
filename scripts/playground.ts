import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * How to run the Microsoft 365 Agents Playground (npm `@microsoft/m365agentsplayground`, CLI
 * `agentsplayground` = `teamsapptester`), as read from its 0.2.28 CLI:
 * - `start -e <bot endpoint> -c msteams --disable-telemetry -p <port>`; the port defaults to 56150
 *   and silently falls back to a random one when taken, so read the port from its
 *   "Listening on <port>" line.
 * - `TEAMSAPPTESTER_BROWSER=none` keeps it from opening a browser.
 * - The config file is `M365_AGENTS_PLAYGROUND_CONFIG_PATH`, else `./.m365agentsplayground.yml`.
 * - Its log goes to `M365_AGENTS_PLAYGROUND_LOGFILE`, else `./devTools/m365agentsplayground.log`.
 * - It sends no auth header: the bot must run with authentication off.
 */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const playgroundConfigPath = resolve(repoRoot, '.m365agentsplayground.yml');
export const defaultPlaygroundPort = 56150;

export function playgroundCliPath(): string {
  return createRequire(import.meta.url).resolve('@microsoft/m365agentsplayground/cli.js');
}

export interface PlaygroundCommandOptions {
  /** The bot's messaging endpoint, e.g. http://localhost:3978/api/messages. */
  appEndpoint: string;
  port: number;
  configPath?: string;
  logFile: string;
  /** Let the Playground open the system browser (default false). */
  openBrowser?: boolean;
  baseEnv?: NodeJS.ProcessEnv;
}

export function playgroundCommand(options: PlaygroundCommandOptions): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = {
    ...(options.baseEnv ?? process.env),
    M365_AGENTS_PLAYGROUND_CONFIG_PATH: options.configPath ?? playgroundConfigPath,
    M365_AGENTS_PLAYGROUND_LOGFILE: options.logFile,
  };
  if (!options.openBrowser) env.TEAMSAPPTESTER_BROWSER = 'none';
  return {
    command: process.execPath,
    args: [
      playgroundCliPath(),
      'start',
      '-e',
      options.appEndpoint,
      '-c',
      'msteams',
      '--disable-telemetry',
      '-p',
      String(options.port),
    ],
    env,
  };
}

/** The port from the Playground's "Listening on 56150" line. */
export function parseListeningPort(line: string): number | undefined {
  const match = /Listening on (\d{1,5})\b/.exec(line);
  return match?.[1] ? Number(match[1]) : undefined;
}

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A set of named child processes started together and stopped together: their output merged into
 * one stream with a name prefix per line, an unexpected exit of any one reported once (so the
 * caller can stop the rest), and a stop that sends SIGTERM, waits, then SIGKILLs what is left.
 */
export interface ProcessSpec {
  name: string;
  command: string;
  args?: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Rewrites or drops (undefined) each output line before it is printed. */
  formatLine?: (line: string) => string | undefined;
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** Called for each output line (after formatting), e.g. to wait for a "ready" line. */
  onLine(listener: (line: string) => void): () => void;
}

export interface UnexpectedExit {
  name: string;
  code: number | string;
}

export interface ProcessGroupOptions {
  /** Where the prefixed lines go (default: process.stdout). */
  write?: (text: string) => void;
  /** How long stop() waits after SIGTERM before SIGKILL (default 8 s). */
  killAfterMs?: number;
  /** Called once, for the first process that exits while the group is not stopping. */
  onUnexpectedExit?: (exit: UnexpectedExit) => void;
}

const colors = [36, 33, 35, 32, 34, 91];

export class ProcessGroup {
  readonly #processes: ManagedProcess[] = [];
  readonly #write: (text: string) => void;
  readonly #killAfterMs: number;
  readonly #onUnexpectedExit: ((exit: UnexpectedExit) => void) | undefined;
  #stopping = false;
  #reported = false;
  #width = 6;

  constructor(options: ProcessGroupOptions = {}) {
    this.#write = options.write ?? ((text) => void process.stdout.write(text));
    this.#killAfterMs = options.killAfterMs ?? 8000;
    this.#onUnexpectedExit = options.onUnexpectedExit;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  get processes(): readonly ManagedProcess[] {
    return this.#processes;
  }

  /** Prints one line with the given name as prefix (the launcher's own messages use it too). */
  print(name: string, line: string): void {
    this.#width = Math.max(this.#width, name.length);
    const color = colors[hash(name) % colors.length] ?? 36;
    const useColor = process.stdout.isTTY === true && !process.env.NO_COLOR;
    const prefix = name.padEnd(this.#width);
    this.#write(`${useColor ? `\u001b[${color}m${prefix}\u001b[0m` : prefix} | ${line}\n`);
  }

  start(spec: ProcessSpec): ManagedProcess {
    if (this.#stopping) throw new Error(`cannot start ${spec.name}: the group is stopping`);
    const options: SpawnOptions = {
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so stop() can signal grandchildren too (npm → tsx → node).
      detached: process.platform !== 'win32',
    };
    if (spec.cwd !== undefined) options.cwd = spec.cwd;
    const child = spawn(spec.command, [...(spec.args ?? [])], options);
    const listeners = new Set<(line: string) => void>();
    const handle = (raw: string): void => {
      const line = spec.formatLine ? spec.formatLine(raw) : raw;
      if (line === undefined) return;
      this.print(spec.name, line);
      for (const listener of listeners) listener(line);
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on('line', handle);
    }
    const exited = new Promise<number | string>((resolve) => {
      child.once('error', (error) => {
        this.print(spec.name, `could not start: ${error.message}`);
        resolve(127);
      });
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    void exited.then((code) => {
      if (this.#stopping || this.#reported) return;
      this.#reported = true;
      this.#onUnexpectedExit?.({ name: spec.name, code });
    });
    const managed: ManagedProcess = {
      name: spec.name,
      child,
      exited,
      onLine(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    this.#processes.push(managed);
    return managed;
  }

  /** Stops every process (newest first): SIGTERM, wait, then SIGKILL for any that is left. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const running = [...this.#processes].reverse();
    await Promise.all(
      running.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        signal(p.child, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const killed = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), this.#killAfterMs);
        });
        const outcome = await Promise.race([p.exited, killed]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          this.print(p.name, `did not stop within ${this.#killAfterMs} ms: killing it`);
          signal(p.child, 'SIGKILL');
          await p.exited;
        }
      }),
    );
  }
}

/** Signals the child's whole process group when it has one (POSIX), else the child itself. */
function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (process.platform !== 'win32' && child.pid !== undefined) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    // Already gone.
  }
}

function hash(text: string): number {
  let h = 0;
  for (const ch of text) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return h;
}

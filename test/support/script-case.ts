import type { PowershellOutput, PowershellParams, PowershellScriptName } from '../../agent/adapters/powershell/scripts.ts';
import type { StandInState } from './powershell-standins.ts';

/** A stand-in call a case expects: the command and (toMatchObject) some of its recorded arguments. */
export interface ExpectedCall {
  command: string;
  args?: Record<string, unknown>;
}

/**
 * One run of a table script (agent/adapters/powershell/scripts.ts) under pwsh against the stand-ins, for
 * test/agent/adapters/powershell/run.test.ts: adding a case for a script is one entry in a
 * test/agent/script-cases/*.ts list.
 */
export interface ScriptCase<N extends PowershellScriptName> {
  /** What the case shows (the test's name). */
  name: string;
  script: N;
  /** The named parameters; a function receives the paths of `files`, written to a temp dir. */
  params: PowershellParams<N> | ((files: Readonly<Record<string, string>>) => PowershellParams<N>);
  state: StandInState;
  /** Environment variables for the script (null removes one). */
  env?: Readonly<Record<string, string | null>>;
  files?: Readonly<Record<string, Buffer>>;
  /** The result: the JSON the script prints (checked with the table's output schema), or the error it exits 1 with. */
  expect: { output: PowershellOutput<N> } | { error: RegExp };
  /** The recorded calls of the commands in `of`, in order, are exactly `are`. */
  calls?: { of: readonly string[]; are: readonly ExpectedCall[] };
}

export type AnyScriptCase = { [N in PowershellScriptName]: ScriptCase<N> }[PowershellScriptName];

type CaseParams = Readonly<Record<string, string>> | ((files: Readonly<Record<string, string>>) => Readonly<Record<string, string>>);

/** The case's named parameters, given the paths its files were written to. */
export function caseParams(scriptCase: AnyScriptCase, files: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const params: CaseParams = scriptCase.params;
  return typeof params === 'function' ? params(files) : params;
}

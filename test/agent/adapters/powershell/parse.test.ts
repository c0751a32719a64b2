import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SCRIPTS_DIR } from '../../../../agent/adapters/powershell/runner.ts';
import { powershellScripts, type PowershellScriptName } from '../../../../agent/adapters/powershell/scripts.ts';
import { parsePowershellFiles, type PowershellParseReport } from '../../../support/powershell-parse.ts';

/**
 * agent/adapters/powershell/*.ps1 as PowerShell's own parser reads them (one pwsh process for all files):
 * no parse errors, none of PowerShell 7's syntax (the CRM servers run Windows PowerShell 5.1), and
 * a param() block equal to the table in agent/adapters/powershell/scripts.ts.
 */
const scriptFiles = readdirSync(DEFAULT_SCRIPTS_DIR).filter((f) => f.endsWith('.ps1')).sort().map((f) => join(DEFAULT_SCRIPTS_DIR, f));
const fixture = (name: string): string => fileURLToPath(new URL(`../../../support/powershell/fixtures/${name}`, import.meta.url));
const names = Object.keys(powershellScripts) as PowershellScriptName[];

let reports: PowershellParseReport[] = [];
let fixtureReports: PowershellParseReport[] = [];

beforeAll(async () => {
  const all = await parsePowershellFiles([...scriptFiles, fixture('pwsh7-syntax.ps1'), fixture('parse-error.ps1')]);
  reports = all.slice(0, scriptFiles.length);
  fixtureReports = all.slice(scriptFiles.length);
});

function report(name: string): PowershellParseReport {
  const found = reports.find((r) => basename(r.file) === `${name}.ps1`);
  if (!found) throw new Error(`no parse report for ${name}.ps1`);
  return found;
}

const where = (file: string, items: ReadonlyArray<{ line: number; what?: string; message?: string }>): string[] =>
  items.map((i) => `${basename(file)}:${i.line} ${i.what ?? i.message ?? ''}`);

describe('agent/adapters/powershell/*.ps1 under PowerShell\'s parser', () => {
  it('reports every script file', () => {
    expect(reports.map((r) => basename(r.file))).toEqual(scriptFiles.map((f) => basename(f)));
  });

  it('parses every script without errors', () => {
    expect(reports.flatMap((r) => where(r.file, r.errors))).toEqual([]);
  });

  it('uses none of PowerShell 7\'s syntax (?? ??= ?. ?[ ternary && ||): Windows PowerShell 5.1 cannot parse it', () => {
    expect(reports.flatMap((r) => where(r.file, r.pwsh7Syntax))).toEqual([]);
  });

  it.each(names)('%s: [CmdletBinding()] param() has exactly the table\'s parameters, mandatory strings, in order', (name) => {
    const block = report(name).paramBlock;
    expect(block?.cmdletBinding).toBe(true);
    expect(block?.params.map((p) => p.name)).toEqual([...powershellScripts[name].params]);
    for (const p of block?.params ?? []) expect(p, `${name} -${p.name}`).toMatchObject({ type: 'string', mandatory: true });
  });
});

describe('the parse check itself', () => {
  it('finds each kind of PowerShell 7 syntax, with its line, in tokens, the AST and inside strings', () => {
    const [syntax] = fixtureReports;
    expect(syntax?.errors).toEqual([]);
    const found = (syntax?.pwsh7Syntax ?? []).map((s) => `${s.line} ${s.what.split(' (')[0] ?? ''}`);
    expect(found).toEqual(expect.arrayContaining([
      '5 token QuestionQuestion', '5 BinaryExpressionAst',
      '6 token QuestionQuestionEquals', '6 AssignmentStatementAst',
      '7 token QuestionDot', '7 MemberExpressionAst',
      '8 token QuestionLBracket', '8 IndexExpressionAst',
      '9 TernaryExpressionAst',
      '10 token AndAnd', '10 PipelineChainAst',
      '11 token OrOr', '11 PipelineChainAst',
      '12 token QuestionQuestion', '12 BinaryExpressionAst',
    ]));
    expect(found.filter((f) => /^(1|2|3|4|13) /.test(f))).toEqual([]);
  });

  it('reads the script\'s own param() block (attributes, patterns with commas and parentheses), not a nested one', () => {
    expect(fixtureReports[0]?.paramBlock).toEqual({
      cmdletBinding: true,
      params: [
        { name: 'A', type: 'string', mandatory: true },
        { name: 'B', type: 'int', mandatory: false },
      ],
    });
  });

  it('reports a parse error with its line', () => {
    const errors = fixtureReports[1]?.errors ?? [];
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]?.message).toMatch(/\}/);
  });
});

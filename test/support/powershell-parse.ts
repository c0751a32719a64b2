import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { runPwshFile } from './pwsh.ts';

const PARSE_SCRIPT = fileURLToPath(new URL('./powershell/parse-scripts.ps1', import.meta.url));

const reportSchema = z.object({
  file: z.string(),
  errors: z.array(z.object({ line: z.number().int(), message: z.string() })),
  pwsh7Syntax: z.array(z.object({ line: z.number().int(), what: z.string() })),
  paramBlock: z
    .object({
      cmdletBinding: z.boolean(),
      params: z.array(z.object({ name: z.string(), type: z.string().nullable(), mandatory: z.boolean() })),
    })
    .nullable(),
});

/** What PowerShell's own parser says about one .ps1 file (test/support/powershell/parse-scripts.ps1). */
export type PowershellParseReport = z.infer<typeof reportSchema>;

/**
 * Parses the files with [System.Management.Automation.Language.Parser]::ParseFile, all in one pwsh
 * process: parse errors, PowerShell-7-only syntax (from the tokens and the AST, not the text) and
 * the script's own param() block.
 */
export async function parsePowershellFiles(files: readonly string[]): Promise<PowershellParseReport[]> {
  const result = await runPwshFile(PARSE_SCRIPT, files);
  if (result.code !== 0) throw new Error(`parse-scripts.ps1 failed (exit ${result.code}): ${result.stderr}`);
  return z.array(reportSchema).parse(JSON.parse(result.stdout));
}

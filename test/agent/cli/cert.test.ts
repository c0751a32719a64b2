import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main, type CertCliFs } from '../../../agent/cli/cert.ts';
import { makeEvaluationPfx } from '../../../agent/certkit/evaluation-pfx.ts';
import { certSummarySchema } from '../../../jobs/cert-types.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PASSWORD = 'cli-Secret-4711';
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

let dir: string;
let goodPfx: string;
let goodThumbprint: string;
let expiredPfx: string;
let soonPfx: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cert-cli-'));
  const good = makeEvaluationPfx({ subject: 'CN=crm-s2s.contoso.com, O=Contoso', days: 365, password: PASSWORD, now: NOW });
  goodPfx = join(dir, 'good.pfx');
  writeFileSync(goodPfx, good.pfx);
  goodThumbprint = good.thumbprint;
  expiredPfx = join(dir, 'expired.pfx');
  writeFileSync(expiredPfx, makeEvaluationPfx({ subject: 'CN=old', days: -3, password: PASSWORD, now: NOW }).pfx);
  soonPfx = join(dir, 'soon.pfx');
  writeFileSync(soonPfx, makeEvaluationPfx({ subject: 'CN=soon', days: 10, password: PASSWORD, now: NOW }).pfx);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function cli(argv: string[], env: Record<string, string> = { PFX_PASSWORD: PASSWORD }, fs?: CertCliFs) {
  let stdout = '';
  let stderr = '';
  const code = await main({ argv, env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), now: () => NOW, ...(fs ? { fs } : {}) });
  return { code, stdout, stderr, all: stdout + stderr };
}

describe('npm run cert -- inspect', () => {
  it('--json prints exactly one JSON object, the CertSummary, and exits 0 for a good PFX', async () => {
    const run = await cli(['inspect', goodPfx, '--password-env', 'PFX_PASSWORD', '--json']);
    expect(run.code).toBe(EXIT_OK);
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const summary = certSummarySchema.parse(JSON.parse(run.stdout));
    expect(summary).toMatchObject({ thumbprint: goodThumbprint, subject: 'CN=crm-s2s.contoso.com, O=Contoso', keySize: 2048, keySpec: 1 });
    expect(summary.notBefore).toMatch(/^\d{4}-/);
    expect(summary.notAfter).toMatch(/^2027-01-15T/);
    expect(summary.problems.map((p) => p.code)).toEqual(['SELF_SIGNED']);
    expect(run.all).not.toContain(PASSWORD);
  });

  it('prints a readable block with the problems and their fixes', async () => {
    const run = await cli(['inspect', goodPfx, '--password-env', 'PFX_PASSWORD']);
    expect(run.code).toBe(EXIT_OK);
    expect(run.stdout).toContain(`Thumbprint    ${goodThumbprint}`);
    expect(run.stdout).toContain('KeySpec 1 (AT_KEYEXCHANGE)');
    expect(run.stdout).toContain('365 days left');
    expect(run.stdout).toMatch(/warning SELF_SIGNED: .*\n\s+Fix: .*trusted certification authority/);
    expect(run.all).not.toContain(PASSWORD);
  });

  it('exits 1 when the certificate has an error-severity problem, and shows it', async () => {
    const human = await cli(['inspect', expiredPfx, '--password-env', 'PFX_PASSWORD']);
    expect(human.code).toBe(EXIT_PROBLEMS);
    expect(human.stdout).toMatch(/ERROR\s+EXPIRED: The certificate expired on/);
    expect(human.stdout).toContain('expired 3 days ago');
    const json = await cli(['inspect', expiredPfx, '--password-env', 'PFX_PASSWORD', '--json']);
    expect(json.code).toBe(EXIT_PROBLEMS);
    expect(certSummarySchema.parse(JSON.parse(json.stdout)).problems.some((p) => p.code === 'EXPIRED' && p.severity === 'error')).toBe(true);
  });

  it('--min-days decides EXPIRES_SOON (default 30)', async () => {
    expect((await cli(['inspect', soonPfx, '--password-env', 'PFX_PASSWORD'])).code).toBe(EXIT_PROBLEMS);
    expect((await cli(['inspect', soonPfx, '--password-env', 'PFX_PASSWORD', '--min-days', '5'])).code).toBe(EXIT_OK);
    expect((await cli(['inspect', soonPfx, '--password-env', 'PFX_PASSWORD', '--min-days', 'soon'])).code).toBe(EXIT_USAGE);
  });

  it('a wrong or missing password exits 2 with what to do, never printing the password', async () => {
    const wrong = await cli(['inspect', goodPfx, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: 'wrong-Secret-0815' });
    expect(wrong.code).toBe(EXIT_USAGE);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/The password for good\.pfx is wrong/);
    expect(wrong.all).not.toContain('wrong-Secret-0815');
    const unset = await cli(['inspect', goodPfx, '--password-env', 'NOT_THERE'], {});
    expect(unset.code).toBe(EXIT_USAGE);
    expect(unset.stderr).toContain('The environment variable NOT_THERE is not set');
    const mistaken = await cli(['inspect', goodPfx, '--password-env', 'cliSecret4711'], {});
    expect(mistaken.code).toBe(EXIT_USAGE);
    expect(mistaken.stderr).toContain('The environment variable named by --password-env');
    expect(mistaken.all).not.toContain('cliSecret4711');
    const none = await cli(['inspect', goodPfx], {});
    expect(none.code).toBe(EXIT_USAGE);
    expect(none.stderr).toMatch(/none was given/);
  });

  it('refuses a password on the command line in any spelling, without echoing it', async () => {
    for (const argv of [
      ['inspect', goodPfx, '--password', PASSWORD],
      ['inspect', goodPfx, `--password=${PASSWORD}`],
      ['inspect', goodPfx, '-p', PASSWORD],
      ['new', '--subject', 'CN=x', '--days', '30', '--out', join(dir, 'x.pfx'), '--passout', PASSWORD],
    ]) {
      const run = await cli(argv);
      expect(run.code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(run.stderr, argv.join(' ')).toMatch(/is refused: a password on the command line/);
      expect(run.all, argv.join(' ')).not.toContain(PASSWORD);
    }
    const unknown = await cli(['inspect', goodPfx, `--secret=${PASSWORD}`]);
    expect(unknown.code).toBe(EXIT_USAGE);
    expect(unknown.all).not.toContain(PASSWORD);
  });

  it('usage errors, missing files and non-certificates exit 2 with a message', async () => {
    const notCert = join(dir, 'notes.pfx');
    writeFileSync(notCert, 'not a certificate');
    const cases: [string[], RegExp][] = [
      [[], /Give a command: inspect or new/],
      [['frobnicate'], /Unknown command "frobnicate"/],
      [['inspect'], /inspect takes exactly one file/],
      [['inspect', goodPfx, '--days', '3'], /--days belongs to "new"/],
      [['inspect', join(dir, 'missing.pfx')], /Cannot read .*missing\.pfx: there is no such file/],
      [['inspect', notCert], /notes\.pfx is not a certificate/],
    ];
    for (const [argv, message] of cases) {
      const run = await cli(argv);
      expect(run.code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(run.stderr, argv.join(' ')).toMatch(message);
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(EXIT_OK);
    expect(help.stdout).toContain('npm run cert -- inspect <file>');
  });
});

describe('npm run cert -- new', () => {
  it('writes a 0600 PFX, prints thumbprint and path, and refuses to overwrite it without --force', async () => {
    const out = join(dir, 'eval.pfx');
    const made = await cli(['new', '--subject', 'CN=crm-s2s.contoso.com, O=Contoso', '--days', '90', '--out', out, '--password-env', 'PFX_PASSWORD']);
    expect(made.code).toBe(EXIT_OK);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const thumbprint = /Thumbprint\s+([0-9A-F]{40})/.exec(made.stdout)?.[1];
    expect(made.stdout).toContain(`Wrote ${out}`);
    expect(made.all).not.toContain(PASSWORD);

    const inspected = await cli(['inspect', out, '--password-env', 'PFX_PASSWORD', '--json']);
    expect(inspected.code).toBe(EXIT_OK);
    const summary = certSummarySchema.parse(JSON.parse(inspected.stdout));
    expect(summary.thumbprint).toBe(thumbprint);
    expect(summary.keySpec).toBe(1);
    expect(summary.notAfter).toBe(new Date(NOW + 90 * 86_400_000).toISOString());

    const before = readFileSync(out);
    const again = await cli(['new', '--subject', 'CN=other', '--days', '90', '--out', out, '--password-env', 'PFX_PASSWORD']);
    expect(again.code).toBe(EXIT_USAGE);
    expect(again.stderr).toMatch(/exists already; nothing was written.*--force/);
    expect(readFileSync(out).equals(before)).toBe(true);

    const forced = await cli(['new', '--subject', 'CN=other', '--days', '90', '--out', out, '--password-env', 'PFX_PASSWORD', '--force', '--json']);
    expect(forced.code).toBe(EXIT_OK);
    const written = JSON.parse(forced.stdout) as { thumbprint: string; path: string };
    expect(written.path).toBe(out);
    expect(written.thumbprint).not.toBe(thumbprint);
    expect(readFileSync(out).equals(before)).toBe(false);
    expect(statSync(out).mode & 0o777).toBe(0o600);
  });

  it('goes through the injected file system and asks for mode 0600', async () => {
    const writes: { path: string; mode: number; size: number }[] = [];
    const fs: CertCliFs = {
      readFile: () => Promise.reject(Object.assign(new Error('no'), { code: 'ENOENT' })),
      writeNewFile: (path, data, mode) => {
        writes.push({ path, mode, size: data.length });
        return Promise.resolve();
      },
      remove: () => Promise.resolve(),
    };
    const run = await cli(['new', '--subject', 'CN=mem', '--days', '30', '--out', 'mem.pfx', '--password-env', 'PFX_PASSWORD', '--legacy'], { PFX_PASSWORD: PASSWORD }, fs);
    expect(run.code).toBe(EXIT_OK);
    expect(writes).toEqual([{ path: 'mem.pfx', mode: 0o600, size: expect.any(Number) as number }]);
    expect(writes[0]?.size).toBeGreaterThan(1000);
  });

  it('refuses keys below 2048 bits, a missing password variable and missing options', async () => {
    const out = join(dir, 'small.pfx');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['new', '--subject', 'CN=x', '--days', '30', '--out', out, '--password-env', 'PFX_PASSWORD', '--key-size', '1024'], { PFX_PASSWORD: PASSWORD }, /AADSTS700027/],
      [['new', '--subject', 'CN=x', '--days', '30', '--out', out], { PFX_PASSWORD: PASSWORD }, /needs --password-env NAME/],
      [['new', '--subject', 'CN=x', '--days', '30', '--out', out, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: '' }, /PFX_PASSWORD is not set \(it is empty\)/],
      [['new', '--days', '30', '--out', out, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: PASSWORD }, /needs --subject/],
      [['new', '--subject', 'CN=x', '--out', out, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: PASSWORD }, /needs --days/],
      [['new', '--subject', 'no equals sign', '--days', '30', '--out', out, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: PASSWORD }, /is not a distinguished name/],
    ];
    for (const [argv, env, message] of cases) {
      const run = await cli(argv, env);
      expect(run.code, argv.join(' ')).toBe(EXIT_USAGE);
      expect(run.stderr, argv.join(' ')).toMatch(message);
    }
    expect(() => statSync(out)).toThrow();
  });
});

describe('the real command line', () => {
  it('npx tsx agent/cli/cert.ts inspect --json: one JSON object on stdout, exit 0; --password: exit 2', () => {
    // The process uses the real clock: a certificate valid from now.
    const current = makeEvaluationPfx({ subject: 'CN=now', days: 100, password: PASSWORD });
    const file = join(dir, 'now.pfx');
    writeFileSync(file, current.pfx);
    const env = { ...process.env, CLI_TEST_PFX_PASSWORD: PASSWORD };
    const run = spawnSync('npx', ['tsx', 'agent/cli/cert.ts', 'inspect', file, '--password-env', 'CLI_TEST_PFX_PASSWORD', '--json'], { cwd: ROOT, env, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    expect(certSummarySchema.parse(JSON.parse(run.stdout)).thumbprint).toBe(current.thumbprint);

    const refused = spawnSync('npx', ['tsx', 'agent/cli/cert.ts', 'inspect', goodPfx, '--password', PASSWORD], { cwd: ROOT, env, encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('--password is refused');
    expect(`${refused.stdout}${refused.stderr}`).not.toContain(PASSWORD);
  });
});

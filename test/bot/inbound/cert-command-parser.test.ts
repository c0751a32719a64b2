import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../../bot/inbound/command-parser.ts';
import { helpCard } from '../../../bot/cards/common/help-card.ts';

describe('certificate commands', () => {
  it('parses cert status, cert rotate with and without a file, and cert watch here (words case-insensitive)', () => {
    expect(parseCommand('cert status')).toEqual({ ok: true, command: { kind: 'cert-status' } });
    expect(parseCommand('<at>setup</at> CERT Status')).toEqual({ ok: true, command: { kind: 'cert-status' } });
    expect(parseCommand('cert rotate')).toEqual({ ok: true, command: { kind: 'cert-rotate' } });
    expect(parseCommand('cert rotate S2S-2026.pfx')).toEqual({ ok: true, command: { kind: 'cert-rotate', file: 'S2S-2026.pfx' } });
    expect(parseCommand('cert rotate s2s.p12')).toEqual({ ok: true, command: { kind: 'cert-rotate', file: 's2s.p12' } });
    expect(parseCommand('cert watch here')).toEqual({ ok: true, command: { kind: 'cert-watch-here' } });
  });

  it.each(['../x.pfx', 'C:\\certs\\s2s.pfx', 's2s.cer', 'a b.pfx', '.hidden.pfx', `${'a'.repeat(120)}.pfx`, "x.pfx' ; Remove-Item"])('refuses the file name %j with what a valid name is and where the file must be', (file) => {
    const parsed = parseCommand(`cert rotate ${file}`);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.code).toBe('CERT_FILE_INVALID');
    expect(parsed.message).toContain('plain file name');
    expect(parsed.message).toContain("agent's CERT_DIR");
  });

  it.each(['cert', 'cert rotate-now', 'cert status now', 'cert watch', 'cert watch there', 'cert frobnicate'])('answers %j with the certificate command forms', (text) => {
    const parsed = parseCommand(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.code).toBe('COMMAND_INVALID');
    expect(parsed.message).toContain('`cert rotate [file.pfx]`');
    expect(parsed.message).toContain('`cert watch here`');
  });

  it('the help card lists the certificate commands', () => {
    const text = JSON.stringify(helpCard());
    expect(text).toContain('`cert status`');
    expect(text).toContain('`cert rotate [file.pfx]`');
    expect(text).toContain('`cert watch here`');
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCertificateFile, subjectDerBase64, summarizeDer, type ReadCertificateOptions } from '../../../agent/certkit/kit.ts';
import { makeEvaluationPfx, type EvaluationPfxOptions } from '../../../agent/certkit/evaluation-pfx.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { certSummarySchema, type CertSummary } from '../../../jobs/cert-types.ts';

const OPENSSL = '/usr/bin/openssl';
const hasOpenssl = existsSync(OPENSSL);
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const PASSWORD = 'Pässwörd-für-S2S!';
const DAY = 86_400_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cert-kit-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function openssl(args: string[], env: Record<string, string> = {}): string {
  return execFileSync(OPENSSL, args, { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `openssl pkcs12 -info` prints the MAC and encryption lines on stderr, the bags on stdout. */
function opensslInfo(args: string[], env: Record<string, string>): string {
  const run = spawnSync(OPENSSL, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  expect(run.status, run.stderr).toBe(0);
  return `${run.stderr}${run.stdout}`;
}

function file(name: string, content: Buffer | string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function make(options: Partial<EvaluationPfxOptions> = {}) {
  return makeEvaluationPfx({ subject: 'CN=crm-s2s.contoso.com, O=Contoso, C=US', days: 365, password: PASSWORD, now: NOW, ...options });
}

function read(bytes: Buffer, options: Partial<ReadCertificateOptions> = {}) {
  return readCertificateFile(bytes, { fileName: 's2s.pfx', password: PASSWORD, now: NOW, minDaysLeft: 30, ...options });
}

const codes = (summary: CertSummary) => summary.problems.map((p) => p.code).sort();
const errors = (summary: CertSummary) => summary.problems.filter((p) => p.severity === 'error').map((p) => p.code).sort();

function thrown(run: () => unknown): SetupError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SetupError);
    return error as SetupError;
  }
  throw new Error('expected a SetupError');
}

describe('makeEvaluationPfx + readCertificateFile', () => {
  const good = make();

  it('a good evaluation PFX: no error, KeySpec 1, private key, the facts of the certificate', () => {
    const info = read(good.pfx);
    const s = info.summary;
    expect(certSummarySchema.parse(s)).toEqual(s);
    expect(info.format).toBe('pfx');
    expect(errors(s)).toEqual([]);
    expect(codes(s)).toEqual(['SELF_SIGNED']);
    expect(s.problems[0]?.severity).toBe('warning');
    expect(s.thumbprint).toBe(good.thumbprint);
    expect(s.subject).toBe('CN=crm-s2s.contoso.com, O=Contoso, C=US');
    expect(s.issuer).toBe(s.subject);
    expect(s.selfSigned).toBe(true);
    expect(s.keySpec).toBe(1);
    expect(s.hasPrivateKey).toBe(true);
    expect(s.keyAlgorithm).toBe('RSA');
    expect(s.keySize).toBe(2048);
    expect(s.signatureHash).toBe('SHA-256');
    expect(s.keyUsage).toEqual(['digitalSignature', 'keyEncipherment', 'dataEncipherment']);
    expect(s.extendedKeyUsage).toEqual(['serverAuth', 'clientAuth']);
    expect(Date.parse(s.notAfter)).toBe(Math.floor((NOW + 365 * DAY) / 1000) * 1000);
    expect(Date.parse(s.notBefore)).toBeLessThan(NOW);
    expect(s.serialNumber).toMatch(/^[0-9A-F]{32}$/);
    expect(info.certPem.replace(/\r/g, '')).toBe(good.certPem.replace(/\r/g, ''));
  });

  it.runIf(hasOpenssl)('the thumbprint is what openssl computes, and the DER is the certificate openssl sees', () => {
    const pem = file('good.pem', good.certPem);
    const fingerprint = openssl(['x509', '-in', pem, '-noout', '-fingerprint', '-sha1']).trim().replace(/^.*=/, '').replace(/:/g, '');
    expect(fingerprint).toBe(good.thumbprint);
    expect(read(good.pfx).derBase64).toBe(execFileSync(OPENSSL, ['x509', '-in', pem, '-outform', 'DER']).toString('base64'));
  });

  it.runIf(hasOpenssl)('openssl reads the PFX (AES-256/PBKDF2, SHA-256 MAC) and shows the key bag attributes Windows uses', () => {
    const pfx = file('good.pfx', good.pfx);
    const info = opensslInfo(['pkcs12', '-info', '-in', pfx, '-passin', 'env:PFX_PW', '-nocerts', '-noenc'], { PFX_PW: PASSWORD });
    expect(info).toContain('MAC: sha256');
    expect(info).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, .*hmacWithSHA256/);
    expect(info).toContain('Microsoft CSP Name: Microsoft Enhanced RSA and AES Cryptographic Provider');
    expect(info).toContain('Microsoft Local Key set: <No Values>');
    expect(info).toContain('friendlyName: crm-s2s.contoso.com');
    expect(info).toMatch(/localKeyID: (?:[0-9A-F]{2} ){20}/);
    // The same key-usage attribute `openssl pkcs12 -export -keyex` writes (0x10), among the key attributes.
    expect(info).toMatch(/Key Attributes\s+X509v3 Key Usage: 10/);
    // The key in the PFX is the certificate's.
    const keyModulus = openssl(['pkcs12', '-in', pfx, '-passin', 'env:PFX_PW', '-nocerts', '-noenc'], { PFX_PW: PASSWORD });
    const certModulus = openssl(['x509', '-in', file('good-cert.pem', good.certPem), '-noout', '-modulus']);
    expect(openssl(['rsa', '-in', file('good-key.pem', keyModulus), '-noout', '-modulus'])).toBe(certModulus);
  });

  it.runIf(hasOpenssl)('a legacy (TripleDES, SHA-1 MAC) PFX for Windows Server 2016 reads the same', () => {
    const legacy = make({ encryption: 'legacy' });
    const info = opensslInfo(['pkcs12', '-info', '-in', file('legacy.pfx', legacy.pfx), '-passin', 'env:PFX_PW', '-nokeys', '-noenc'], { PFX_PW: PASSWORD });
    expect(info).toContain('MAC: sha1');
    expect(info).toContain('pbeWithSHA1And3-KeyTripleDES-CBC');
    const s = read(legacy.pfx).summary;
    expect(s.thumbprint).toBe(legacy.thumbprint);
    expect(s.keySpec).toBe(1);
    expect(errors(s)).toEqual([]);
  });

  it('an expired certificate: EXPIRED', () => {
    const s = read(make({ days: -1 }).pfx).summary;
    expect(errors(s)).toEqual(['EXPIRED']);
    expect(s.problems.find((p) => p.code === 'EXPIRED')?.fix).toMatch(/new certificate/);
  });

  it('a certificate valid for fewer than minDaysLeft days: EXPIRES_SOON (an error for a new certificate)', () => {
    const made = make({ days: 10 });
    expect(errors(read(made.pfx, { minDaysLeft: 30 }).summary)).toEqual(['EXPIRES_SOON']);
    expect(errors(read(made.pfx, { minDaysLeft: 5 }).summary)).toEqual([]);
    expect(read(made.pfx, { minDaysLeft: 30, expiresSoonSeverity: 'warning' }).summary.problems.find((p) => p.code === 'EXPIRES_SOON')?.severity).toBe('warning');
  });

  it('a certificate not valid yet: NOT_YET_VALID', () => {
    const s = read(make({ notBefore: new Date(NOW + 2 * DAY), days: 400 }).pfx).summary;
    expect(errors(s)).toEqual(['NOT_YET_VALID']);
  });

  it('a 1024-bit key: KEY_TOO_SMALL naming AADSTS700027', () => {
    const s = read(make({ keySize: 1024 }).pfx).summary;
    expect(s.keySize).toBe(1024);
    expect(errors(s)).toEqual(['KEY_TOO_SMALL']);
    expect(s.problems.find((p) => p.code === 'KEY_TOO_SMALL')?.message).toContain('AADSTS700027');
  });

  it('a SHA-1 signature: WEAK_SIGNATURE', () => {
    const s = read(make({ signatureHash: 'sha1' }).pfx).summary;
    expect(s.signatureHash).toBe('SHA-1');
    expect(errors(s)).toEqual(['WEAK_SIGNATURE']);
  });

  it('a wrong password: CERT_PASSWORD_WRONG naming the file, never the password', () => {
    const e = thrown(() => read(good.pfx, { password: 'Passwort-falsch' }));
    expect(e.code).toBe('CERT_PASSWORD_WRONG');
    expect(e.message).toContain('s2s.pfx');
    expect(`${e.message} ${e.hint ?? ''}`).not.toContain('Passwort-falsch');
    expect(`${e.message} ${e.hint ?? ''}`).not.toContain(PASSWORD);
    const missing = thrown(() => readCertificateFile(good.pfx, { fileName: 'new.pfx', now: NOW, minDaysLeft: 30 }));
    expect(missing.code).toBe('CERT_PASSWORD_WRONG');
    expect(missing.message).toMatch(/new\.pfx.*none was given/);
  });

  it('a key marked for signatures only (the -keysig attribute): KeySpec 2 and KEYSPEC_NOT_EXCHANGE with the certutil fix', () => {
    const s = read(make({ keySpec: 'signature' }).pfx).summary;
    expect(s.keySpec).toBe(2);
    expect(errors(s)).toEqual(['KEYSPEC_NOT_EXCHANGE']);
    const problem = s.problems.find((p) => p.code === 'KEYSPEC_NOT_EXCHANGE');
    expect(problem?.fix).toContain('certutil -importpfx <file> AT_KEYEXCHANGE');
    expect(problem?.fix).toContain('-keyex -CSP "Microsoft Enhanced RSA and AES Cryptographic Provider" -LMK');
  });

  it('a CNG provider on the key bag gives KeySpec 0; no attributes at all gives Windows\' default KeySpec 1', () => {
    const cng = read(make({ keySpec: 'cng' }).pfx).summary;
    expect(cng.keySpec).toBe(0);
    expect(errors(cng)).toEqual(['KEYSPEC_NOT_EXCHANGE']);
    const none = read(make({ keySpec: 'none' }).pfx).summary;
    expect(none.keySpec).toBe(1);
    expect(errors(none)).toEqual([]);
  });

  it('a PFX without the private key: NO_PRIVATE_KEY (unless the caller does not need one)', () => {
    const made = make({ includePrivateKey: false });
    const s = read(made.pfx).summary;
    expect(s.hasPrivateKey).toBe(false);
    expect(s.keySpec).toBeNull();
    expect(s.thumbprint).toBe(made.thumbprint);
    expect(errors(s)).toEqual(['NO_PRIVATE_KEY']);
    expect(errors(read(made.pfx, { requirePrivateKey: false }).summary)).toEqual([]);
  });

  it('a private key that is not the certificate\'s: KEY_MISMATCH', () => {
    const made = make({ mismatchedKey: true });
    const s = read(made.pfx).summary;
    expect(s.thumbprint).toBe(made.thumbprint);
    expect(s.hasPrivateKey).toBe(true);
    expect(errors(s)).toEqual(['KEY_MISMATCH']);
  });

  it.runIf(hasOpenssl)('a DER (.cer) certificate: format der, KeySpec null, no private key required', () => {
    const der = execFileSync(OPENSSL, ['x509', '-in', file('der-src.pem', good.certPem), '-outform', 'DER']);
    const info = readCertificateFile(der, { fileName: 's2s.cer', now: NOW, minDaysLeft: 30 });
    expect(info.format).toBe('der');
    expect(info.summary.thumbprint).toBe(good.thumbprint);
    expect(info.summary.keySpec).toBeNull();
    expect(info.summary.hasPrivateKey).toBe(false);
    expect(errors(info.summary)).toEqual([]);
    expect(info.derBase64).toBe(der.toString('base64'));
  });

  it.runIf(hasOpenssl)('PEM: a certificate alone, with its key, with another key, with an encrypted key', () => {
    const alone = readCertificateFile(Buffer.from(good.certPem), { fileName: 's2s.pem', now: NOW, minDaysLeft: 30 });
    expect(alone.format).toBe('pem');
    expect(alone.summary.thumbprint).toBe(good.thumbprint);
    expect(errors(alone.summary)).toEqual([]);

    const keyPem = openssl(['pkcs12', '-in', file('pem-src.pfx', good.pfx), '-passin', 'env:PFX_PW', '-nocerts', '-noenc'], { PFX_PW: PASSWORD });
    const withKey = readCertificateFile(Buffer.from(`${good.certPem}\n${keyPem}`), { fileName: 's2s.pem', now: NOW, minDaysLeft: 30 });
    expect(withKey.summary.hasPrivateKey).toBe(true);
    expect(withKey.summary.keySpec).toBeNull();
    expect(errors(withKey.summary)).toEqual([]);

    const otherKey = openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
    expect(errors(readCertificateFile(Buffer.from(`${good.certPem}${otherKey}`), { fileName: 's2s.pem', now: NOW, minDaysLeft: 30 }).summary)).toEqual(['KEY_MISMATCH']);

    const encrypted = openssl(['pkcs8', '-topk8', '-in', file('plain-key.pem', keyPem), '-passout', 'env:KEY_PW', '-v2', 'aes-256-cbc'], { KEY_PW: 'key-secret' });
    const bundle = Buffer.from(`${good.certPem}${encrypted}`);
    expect(readCertificateFile(bundle, { fileName: 's2s.pem', password: 'key-secret', now: NOW, minDaysLeft: 30 }).summary.hasPrivateKey).toBe(true);
    const e = thrown(() => readCertificateFile(bundle, { fileName: 's2s.pem', password: 'not-it', now: NOW, minDaysLeft: 30 }));
    expect(e.code).toBe('CERT_PASSWORD_WRONG');
    expect(e.message).not.toContain('not-it');
  });

  it('not a certificate at all: CERT_INVALID naming the file and saying what to give', () => {
    for (const [name, bytes] of [
      ['notes.pfx', Buffer.from('these are not the certificates you are looking for\n')],
      ['empty.cer', Buffer.alloc(0)],
      ['config.json', Buffer.from(JSON.stringify({ thumbprint: good.thumbprint }))],
      ['random.p12', Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 37 + 11) % 256))],
      ['key-only.pem', Buffer.from('-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n')],
    ] as const) {
      const e = thrown(() => readCertificateFile(bytes, { fileName: name, password: PASSWORD, now: NOW, minDaysLeft: 30 }));
      expect(e.code, name).toBe('CERT_INVALID');
      expect(e.message, name).toContain(name);
      expect(e.hint, name).toMatch(/\.pfx/);
    }
  });

  it('summarizeDer: the registered public certificate, no key facts, EXPIRES_SOON only a warning', () => {
    const soon = make({ days: 10 });
    const der = Buffer.from(soon.certPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').toString('base64');
    const s = summarizeDer(der, { now: NOW, minDaysLeft: 30 });
    expect(s.thumbprint).toBe(soon.thumbprint);
    expect(s.keySpec).toBeNull();
    expect(s.hasPrivateKey).toBe(false);
    expect(codes(s)).toEqual(['EXPIRES_SOON', 'SELF_SIGNED']);
    expect(errors(s)).toEqual([]);
    expect(thrown(() => summarizeDer(Buffer.from('nope').toString('base64'), { now: NOW, minDaysLeft: 30 })).code).toBe('CERT_INVALID');
  });
});

describe.runIf(hasOpenssl)('PFX files made by openssl', () => {
  let keyPem: string;
  let certPem: string;
  let thumbprint: string;
  beforeAll(() => {
    keyPem = file('ossl-key.pem', '');
    certPem = file('ossl-cert.pem', '');
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-keyout', keyPem, '-out', certPem, '-subj', '/C=US/O=Contoso/CN=crm-s2s.contoso.com', '-days', '400',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment']);
    thumbprint = openssl(['x509', '-in', certPem, '-noout', '-fingerprint', '-sha1']).trim().replace(/^.*=/, '').replace(/:/g, '');
  });

  const exportPfx = (name: string, extra: string[]) => {
    const out = join(dir, name);
    openssl(['pkcs12', '-export', '-inkey', keyPem, '-in', certPem, '-out', out, '-passout', 'env:PFX_PW', ...extra], { PFX_PW: PASSWORD });
    return readFileSync(out);
  };
  const now = () => Date.now();

  it('-keyex -CSP "Microsoft Enhanced RSA and AES Cryptographic Provider" -LMK reads as KeySpec 1', () => {
    const s = readCertificateFile(exportPfx('keyex.pfx', ['-keyex', '-CSP', 'Microsoft Enhanced RSA and AES Cryptographic Provider', '-LMK']), { fileName: 'keyex.pfx', password: PASSWORD, now: now(), minDaysLeft: 30 }).summary;
    expect(s.keySpec).toBe(1);
    expect(s.thumbprint).toBe(thumbprint);
    expect(s.subject).toBe('CN=crm-s2s.contoso.com, O=Contoso, C=US');
    expect(errors(s)).toEqual([]);
  });

  it('a PFX exported with an empty password opens without one', () => {
    const out = join(dir, 'empty-pw.pfx');
    openssl(['pkcs12', '-export', '-inkey', keyPem, '-in', certPem, '-out', out, '-passout', 'pass:']);
    const s = readCertificateFile(readFileSync(out), { fileName: 'empty-pw.pfx', now: now(), minDaysLeft: 30 }).summary;
    expect(s.thumbprint).toBe(thumbprint);
    expect(s.hasPrivateKey).toBe(true);
  });

  it('-keysig reads as KeySpec 2 (KEYSPEC_NOT_EXCHANGE)', () => {
    const s = readCertificateFile(exportPfx('keysig.pfx', ['-keysig']), { fileName: 'keysig.pfx', password: PASSWORD, now: now(), minDaysLeft: 30 }).summary;
    expect(s.keySpec).toBe(2);
    expect(errors(s)).toEqual(['KEYSPEC_NOT_EXCHANGE']);
  });

  it('a -legacy export (RC2-40 certificates, TripleDES key, SHA-1 MAC), as older Windows writes, reads with KeySpec 1', () => {
    const s = readCertificateFile(exportPfx('legacy-ossl.pfx', ['-legacy']), { fileName: 'legacy-ossl.pfx', password: PASSWORD, now: now(), minDaysLeft: 30 }).summary;
    expect(s.thumbprint).toBe(thumbprint);
    expect(s.keySpec).toBe(1);
    expect(s.hasPrivateKey).toBe(true);
  });

  it('an EC certificate: NOT_RSA', () => {
    const ecKey = join(dir, 'ec-key.pem');
    const ecCert = join(dir, 'ec-cert.pem');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', ecKey, '-out', ecCert, '-subj', '/CN=ec', '-days', '400']);
    const out = join(dir, 'ec.pfx');
    openssl(['pkcs12', '-export', '-inkey', ecKey, '-in', ecCert, '-out', out, '-passout', 'env:PFX_PW'], { PFX_PW: PASSWORD });
    const s = readCertificateFile(readFileSync(out), { fileName: 'ec.pfx', password: PASSWORD, now: now(), minDaysLeft: 30 }).summary;
    expect(s.keyAlgorithm).toBe('EC');
    expect(s.keySize).toBe(256);
    expect(s.hasPrivateKey).toBe(true);
    expect(errors(s)).toEqual(['NOT_RSA']);
  });

  it('a key usage without digitalSignature: KEY_USAGE_MISSING; no key-usage extension at all: fine', () => {
    const make = (name: string, addext: string[]) => {
      const out = join(dir, `${name}.pem`);
      openssl(['req', '-x509', '-key', keyPem, '-out', out, '-subj', `/CN=${name}`, '-days', '400', '-sha256', ...addext]);
      return readCertificateFile(readFileSync(out), { fileName: `${name}.pem`, now: now(), minDaysLeft: 30 }).summary;
    };
    const restricted = make('ku-encipher', ['-addext', 'keyUsage=critical,keyEncipherment']);
    expect(restricted.keyUsage).toEqual(['keyEncipherment']);
    expect(errors(restricted)).toEqual(['KEY_USAGE_MISSING']);
    const unrestricted = make('ku-none', ['-addext', 'basicConstraints=CA:FALSE']);
    expect(unrestricted.keyUsage).toEqual([]);
    expect(errors(unrestricted)).toEqual([]);
  });
});

describe('subjectDerBase64 (what Get-MachineCertificate -SubjectDer compares with SubjectName.RawData)', () => {
  const subject = 'CN=crm-s2s.contoso.com, OU=CRM\\, Sync, O=Contoso\\, Ltd., L=Redmond, ST=Washington, C=US, E=crm-admin@contoso.com';
  const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');

  /** The subject Name's bytes as openssl's own parser finds them: the sixth child of the TBSCertificate (version, serial, signature, issuer, validity, subject). */
  function opensslSubjectDer(der: Buffer): Buffer {
    const lines = openssl(['asn1parse', '-inform', 'DER', '-in', file('subject.der', der)]).split('\n');
    const tbsChildren = lines
      .map((line) => /^\s*(\d+):d=2\s+hl=\s*(\d+)\s+l=\s*(\d+)\s+(?:cons|prim): (.*?)\s*$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null);
    expect(tbsChildren[0]?.[4]).toBe('cont [ 0 ]');
    const subjectLine = tbsChildren[5];
    expect(subjectLine?.[4]).toBe('SEQUENCE');
    const offset = Number(subjectLine?.[1]);
    return der.subarray(offset, offset + Number(subjectLine?.[2]) + Number(subjectLine?.[3]));
  }

  it.runIf(hasOpenssl)('is exactly the subject Name openssl finds, for a subject with ST, emailAddress and a comma in a value', () => {
    const cert = makeEvaluationPfx({ subject, days: 365, password: PASSWORD, now: NOW });
    const der = derOf(cert.certPem);
    const ours = Buffer.from(subjectDerBase64(der.toString('base64')), 'base64');
    expect(ours.equals(opensslSubjectDer(der))).toBe(true);
    // And it is that name: openssl reads the same attributes back from the bytes alone (wrapped in nothing).
    const shown = openssl(['asn1parse', '-inform', 'DER', '-in', file('name.der', ours)]);
    expect(shown).toContain(':stateOrProvinceName');
    expect(shown).toContain(':Washington');
    expect(shown).toContain(':emailAddress');
    expect(shown).toContain(':crm-admin@contoso.com');
    expect(shown).toContain(':Contoso, Ltd.');
    // The certificate openssl sees has that subject (RFC 2253: most specific first).
    expect(openssl(['x509', '-inform', 'DER', '-in', file('subject-cert.der', der), '-noout', '-subject', '-nameopt', 'RFC2253']).trim())
      .toBe('subject=CN=crm-s2s.contoso.com,OU=CRM\\, Sync,O=Contoso\\, Ltd.,L=Redmond,ST=Washington,C=US,emailAddress=crm-admin@contoso.com');
  });

  it.runIf(hasOpenssl)('is exactly openssl\'s subject for a certificate openssl made (v3, another encoder)', () => {
    const key = file('openssl-key.pem', openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']));
    const pem = openssl(['req', '-new', '-x509', '-key', key, '-days', '30', '-subj', '/C=US/ST=Washington/O=Contoso, Ltd./CN=crm-s2s.contoso.com/emailAddress=crm-admin@contoso.com']);
    const der = derOf(pem);
    expect(Buffer.from(subjectDerBase64(der.toString('base64')), 'base64').equals(opensslSubjectDer(der))).toBe(true);
  });

  it('is the same for a renewal with the same subject and different for another subject', () => {
    const first = makeEvaluationPfx({ subject, days: 365, password: PASSWORD, now: NOW });
    const renewal = makeEvaluationPfx({ subject, days: 730, password: PASSWORD, now: NOW + DAY });
    const other = makeEvaluationPfx({ subject: subject.replace('ST=Washington', 'ST=Oregon'), days: 365, password: PASSWORD, now: NOW });
    const of = (pem: string) => subjectDerBase64(derOf(pem).toString('base64'));
    expect(renewal.thumbprint).not.toBe(first.thumbprint);
    expect(of(renewal.certPem)).toBe(of(first.certPem));
    expect(of(other.certPem)).not.toBe(of(first.certPem));
    // The issuer of a self-signed certificate is the same Name: the bytes are the Name, not the whole TBSCertificate.
    expect(of(first.certPem).length).toBeLessThan(derOf(first.certPem).toString('base64').length / 3);
  });

  it('refuses what is not a certificate with CERT_INVALID', () => {
    let caught: unknown;
    try {
      subjectDerBase64(Buffer.from('not a certificate').toString('base64'));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SetupError);
    expect((caught as SetupError).code).toBe('CERT_INVALID');
  });
});

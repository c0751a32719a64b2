import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SetupError } from '../../core/setup-error.ts';
import { certSummarySchema, type CertProblem, type CertSummary } from '../../jobs/cert-types.ts';
import { Asn1ShapeError, fromDer, type Asn1 } from './asn1.ts';
import { looksLikePkcs12, Pkcs12PasswordError, readPkcs12, type KeySpec } from './pkcs12.ts';
import { readX509, subjectNameDer, type X509Facts } from './x509.ts';

/**
 * The certificate kit: reads a PFX/P12, a DER (.cer) or a PEM file, describes the certificate
 * (CertSummary, jobs/cert-types.ts) and checks it against procedure.md §1, each problem with what to
 * do about it. Pure functions over bytes: no files, no logging, no secrets in what comes out.
 */

export type CertificateFileFormat = 'pfx' | 'der' | 'pem';

export interface ReadCertificateOptions {
  /** Shown in error messages (never a password). */
  fileName: string;
  password?: string;
  now: number;
  /** The certificate must be valid at least this many more days (CERT_MIN_DAYS_LEFT). */
  minDaysLeft: number;
  /** Default: true for a PFX, false for a certificate file (.cer/.pem) that has no key in it. */
  requirePrivateKey?: boolean;
  /** EXPIRES_SOON is an error for a certificate about to be rolled out (default), a warning for one in use. */
  expiresSoonSeverity?: CertProblem['severity'];
}

export interface CertificateFileInfo {
  summary: CertSummary;
  /** The public certificate, base64 DER (the Entra key credential's `key`, the .cer for Set-CrmCertificate). */
  derBase64: string;
  certPem: string;
  format: CertificateFileFormat;
}

export interface SummarizeOptions {
  now: number;
  minDaysLeft: number;
  /** Default warning: summarizeDer describes the certificate in use, which is not the one being replaced. */
  expiresSoonSeverity?: CertProblem['severity'];
}

const DAY_MS = 86_400_000;
const MIN_RSA_BITS = 2048;

/** Reads a certificate file, detecting the format by its content (the extension is only a hint in messages). */
export function readCertificateFile(bytes: Buffer, options: ReadCertificateOptions): CertificateFileInfo {
  const file = options.fileName;
  const text = bytes.subarray(0, 4096).toString('latin1');
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) return readPem(bytes.toString('latin1'), options);

  let root: Asn1;
  try {
    root = fromDer(bytes, false);
  } catch (error) {
    throw notACertificate(file, error);
  }
  if (looksLikePkcs12(root)) return readPfx(root, options);
  const der = parseDer(bytes, file);
  return describe(der, null, null, 'der', options);
}

/** The public certificate CRM has registered (Get-CrmCertificate's Data, base64 DER). */
export function summarizeDer(derBase64: string, options: SummarizeOptions): CertSummary {
  const der = Buffer.from(derBase64, 'base64');
  const facts = readFacts(der, 'the registered certificate');
  return summarize(facts, { hasPrivateKey: false, keySpec: null, keyMismatch: false, requirePrivateKey: false }, {
    now: options.now,
    minDaysLeft: options.minDaysLeft,
    expiresSoonSeverity: options.expiresSoonSeverity ?? 'warning',
  });
}

/**
 * Base64 of the certificate's subject Name DER (X509Certificate2.SubjectName.RawData on Windows):
 * what Get-MachineCertificate -SubjectDer compares, byte for byte, so the same-subject check does
 * not depend on how either side formats a name (S= or ST=, quoting, OID.x.y.z=).
 */
export function subjectDerBase64(derBase64: string): string {
  try {
    return subjectNameDer(Buffer.from(derBase64, 'base64')).toString('base64');
  } catch (error) {
    throw notACertificate('the certificate', error);
  }
}

// ---- formats ------------------------------------------------------------------------------------

function readPfx(root: Asn1, options: ReadCertificateOptions): CertificateFileInfo {
  const file = options.fileName;
  let contents;
  try {
    contents = readPkcs12(root, options.password);
  } catch (error) {
    if (error instanceof Pkcs12PasswordError) {
      throw new SetupError('CERT_PASSWORD_WRONG', `The password for ${file} is wrong: ${error.message}.`, {
        hint: `Give the password ${file} was exported with (it is case-sensitive), or export the PFX again with a new password.`,
      });
    }
    throw notACertificate(file, error, 'is a PFX that cannot be read');
  }
  if (contents.certificates.length === 0) {
    throw new SetupError('CERT_INVALID', `${file} is a PFX without a certificate in it.`, {
      hint: 'Export the certificate together with its private key (certlm.msc → the certificate → All Tasks → Export → "Yes, export the private key").',
    });
  }
  const key = contents.keys[0] ?? null;
  const privateKey = key ? toPrivateKey(key.pkcs8, file) : null;
  // The certificate of the key: the one whose public key matches, else the one with the same localKeyId, else the first.
  const parsed = contents.certificates.map((certificate) => ({ certificate, facts: readFacts(certificate.der, file) }));
  const chosen = (privateKey && parsed.find((p) => sameKey(p.facts.publicKey, privateKey)))
    ?? (key?.localKeyId ? parsed.find((p) => p.certificate.localKeyId === key.localKeyId) : undefined)
    ?? parsed[0];
  if (!chosen) throw new SetupError('CERT_INVALID', `${file} is a PFX without a certificate in it.`);
  return describe(chosen.certificate.der, privateKey, key?.keySpec ?? null, 'pfx', options, chosen.facts);
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

function readPem(text: string, options: ReadCertificateOptions): CertificateFileInfo {
  const file = options.fileName;
  const certificates: Buffer[] = [];
  let keyPem: string | null = null;
  for (const match of text.matchAll(pemBlock)) {
    const label = match[1] ?? '';
    if (label === 'CERTIFICATE' || label === 'X509 CERTIFICATE' || label === 'TRUSTED CERTIFICATE') {
      certificates.push(Buffer.from((match[2] ?? '').replace(/\s+/g, ''), 'base64'));
    } else if (/PRIVATE KEY$/.test(label) && keyPem === null) {
      keyPem = match[0];
    }
  }
  if (certificates.length === 0) {
    throw new SetupError('CERT_INVALID', `${file} is a PEM file without a certificate in it.`, {
      hint: 'Give the certificate itself: a .pfx with its private key, or a .cer/.pem with "-----BEGIN CERTIFICATE-----".',
    });
  }
  let privateKey: KeyObject | null = null;
  if (keyPem !== null) {
    try {
      privateKey = createPrivateKey(options.password === undefined ? { key: keyPem } : { key: keyPem, passphrase: options.password });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ERR_MISSING_PASSPHRASE' || /bad decrypt|passphrase/i.test(error instanceof Error ? error.message : '')) {
        throw new SetupError('CERT_PASSWORD_WRONG', `The password for the private key in ${file} is ${options.password === undefined ? 'missing' : 'wrong'}.`, {
          hint: `Give the password the key in ${file} was encrypted with.`,
        });
      }
      throw notACertificate(file, error, 'has a private key that cannot be read');
    }
  }
  const parsed = certificates.map((der) => ({ der, facts: readFacts(der, file) }));
  const chosen = (privateKey && parsed.find((p) => sameKey(p.facts.publicKey, privateKey))) ?? parsed[0];
  if (!chosen) throw new SetupError('CERT_INVALID', `${file} is a PEM file without a certificate in it.`);
  return describe(chosen.der, privateKey, null, 'pem', options, chosen.facts);
}

function parseDer(bytes: Buffer, file: string): Buffer {
  // readFacts below does the real check; this only rejects what is clearly not DER.
  if (bytes.length < 64 || bytes[0] !== 0x30) throw notACertificate(file, new Asn1ShapeError('not a DER structure'));
  return bytes;
}

function describe(der: Buffer, privateKey: KeyObject | null, keySpec: KeySpec | null, format: CertificateFileFormat, options: ReadCertificateOptions, known?: X509Facts): CertificateFileInfo {
  const facts = known ?? readFacts(der, options.fileName);
  const summary = summarize(facts, {
    hasPrivateKey: privateKey !== null,
    keySpec,
    keyMismatch: privateKey !== null && !sameKey(facts.publicKey, privateKey),
    requirePrivateKey: options.requirePrivateKey ?? (format === 'pfx' || privateKey !== null),
  }, { now: options.now, minDaysLeft: options.minDaysLeft, expiresSoonSeverity: options.expiresSoonSeverity ?? 'error' });
  const derBase64 = der.toString('base64');
  const certPem = `-----BEGIN CERTIFICATE-----\n${(derBase64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
  return { summary, derBase64, certPem, format };
}

function readFacts(der: Buffer, file: string): X509Facts {
  try {
    return readX509(der);
  } catch (error) {
    throw notACertificate(file, error);
  }
}

function toPrivateKey(pkcs8: Buffer, file: string): KeyObject {
  try {
    return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } catch (error) {
    throw notACertificate(file, error, 'has a private key that cannot be read');
  }
}

/** The private key belongs to the certificate: same public key (SubjectPublicKeyInfo). */
function sameKey(publicKey: KeyObject, privateKey: KeyObject): boolean {
  try {
    const fromPrivate = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    return fromPrivate.equals(publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

function notACertificate(file: string, cause: unknown, what = 'is not a certificate'): SetupError {
  return new SetupError('CERT_INVALID', `${file} ${what}: expected a PFX/P12 with the private key, or a DER (.cer) or PEM certificate.`, {
    hint: 'Export the S2S certificate with its private key as a .pfx (certlm.msc → the certificate → All Tasks → Export → "Yes, export the private key").',
    cause,
  });
}

// ---- requirements (procedure.md §1) -------------------------------------------------------------

interface KeyFacts {
  hasPrivateKey: boolean;
  keySpec: KeySpec | null;
  keyMismatch: boolean;
  requirePrivateKey: boolean;
}

function summarize(facts: X509Facts, key: KeyFacts, options: Required<SummarizeOptions>): CertSummary {
  const valid = (date: Date) => Number.isFinite(date.getTime()) && date.getUTCFullYear() >= 1950 && date.getUTCFullYear() <= 9999;
  if (!valid(facts.notBefore) || !valid(facts.notAfter)) {
    throw new SetupError('CERT_INVALID', `The certificate ${facts.thumbprint} has validity dates outside 1950–9999.`, { hint: 'Issue a certificate with ordinary validity dates.' });
  }
  return certSummarySchema.parse({
    thumbprint: facts.thumbprint,
    subject: facts.subject.slice(0, 400),
    issuer: facts.issuer.slice(0, 400),
    serialNumber: facts.serialNumber.slice(0, 80),
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    keyAlgorithm: facts.keyAlgorithm.slice(0, 40),
    keySize: facts.keySize,
    signatureHash: facts.signatureHash.slice(0, 40),
    keyUsage: facts.keyUsage ?? [],
    extendedKeyUsage: facts.extendedKeyUsage.slice(0, 12).map((usage) => usage.slice(0, 80)),
    selfSigned: facts.selfSigned,
    hasPrivateKey: key.hasPrivateKey,
    keySpec: key.keySpec,
    problems: certificateProblems(facts, key, options),
  });
}

/**
 * Every requirement the kit checks. Errors block a rotation; warnings are shown only.
 *
 * KEY_USAGE_MISSING: CRM signs its S2S tokens with this key, so a certificate whose key-usage
 * extension is present but lacks digitalSignature is an error. A certificate without the extension
 * is unrestricted and passes; keyEncipherment is not required (Entra only verifies signatures, and
 * the KeySpec is decided by the PFX, not by the certificate).
 */
export function certificateProblems(facts: X509Facts, key: KeyFacts, options: Required<SummarizeOptions>): CertProblem[] {
  const problems: CertProblem[] = [];
  const add = (code: CertProblem['code'], severity: CertProblem['severity'], message: string, fix: string) => problems.push({ code, severity, message: message.slice(0, 300), fix: fix.slice(0, 400) });
  const newCertificate = 'Issue a new certificate (RSA 2048 bits or more, SHA-256) from your CA, or make an evaluation one with `npm run cert -- new`, and export it with its private key as a .pfx.';

  if (facts.keyAlgorithm !== 'RSA') {
    add('NOT_RSA', 'error', `The key is ${facts.keyAlgorithm}; CRM's S2S token issuer needs an RSA key in a legacy CSP.`, newCertificate);
  } else if (facts.keySize < MIN_RSA_BITS) {
    add('KEY_TOO_SMALL', 'error', `The RSA key has ${facts.keySize} bits; Entra ID rejects keys below ${MIN_RSA_BITS} bits (AADSTS700027).`, newCertificate);
  }
  if (/^(SHA-1|MD5|MD2)$/.test(facts.signatureHash)) {
    add('WEAK_SIGNATURE', 'error', `The certificate is signed with ${facts.signatureHash}, which is no longer accepted.`, 'Have the certificate issued again with a SHA-256 signature (the CA template or `certreq` request decides it).');
  }
  const daysLeft = Math.floor((facts.notAfter.getTime() - options.now) / DAY_MS);
  if (facts.notBefore.getTime() > options.now) {
    add('NOT_YET_VALID', 'error', `The certificate is not valid before ${facts.notBefore.toISOString()}.`, 'Wait until it is valid, or check the clock of the machine that issued it and issue it again.');
  }
  if (facts.notAfter.getTime() <= options.now) {
    add('EXPIRED', 'error', `The certificate expired on ${facts.notAfter.toISOString()}.`, newCertificate);
  } else if (daysLeft < options.minDaysLeft) {
    add('EXPIRES_SOON', options.expiresSoonSeverity, `The certificate expires on ${facts.notAfter.toISOString()}, in ${daysLeft} days (fewer than ${options.minDaysLeft}).`, `Use a certificate valid for at least ${options.minDaysLeft} more days (renew it with your CA; for evaluation \`npm run cert -- new\`); for the certificate in use, rotate with \`@setup cert rotate\`.`);
  }
  if (!key.hasPrivateKey && key.requirePrivateKey) {
    add('NO_PRIVATE_KEY', 'error', 'The file has the certificate but not its private key.', 'Export it again with the private key: certlm.msc → the certificate → All Tasks → Export → "Yes, export the private key" (.pfx).');
  }
  if (key.keyMismatch) {
    add('KEY_MISMATCH', 'error', 'The private key in the file does not belong to the certificate (their public keys differ).', 'Export the certificate together with its own private key from the machine where its request was made.');
  }
  if (key.keySpec === 2 || key.keySpec === 0) {
    add('KEYSPEC_NOT_EXCHANGE', 'error', key.keySpec === 2
      ? 'The PFX marks the key for signatures only: Windows imports it with KeySpec 2 (AT_SIGNATURE); CRM needs KeySpec 1 (AT_KEYEXCHANGE).'
      : 'The PFX puts the key in a CNG key storage provider: Windows imports it with KeySpec 0; CRM needs KeySpec 1 (AT_KEYEXCHANGE) in a legacy CSP.',
    'Import it with `certutil -importpfx <file> AT_KEYEXCHANGE`, or re-export it with `openssl pkcs12 -export -keyex -CSP "Microsoft Enhanced RSA and AES Cryptographic Provider" -LMK`.');
  }
  if (facts.keyUsage !== null && !facts.keyUsage.includes('digitalSignature')) {
    add('KEY_USAGE_MISSING', 'error', `The certificate's key usage (${facts.keyUsage.join(', ') || 'empty'}) does not allow digital signatures, which S2S tokens are.`, 'Issue the certificate from a template whose key usage includes Digital Signature (and Key Encipherment), such as "Web Server".');
  }
  if (facts.selfSigned) {
    add('SELF_SIGNED', 'warning', 'The certificate is self-signed: fine for evaluation, not for production.', 'For production, use a certificate issued by a trusted certification authority.');
  }
  return problems;
}

import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { fromDer } from '../agent/certkit/asn1.ts';
import { Pkcs12PasswordError, readPkcs12, type KeySpec } from '../agent/certkit/pkcs12.ts';
import type { SimCertificate } from './s2s-state.ts';

/**
 * Certificates for the simulator: real X.509 certificates (RSA, SHA-256) made with node-forge
 * from keys node:crypto generates (fast), PFX files for tests and the demo, and reading PFX / CER
 * files the way the PowerShell stand-in needs (thumbprint, subject in Windows' order, dates).
 */
export interface SimCertificateMaterial extends SimCertificate {
  /** PEM of the certificate. */
  certificatePem: string;
  /** PEM (PKCS#8) of the private key. Test and demo material only. */
  privateKeyPem: string;
}

export interface CreateSimCertificateOptions {
  /** Common name (default 'crm-s2s.contoso.com'). */
  commonName?: string;
  /** Organization of the subject (default 'Contoso'). */
  organization?: string;
  notBefore: Date;
  notAfter: Date;
  /** Default 2048. */
  keyBits?: number;
  /** Keys are generated once per (label, size) in this process and reused: seeding stays fast. */
  keyLabel?: string;
  /** Default 'sha256'. */
  hash?: 'sha256' | 'sha1';
}

/**
 * A PFX password never reaches this message: what X509Certificate2Collection.Import throws in
 * Windows PowerShell for a wrong password.
 */
export class PfxPasswordError extends Error {
  constructor() {
    super('Exception calling "Import" with "3" argument(s): "The specified network password is not correct."');
    this.name = 'PfxPasswordError';
  }
}

export class CertificateFileError extends Error {
  override name = 'CertificateFileError';
}

interface CachedKey {
  publicKey: forge.pki.rsa.PublicKey;
  /** Native key: signing with node:crypto takes a millisecond, forge's JavaScript RSA far longer. */
  privateKey: KeyObject;
  privateKeyPem: string;
}

const keyCache = new Map<string, CachedKey>();

function keyPair(label: string, bits: number): CachedKey {
  const id = `${bits}:${label}`;
  const cached = keyCache.get(id);
  if (cached) return cached;
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey);
  const pair: CachedKey = { publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), privateKey: createPrivateKey(privateKey), privateKeyPem: privateKey };
  keyCache.set(id, pair);
  return pair;
}

/** What forge's certificate.sign does, with the signature made by node:crypto. */
function signCertificate(certificate: forge.pki.Certificate, key: KeyObject, hash: 'sha256' | 'sha1'): void {
  const oid = hash === 'sha256' ? forge.pki.oids.sha256WithRSAEncryption : forge.pki.oids.sha1WithRSAEncryption;
  if (!oid) throw new Error(`no OID for ${hash}WithRSAEncryption`);
  certificate.siginfo.algorithmOid = oid;
  certificate.signatureOid = oid;
  // getTBSCertificate is part of forge's pki API but missing from @types/node-forge.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(certificate);
  (certificate as forge.pki.Certificate & { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  certificate.signature = sign(hash, tbsDer, key).toString('binary');
}

function derOf(certificate: forge.pki.Certificate): Buffer {
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(certificate)).getBytes(), 'binary');
}

/** SHA-1 of the DER, 40 upper-case hex digits (Windows' thumbprint). */
export function thumbprintOfDer(der: Buffer): string {
  return createHash('sha1').update(der).digest('hex').toUpperCase();
}

/**
 * Base64 of the certificate's subject Name DER (what Windows' X509Certificate2.SubjectName.RawData
 * holds), for the same-subject checks. Derived with forge's ASN.1 parser, independently of the
 * agent's kit (agent/certkit/kit.ts subjectDerBase64), so the simulator checks the agent rather than
 * repeating it. Null when the DER is not a certificate.
 */
export function subjectDerOf(derBase64: string): string | null {
  try {
    const certificate = forge.asn1.fromDer(Buffer.from(derBase64, 'base64').toString('binary'));
    const tbs = (certificate.value as forge.asn1.Asn1[])[0];
    const fields = tbs?.value;
    if (!Array.isArray(fields)) return null;
    // version [0] EXPLICIT is optional: serial, signature, issuer, validity, subject follow.
    const first = fields[0];
    const offset = first?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && (first.type as number) === 0 ? 1 : 0;
    const subject = fields[offset + 4];
    if (!subject || subject.type !== forge.asn1.Type.SEQUENCE) return null;
    return Buffer.from(forge.asn1.toDer(subject).getBytes(), 'binary').toString('base64');
  } catch {
    return null;
  }
}

const shortNames: Record<string, string> = { commonName: 'CN', organizationName: 'O', organizationalUnitName: 'OU', countryName: 'C', localityName: 'L', stateOrProvinceName: 'S', emailAddress: 'E' };

/**
 * The subject as X509Certificate2.Subject shows it: most specific first ("CN=…, O=…"), S= for the
 * state, E= for the e-mail address, OID.x.y.z= for a type Windows has no name for, and a value with
 * a comma, plus, equals sign, quote or the like in double quotes (a quote doubled).
 */
function windowsName(attributes: forge.pki.CertificateField[]): string {
  const typeOf = (a: forge.pki.CertificateField): string => (a.name ? shortNames[a.name] : undefined) ?? a.shortName ?? `OID.${a.type ?? '?'}`;
  const valueOf = (value: string): string => (/[,+="<>#;\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return attributes
    .map((a) => `${typeOf(a)}=${valueOf(String(a.value))}`)
    .reverse()
    .join(', ');
}

function summaryOf(certificate: forge.pki.Certificate, der: Buffer): SimCertificate {
  return {
    thumbprint: thumbprintOfDer(der),
    subject: windowsName(certificate.subject.attributes),
    notBefore: certificate.validity.notBefore.toISOString(),
    notAfter: certificate.validity.notAfter.toISOString(),
    derBase64: der.toString('base64'),
  };
}

/** A self-signed S2S certificate with its key (RSA, key and data encipherment, server and client auth). */
export function createSimCertificate(options: CreateSimCertificateOptions): SimCertificateMaterial {
  const bits = options.keyBits ?? 2048;
  const keys = keyPair(options.keyLabel ?? 'default', bits);
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = keys.publicKey;
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f | 0x10;
  certificate.serialNumber = serial.toString('hex');
  // X.509 times hold whole seconds: truncate, so the summary's dates are the certificate's.
  certificate.validity.notBefore = new Date(Math.floor(options.notBefore.getTime() / 1000) * 1000);
  certificate.validity.notAfter = new Date(Math.floor(options.notAfter.getTime() / 1000) * 1000);
  const name = [
    { name: 'organizationName', value: options.organization ?? 'Contoso' },
    { name: 'commonName', value: options.commonName ?? 'crm-s2s.contoso.com' },
  ];
  certificate.setSubject(name);
  certificate.setIssuer(name);
  certificate.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, dataEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(certificate, keys.privateKey, options.hash ?? 'sha256');
  const der = derOf(certificate);
  return {
    ...summaryOf(certificate, der),
    certificatePem: forge.pki.certificateToPem(certificate),
    privateKeyPem: keys.privateKeyPem,
  };
}

/** A PFX (PKCS#12, 3DES) of the certificate and its key, protected by `password`. */
export function simPfx(material: Pick<SimCertificateMaterial, 'certificatePem' | 'privateKeyPem'>, password: string): Buffer {
  const key = forge.pki.privateKeyFromPem(material.privateKeyPem);
  const certificate = forge.pki.certificateFromPem(material.certificatePem);
  const p12 = forge.pkcs12.toPkcs12Asn1(key, [certificate], password, { algorithm: '3des', generateLocalKeyId: true, friendlyName: 'S2S' });
  return Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary');
}

/** A PFX of the certificate alone (no private key). */
export function simPfxWithoutKey(material: Pick<SimCertificateMaterial, 'certificatePem'>, password: string): Buffer {
  const certificate = forge.pki.certificateFromPem(material.certificatePem);
  const p12 = forge.pkcs12.toPkcs12Asn1(null, [certificate], password, { algorithm: '3des' });
  return Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary');
}

export interface PfxContents {
  /** The end-entity certificate: the one matching the key, else the first. */
  certificate: SimCertificate;
  hasPrivateKey: boolean;
  /** The KeySpec Windows gives the key when it imports the PFX (its key bag attributes); null without a key. */
  keySpec: KeySpec | null;
}

/**
 * Reads a PFX as X509Certificate2Collection.Import would: a wrong password is refused with .NET's
 * message; the key's KeySpec comes from the key bag attributes (CSP name, key usage), as Windows
 * decides it (agent/certkit/pkcs12.ts).
 */
export function readPfx(bytes: Buffer, password: string): PfxContents {
  let contents: ReturnType<typeof readPkcs12>;
  try {
    contents = readPkcs12(fromDer(bytes, false), password);
  } catch (error) {
    if (error instanceof Pkcs12PasswordError) throw new PfxPasswordError();
    throw new CertificateFileError('Exception calling "Import" with "3" argument(s): "Cannot find the requested object." (the file is not a valid PFX)');
  }
  const certificates = contents.certificates.flatMap((c) => {
    try {
      return [{ der: c.der, x509: new X509Certificate(c.der), forge: forge.pki.certificateFromAsn1(forge.asn1.fromDer(c.der.toString('binary'))) }];
    } catch {
      return [];
    }
  });
  const key = contents.keys[0];
  let privateKey: KeyObject | undefined;
  try {
    privateKey = key ? createPrivateKey({ key: key.pkcs8, format: 'der', type: 'pkcs8' }) : undefined;
  } catch {
    privateKey = undefined;
  }
  const matching = privateKey ? certificates.find((c) => c.x509.checkPrivateKey(privateKey)) : undefined;
  const chosen = matching ?? certificates[0];
  if (!chosen) throw new CertificateFileError('Exception calling "Import" with "3" argument(s): "Cannot find the requested object." (the PFX holds no certificate)');
  return { certificate: summaryOf(chosen.forge, chosen.der), hasPrivateKey: matching !== undefined, keySpec: matching && key ? key.keySpec : null };
}

/** Reads a .cer file: DER, or PEM ("-----BEGIN CERTIFICATE-----"), or base64 DER text. */
export function readCertificateFile(bytes: Buffer): SimCertificate {
  const text = bytes.toString('latin1');
  let der = bytes;
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(text);
  if (pem?.[1]) der = Buffer.from(pem[1].replace(/\s+/g, ''), 'base64');
  else if (/^[A-Za-z0-9+/=\s]+$/.test(text)) der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  try {
    const certificate = forge.pki.certificateFromAsn1(forge.asn1.fromDer(der.toString('binary')));
    return summaryOf(certificate, der);
  } catch {
    throw new CertificateFileError('Cannot find the requested object. The file is not an X.509 certificate.');
  }
}

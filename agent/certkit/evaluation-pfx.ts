import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { SetupError } from '../../core/setup-error.ts';
import { ENHANCED_RSA_AES_CSP, KEY_USAGE_ATTRIBUTE_EXCHANGE, KEY_USAGE_ATTRIBUTE_SIGNATURE, SOFTWARE_KSP, writePkcs12, type WritePkcs12Options } from './pkcs12.ts';
import { parseName, thumbprintOf } from './x509.ts';

export interface EvaluationPfxOptions {
  /** "CN=crm-s2s.contoso.com, O=Contoso" (most specific first, as Windows shows it). */
  subject: string;
  /** Valid until now + days (negative: already expired). */
  days: number;
  password: string;
  now?: number;
  /** RSA modulus bits, default 2048. */
  keySize?: number;
  signatureHash?: 'sha256' | 'sha1';
  /** Default: 10 minutes before now (clock skew), or a day before notAfter when that is earlier. */
  notBefore?: Date;
  /**
   * What the key bag tells Windows: exchange (default) = key usage "data encipherment", Enhanced
   * RSA and AES CSP, local machine key set, as `openssl pkcs12 -export -keyex -CSP … -LMK` writes;
   * signature = the -keysig attribute (KeySpec 2); cng = a CNG key storage provider (KeySpec 0);
   * none = no attributes at all (Windows defaults to KeySpec 1).
   */
  keySpec?: 'exchange' | 'signature' | 'cng' | 'none';
  /** false: a PFX with only the certificate. */
  includePrivateKey?: boolean;
  /** true: the key bag holds a different key than the certificate's. */
  mismatchedKey?: boolean;
  /** PFX encryption, default aes256 (see WritePkcs12Options); legacy for Windows Server 2016 and older. */
  encryption?: WritePkcs12Options['encryption'];
}

export interface EvaluationPfx {
  pfx: Buffer;
  thumbprint: string;
  certPem: string;
}

const DAY_MS = 86_400_000;

/**
 * A self-signed certificate for evaluation (procedure.md §1: self-signed is fine only for that) as
 * a PFX Windows imports with KeySpec 1: RSA 2048, SHA-256, key usage digitalSignature +
 * keyEncipherment + dataEncipherment, EKU serverAuth + clientAuth. The options that make bad
 * certificates exist for tests and the simulator.
 */
export function makeEvaluationPfx(options: EvaluationPfxOptions): EvaluationPfx {
  const now = options.now ?? Date.now();
  const keySize = options.keySize ?? 2048;
  const subject = parseName(options.subject);
  if (!subject) {
    throw new SetupError('CERT_INVALID', `The subject "${options.subject}" is not a distinguished name.`, { hint: 'Write it like "CN=crm-s2s.contoso.com, O=Contoso".' });
  }
  const notAfter = new Date(now + options.days * DAY_MS);
  const notBefore = options.notBefore ?? new Date(Math.min(now - 10 * 60_000, notAfter.getTime() - DAY_MS));

  const certificateKey = rsaKey(keySize);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(certificateKey.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const name = subject.map((attribute) => ({ type: attribute.oid, value: attribute.value, valueTagClass: valueTagFor(attribute.oid) }));
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true, dataEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  const signingKey = forge.pki.privateKeyFromPem(certificateKey.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  cert.sign(signingKey, options.signatureHash === 'sha1' ? forge.md.sha1.create() : forge.md.sha256.create());
  const certDer = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');

  const bagKey = options.mismatchedKey ? rsaKey(keySize) : certificateKey;
  const pfx = writePkcs12({
    certDer,
    ...(options.includePrivateKey === false ? {} : { key: { pkcs8: bagKey.privateKey.export({ type: 'pkcs8', format: 'der' }), ...keyBagAttributes(options.keySpec ?? 'exchange') } }),
    password: options.password,
    friendlyName: subject.find((attribute) => attribute.oid === '2.5.4.3')?.value ?? 'S2S certificate',
    encryption: options.encryption ?? 'aes256',
  });
  return { pfx, thumbprint: thumbprintOf(certDer), certPem: forge.pki.certificateToPem(cert) };
}

function keyBagAttributes(keySpec: NonNullable<EvaluationPfxOptions['keySpec']>): Omit<NonNullable<WritePkcs12Options['key']>, 'pkcs8'> {
  switch (keySpec) {
    case 'exchange':
      return { keyUsageAttribute: KEY_USAGE_ATTRIBUTE_EXCHANGE, cspName: ENHANCED_RSA_AES_CSP, localMachineKeySet: true };
    case 'signature':
      return { keyUsageAttribute: KEY_USAGE_ATTRIBUTE_SIGNATURE, cspName: ENHANCED_RSA_AES_CSP, localMachineKeySet: true };
    case 'cng':
      return { cspName: SOFTWARE_KSP, localMachineKeySet: true };
    case 'none':
      return {};
  }
}

function rsaKey(modulusLength: number): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength, publicExponent: 0x10001 });
}

/** 16 random bytes, positive and without a leading zero byte (RFC 5280: at most 20 octets). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10;
  return bytes.toString('hex');
}

/** Country is a PrintableString, e-mail and domain components IA5String, the rest UTF8String. */
function valueTagFor(attributeOid: string): forge.asn1.Class {
  if (attributeOid === '2.5.4.6') return forge.asn1.Type.PRINTABLESTRING as unknown as forge.asn1.Class;
  if (attributeOid === '1.2.840.113549.1.9.1' || attributeOid === '0.9.2342.19200300.100.1.25') return forge.asn1.Type.IA5STRING as unknown as forge.asn1.Class;
  return forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;
}

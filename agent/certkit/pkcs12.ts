import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import {
  Asn1ShapeError, bmpString, children, content, context, decodeString, fromDer, int, isContext, isUniversal, octets, oid, oidOf, seq, set, toBuffer, toDer, Type, type Asn1,
} from './asn1.ts';

/**
 * Reads and writes PKCS#12 (PFX) files with the bag attributes Windows looks at when it imports
 * one. forge's own pkcs12FromAsn1 / toPkcs12Asn1 drop attributes they do not know and never write
 * custom ones, so the structure is walked and built here with forge's ASN.1 and PBE primitives.
 *
 *   PFX        ::= SEQUENCE { version 3, authSafe ContentInfo(data), macData MacData OPTIONAL }
 *   authSafe   ::= SEQUENCE OF ContentInfo   (data: SafeContents; encryptedData: encrypted SafeContents)
 *   SafeBag    ::= SEQUENCE { bagId, [0] EXPLICIT bagValue, bagAttributes SET OF Attribute OPTIONAL }
 *   key bag    ::= PrivateKeyInfo (PKCS#8, with its own attributes [0]) or its encrypted form
 *
 * Where Windows decides the KeySpec (d365-contract.md "Certificates"):
 * - the CSP name (1.3.6.1.4.1.311.17.1, BMPString) on the key bag picks the provider: a CNG key
 *   storage provider gives KeySpec 0; a legacy CSP (or none: the Enhanced CSP for RSA) keeps going;
 * - the key-usage attribute (2.5.29.15, a BIT STRING) picks AT_KEYEXCHANGE (1) or AT_SIGNATURE (2).
 *   OpenSSL's `pkcs12 -export -keyex` / `-keysig` write it among the PKCS#8 attributes of the key
 *   ("Key Attributes" in `openssl pkcs12 -info`), which is where this writer puts it too; the reader
 *   also accepts it among the bag attributes;
 * - 1.3.6.1.4.1.311.17.2 (no value) asks for the local machine key set.
 */
export const pkcs12Oids = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  keyUsage: '2.5.29.15',
  cspName: '1.3.6.1.4.1.311.17.1',
  localMachineKeySet: '1.3.6.1.4.1.311.17.2',
  pbes2: '1.2.840.113549.1.5.13',
  pbeSha1TripleDes: '1.2.840.113549.1.12.1.3',
  pbeSha1Rc2_40: '1.2.840.113549.1.12.1.6',
} as const;

const macDigests: Readonly<Record<string, { create: () => forge.md.MessageDigest; size: number }>> = {
  '1.3.14.3.2.26': { create: () => forge.md.sha1.create(), size: 20 },
  '2.16.840.1.101.3.4.2.1': { create: () => forge.md.sha256.create(), size: 32 },
  '2.16.840.1.101.3.4.2.2': { create: () => forge.md.sha384.create(), size: 48 },
  '2.16.840.1.101.3.4.2.3': { create: () => forge.md.sha512.create(), size: 64 },
};
const SHA1 = '1.3.14.3.2.26';
const SHA256 = '2.16.840.1.101.3.4.2.1';

/** The key-usage attribute contents (BIT STRING: unused bits, flags) OpenSSL's -keyex writes: 0x10, CERT_DATA_ENCIPHERMENT_KEY_USAGE. */
export const KEY_USAGE_ATTRIBUTE_EXCHANGE = '\x04\x10';
/** What -keysig writes: 0x80, CERT_DIGITAL_SIGNATURE_KEY_USAGE (Windows then gives the key AT_SIGNATURE). */
export const KEY_USAGE_ATTRIBUTE_SIGNATURE = '\x07\x80';
/** The legacy CSP S2S certificates must use (RSA, AT_KEYEXCHANGE, SHA-2 capable). */
export const ENHANCED_RSA_AES_CSP = 'Microsoft Enhanced RSA and AES Cryptographic Provider';
/** The default CNG key storage provider (a key there has KeySpec 0, which CRM cannot use). */
export const SOFTWARE_KSP = 'Microsoft Software Key Storage Provider';

export type KeySpec = 0 | 1 | 2;

/** A private key found in a PFX, with what Windows would make of it. */
export interface Pkcs12Key {
  /** PrivateKeyInfo DER without its attributes (what node:crypto reads). */
  pkcs8: Buffer;
  localKeyId: string | null;
  friendlyName: string | null;
  cspName: string | null;
  /** Contents of the key-usage attribute (BIT STRING), binary; null when absent. */
  keyUsageAttribute: string | null;
  localMachineKeySet: boolean;
  keySpec: KeySpec;
}

export interface Pkcs12Certificate {
  der: Buffer;
  localKeyId: string | null;
}

export interface Pkcs12Contents {
  certificates: Pkcs12Certificate[];
  keys: Pkcs12Key[];
  /** False when the file had no integrity MAC (nothing checked the password up front). */
  macVerified: boolean;
}

/** The password does not open the PFX (MAC mismatch or undecryptable bags). Never carries the password. */
export class Pkcs12PasswordError extends Error {
  override readonly name = 'Pkcs12PasswordError';
}

/**
 * KeySpec Windows gives an imported key: 0 for a CNG provider, 2 when the key-usage attribute says
 * signature only, otherwise 1 (encipherment bits, or no attribute at all).
 */
export function keySpecFromAttributes(attributes: { cspName: string | null; keyUsageAttribute: string | null }): KeySpec {
  if (attributes.cspName && /key storage provider|platform crypto provider/i.test(attributes.cspName)) return 0;
  if (attributes.keyUsageAttribute === null) return 1;
  const flags = attributes.keyUsageAttribute.charCodeAt(1);
  // keyEncipherment 0x20, dataEncipherment 0x10, keyAgreement 0x08: an exchange key.
  if (!Number.isNaN(flags) && (flags & 0x38) !== 0) return 1;
  return 2;
}

/** True when the DER looks like a PFX (SEQUENCE { INTEGER 3, ContentInfo, ... }). */
export function looksLikePkcs12(root: Asn1): boolean {
  if (!isUniversal(root, Type.SEQUENCE) || !Array.isArray(root.value)) return false;
  const [version, authSafe] = root.value;
  if (!isUniversal(version, Type.INTEGER) || !isUniversal(authSafe, Type.SEQUENCE)) return false;
  try {
    return forge.asn1.derToInteger(content(version, 'version')) === 3 && oidOf(children(authSafe, 'authSafe')[0], 'contentType').startsWith('1.2.840.113549.1.7.');
  } catch {
    return false;
  }
}

/**
 * Reads every certificate and key of a PFX. Without a password, the empty password and the
 * "no password" of some exporters are both tried. Throws Pkcs12PasswordError when the password is
 * wrong, Asn1ShapeError when the file is not a PFX forge can read.
 */
export function readPkcs12(root: Asn1, password: string | undefined): Pkcs12Contents {
  const [versionNode, authSafeInfo, macData] = children(root, 'PFX');
  if (forge.asn1.derToInteger(content(versionNode, 'version')) !== 3) throw new Asn1ShapeError('the PFX version is not 3');
  const [contentType, explicitContent] = children(authSafeInfo, 'authSafe');
  if (oidOf(contentType, 'authSafe contentType') !== pkcs12Oids.data) throw new Asn1ShapeError('the PFX uses public-key integrity mode, which is not supported');
  const authSafeBytes = content(children(explicitContent, 'authSafe content')[0], 'authSafe content');

  const candidates: (string | null)[] = password === undefined ? ['', null] : [password];
  let chosen: string | null = candidates[0] ?? '';
  let macVerified = false;
  if (macData) {
    const match = candidates.find((candidate) => macMatches(macData, authSafeBytes, candidate));
    if (match === undefined) {
      throw new Pkcs12PasswordError(password === undefined ? 'the PFX is protected by a password and none was given' : 'the password does not match the PFX (its integrity check failed)');
    }
    chosen = match;
    macVerified = true;
  }

  const result: Pkcs12Contents = { certificates: [], keys: [], macVerified };
  for (const info of children(fromDer(authSafeBytes, false), 'authenticatedSafe')) {
    const [type, wrapped] = children(info, 'ContentInfo');
    const typeOid = oidOf(type, 'ContentInfo contentType');
    if (typeOid === pkcs12Oids.data) {
      readSafeContents(fromDer(content(children(wrapped, 'data')[0], 'data'), false), chosen, result);
    } else if (typeOid === pkcs12Oids.encryptedData) {
      const [, encryptedContentInfo] = children(children(wrapped, 'encryptedData')[0], 'EncryptedData');
      const [, algorithm, encrypted] = children(encryptedContentInfo, 'EncryptedContentInfo');
      if (!algorithm || !isContext(encrypted, 0)) throw new Asn1ShapeError('EncryptedContentInfo has no content');
      const safeContents = pbeDecrypt(algorithm, content(encrypted, 'encryptedContent'), chosen);
      if (!safeContents) throw new Pkcs12PasswordError('the password does not decrypt the PFX');
      readSafeContents(safeContents, chosen, result);
    } else {
      throw new Asn1ShapeError(`the PFX holds content of type ${typeOid} (public-key privacy mode), which is not supported`);
    }
  }
  return result;
}

function macMatches(macData: Asn1, authSafeBytes: string, password: string | null): boolean {
  const [digestInfo, saltNode, iterationsNode] = children(macData, 'MacData');
  const [digestAlgorithm, digestNode] = children(digestInfo, 'DigestInfo');
  const digestOid = oidOf(children(digestAlgorithm, 'digestAlgorithm')[0], 'digestAlgorithm');
  const digest = macDigests[digestOid];
  if (!digest) throw new Asn1ShapeError(`the PFX's integrity MAC uses ${digestOid}, which is not supported (export it with SHA-1 or SHA-256)`);
  const iterations = iterationsNode ? forge.asn1.derToInteger(content(iterationsNode, 'iterations')) : 1;
  if (!(iterations >= 1)) throw new Asn1ShapeError('the PFX MAC iteration count is invalid');
  // PKCS#12 key derivation (ID 3 = MAC key) with the password as a BMPString; forge encodes it.
  const key = forge.pkcs12.generateKey(password, forge.util.createBuffer(content(saltNode, 'macSalt')), 3, iterations, digest.size, digest.create());
  const hmac = forge.hmac.create();
  hmac.start(digest.create(), key);
  hmac.update(authSafeBytes);
  return hmac.digest().getBytes() === content(digestNode, 'digest');
}

/**
 * PBE decryption of an AlgorithmIdentifier + ciphertext. forge exposes it for EncryptedPrivateKeyInfo
 * only, and that structure is exactly SEQUENCE { AlgorithmIdentifier, OCTET STRING }, so the
 * EncryptedContentInfo of an EncryptedData is decrypted the same way. Null when the password does
 * not decrypt it.
 */
function pbeDecrypt(algorithm: Asn1, ciphertext: string, password: string | null): Asn1 | null {
  const algorithmOid = oidOf(children(algorithm, 'encryptionAlgorithm')[0], 'encryptionAlgorithm');
  if (algorithmOid !== pkcs12Oids.pbes2 && algorithmOid !== pkcs12Oids.pbeSha1TripleDes && algorithmOid !== pkcs12Oids.pbeSha1Rc2_40) {
    throw new Asn1ShapeError(`the PFX is encrypted with ${algorithmOid}, which is not supported (export it with AES-256 or TripleDES)`);
  }
  try {
    return forge.pki.decryptPrivateKeyInfo(seq([algorithm, octets(ciphertext)]), pbePassword(algorithmOid, password) as string);
  } catch (error) {
    if (error instanceof Error && /unsupported|cannot read password-based/i.test(error.message)) throw new Asn1ShapeError(`the PFX encryption is not supported: ${error.message}`);
    return null; // garbage after decryption: the wrong key
  }
}

/**
 * PBES2 (PKCS#5) feeds PBKDF2 the password as UTF-8 bytes (OpenSSL, Windows); the PKCS#12 PBE
 * schemes take it as a BMPString, which forge's PKCS#12 key derivation builds from the JS string.
 */
function pbePassword(algorithmOid: string, password: string | null): string | null {
  return algorithmOid === pkcs12Oids.pbes2 ? forge.util.encodeUtf8(password ?? '') : password;
}

function readSafeContents(safeContents: Asn1, password: string | null, into: Pkcs12Contents): void {
  for (const bag of children(safeContents, 'SafeContents')) {
    const [bagIdNode, bagValue, attributesNode] = children(bag, 'SafeBag');
    const bagId = oidOf(bagIdNode, 'bagId');
    const value = children(bagValue, 'bagValue')[0];
    const attributes = readAttributes(attributesNode);
    const localKeyId = attributes.get(pkcs12Oids.localKeyId);
    const localKeyIdHex = localKeyId ? forge.util.bytesToHex(content(localKeyId, 'localKeyId')) : null;
    if (bagId === pkcs12Oids.certBag) {
      const [certId, certValue] = children(value, 'CertBag');
      if (oidOf(certId, 'certId') !== pkcs12Oids.x509Certificate) continue; // SDSI certificates: not ours
      into.certificates.push({ der: toBuffer(content(children(certValue, 'certValue')[0], 'certValue')), localKeyId: localKeyIdHex });
    } else if (bagId === pkcs12Oids.keyBag || bagId === pkcs12Oids.shroudedKeyBag) {
      let privateKeyInfo = value;
      if (bagId === pkcs12Oids.shroudedKeyBag) {
        const [algorithm, encrypted] = children(value, 'EncryptedPrivateKeyInfo');
        if (!algorithm) throw new Asn1ShapeError('EncryptedPrivateKeyInfo has no algorithm');
        const decrypted = pbeDecrypt(algorithm, content(encrypted, 'encryptedData'), password);
        if (!decrypted) throw new Pkcs12PasswordError('the password does not decrypt the private key in the PFX');
        privateKeyInfo = decrypted;
      }
      into.keys.push(readKey(privateKeyInfo, attributes, localKeyIdHex));
    } else if (bagId === pkcs12Oids.safeContentsBag && value) {
      readSafeContents(value, password, into);
    }
    // CRL and secret bags carry nothing the kit needs.
  }
}

function readKey(privateKeyInfo: Asn1 | undefined, bagAttributes: Map<string, Asn1>, localKeyId: string | null): Pkcs12Key {
  const fields = children(privateKeyInfo, 'PrivateKeyInfo');
  const [version, algorithm, privateKey] = fields;
  if (!version || !algorithm || !privateKey) throw new Asn1ShapeError('PrivateKeyInfo is incomplete');
  const keyAttributes = readAttributes(fields.find((field) => isContext(field, 0)));
  const keyUsage = keyAttributes.get(pkcs12Oids.keyUsage) ?? bagAttributes.get(pkcs12Oids.keyUsage);
  const csp = bagAttributes.get(pkcs12Oids.cspName);
  const friendly = bagAttributes.get(pkcs12Oids.friendlyName);
  const cspName = csp ? decodeString(csp) : null;
  const keyUsageAttribute = keyUsage && isUniversal(keyUsage, Type.BITSTRING) ? content(keyUsage, 'key usage') : null;
  return {
    pkcs8: toBuffer(toDer(seq([version, algorithm, privateKey]))),
    localKeyId,
    friendlyName: friendly ? decodeString(friendly) : null,
    cspName,
    keyUsageAttribute,
    localMachineKeySet: bagAttributes.has(pkcs12Oids.localMachineKeySet),
    keySpec: keySpecFromAttributes({ cspName, keyUsageAttribute }),
  };
}

/** SET OF Attribute { type, SET OF value } → type → first value (an empty SET still counts as present). */
function readAttributes(node: Asn1 | undefined): Map<string, Asn1> {
  const attributes = new Map<string, Asn1>();
  if (!node || !Array.isArray(node.value)) return attributes;
  for (const attribute of node.value) {
    const [type, values] = children(attribute, 'Attribute');
    const first = Array.isArray(values?.value) ? values.value[0] : undefined;
    attributes.set(oidOf(type, 'attribute type'), first ?? set([]));
  }
  return attributes;
}

// ---- writer -------------------------------------------------------------------------------------

export interface WritePkcs12Options {
  certDer: Buffer;
  /** The private key as PKCS#8 DER; absent: a PFX with the certificate only. */
  key?: {
    pkcs8: Buffer;
    /** Contents of the 2.5.29.15 attribute (KEY_USAGE_ATTRIBUTE_*); absent: none written. */
    keyUsageAttribute?: string;
    cspName?: string;
    localMachineKeySet?: boolean;
  };
  password: string;
  friendlyName: string;
  /**
   * aes256: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and a SHA-256 MAC, like OpenSSL 3 and
   * Windows Server 2019+. legacy: PKCS#12 PBE with TripleDES and a SHA-1 MAC, which Windows
   * Server 2016 and older need.
   */
  encryption: 'aes256' | 'legacy';
}

const ITERATIONS = 2048;

/** Builds a password-protected PFX: certificate bag encrypted, key bag shrouded, both with friendlyName and localKeyId. */
export function writePkcs12(options: WritePkcs12Options): Buffer {
  const certDer = options.certDer.toString('binary');
  // localKeyId ties the key to its certificate; like OpenSSL, the SHA-1 of the certificate.
  const localKeyId = forge.md.sha1.create().update(certDer).digest().getBytes();
  const common = [
    attribute(pkcs12Oids.friendlyName, [bmpString(options.friendlyName)]),
    attribute(pkcs12Oids.localKeyId, [octets(localKeyId)]),
  ];

  const certBag = safeBag(pkcs12Oids.certBag, seq([oid(pkcs12Oids.x509Certificate), context(0, [octets(certDer)])]), common);
  const certificates = pbeEncrypt(seq([certBag]), options);
  const authSafe: Asn1[] = [
    contentInfo(pkcs12Oids.encryptedData, seq([
      int(0),
      seq([oid(pkcs12Oids.data), certificates.algorithm, context(0, certificates.ciphertext)]),
    ])),
  ];

  if (options.key) {
    const key = options.key;
    const privateKeyInfo = children(fromDer(key.pkcs8), 'PrivateKeyInfo').slice(0, 3);
    if (key.keyUsageAttribute !== undefined) {
      // PKCS#8 attributes [0] IMPLICIT SET OF Attribute: where `openssl pkcs12 -export -keyex` puts it.
      privateKeyInfo.push(context(0, [attribute(pkcs12Oids.keyUsage, [forge.asn1.create(forge.asn1.Class.UNIVERSAL, Type.BITSTRING, false, key.keyUsageAttribute)])]));
    }
    const shrouded = pbeEncrypt(seq(privateKeyInfo), options);
    const keyAttributes = [...common];
    if (key.cspName !== undefined) keyAttributes.push(attribute(pkcs12Oids.cspName, [bmpString(key.cspName)]));
    if (key.localMachineKeySet) keyAttributes.push(attribute(pkcs12Oids.localMachineKeySet, []));
    const keyBag = safeBag(pkcs12Oids.shroudedKeyBag, seq([shrouded.algorithm, octets(shrouded.ciphertext)]), keyAttributes);
    authSafe.push(contentInfo(pkcs12Oids.data, octets(toDer(seq([keyBag])))));
  }

  const authSafeBytes = toDer(seq(authSafe));
  const legacy = options.encryption === 'legacy';
  const digestOid = legacy ? SHA1 : SHA256;
  const digest = macDigests[digestOid];
  if (!digest) throw new Error(`no MAC digest ${digestOid}`);
  const salt = randomBytes(8).toString('binary');
  const macKey = forge.pkcs12.generateKey(options.password, forge.util.createBuffer(salt), 3, ITERATIONS, digest.size, digest.create());
  const hmac = forge.hmac.create();
  hmac.start(digest.create(), macKey);
  hmac.update(authSafeBytes);
  const macData = seq([
    seq([seq([oid(digestOid), forge.asn1.create(forge.asn1.Class.UNIVERSAL, Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(salt),
    int(ITERATIONS),
  ]);
  return toBuffer(toDer(seq([int(3), contentInfo(pkcs12Oids.data, octets(authSafeBytes)), macData])));
}

/**
 * PBE encryption of any DER value. forge exposes it as encryptPrivateKeyInfo, whose result,
 * SEQUENCE { AlgorithmIdentifier, OCTET STRING }, is also what an EncryptedContentInfo holds.
 */
function pbeEncrypt(value: Asn1, options: WritePkcs12Options): { algorithm: Asn1; ciphertext: string } {
  const encrypted = options.encryption === 'legacy'
    ? forge.pki.encryptPrivateKeyInfo(value, options.password, { algorithm: '3des', count: ITERATIONS, saltSize: 8 })
    : forge.pki.encryptPrivateKeyInfo(value, forge.util.encodeUtf8(options.password), { algorithm: 'aes256', prfAlgorithm: 'sha256', count: ITERATIONS, saltSize: 8 });
  const [algorithm, ciphertext] = children(encrypted, 'EncryptedPrivateKeyInfo');
  if (!algorithm) throw new Error('forge returned no algorithm');
  return { algorithm, ciphertext: content(ciphertext, 'ciphertext') };
}

function attribute(type: string, values: Asn1[]): Asn1 {
  return seq([oid(type), set(values)]);
}

function safeBag(type: string, value: Asn1, attributes: Asn1[]): Asn1 {
  return seq([oid(type), context(0, [value]), set(attributes)]);
}

function contentInfo(type: string, value: Asn1): Asn1 {
  return seq([oid(type), context(0, [value])]);
}

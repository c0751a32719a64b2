import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { Asn1ShapeError, children, content, decodeString, fromDer, isContext, isUniversal, oidOf, toDer, Type, type Asn1 } from './asn1.ts';

/**
 * The public facts of one X.509 certificate, read from its DER with forge's ASN.1 parser (forge's
 * own certificate reader only knows RSA keys, and a non-RSA certificate must still be described so
 * the kit can say NOT_RSA). Node's X509Certificate supplies the public key (any algorithm) and the
 * signature check.
 */
export interface X509Facts {
  thumbprint: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  keyAlgorithm: string;
  keySize: number;
  signatureHash: string;
  /** Names of the key-usage bits; null when the certificate has no key-usage extension. */
  keyUsage: string[] | null;
  extendedKeyUsage: string[];
  selfSigned: boolean;
  publicKey: KeyObject;
}

/** Short names of the attribute types (RFC 4514 and what Windows shows). */
export const nameAttributeOids: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'SERIALNUMBER',
  '2.5.4.4': 'SN',
  '2.5.4.42': 'G',
  '2.5.4.12': 'T',
  '1.2.840.113549.1.9.1': 'E',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

/** Key-usage bits in the order of RFC 5280 (bit 0 is the high bit of the first byte). */
const keyUsageBits = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;

const extendedKeyUsageNames: Readonly<Record<string, string>> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '1.3.6.1.4.1.311.10.3.12': 'documentSigning',
  '1.3.6.1.4.1.311.20.2.2': 'smartcardLogon',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

/** Signature algorithm → the hash it uses (what WEAK_SIGNATURE looks at). */
const signatureHashes: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.2': 'MD2',
  '1.2.840.113549.1.1.4': 'MD5',
  '1.2.840.113549.1.1.5': 'SHA-1',
  '1.2.840.113549.1.1.14': 'SHA-224',
  '1.2.840.113549.1.1.11': 'SHA-256',
  '1.2.840.113549.1.1.12': 'SHA-384',
  '1.2.840.113549.1.1.13': 'SHA-512',
  '1.2.840.10045.4.1': 'SHA-1',
  '1.2.840.10045.4.3.1': 'SHA-224',
  '1.2.840.10045.4.3.2': 'SHA-256',
  '1.2.840.10045.4.3.3': 'SHA-384',
  '1.2.840.10045.4.3.4': 'SHA-512',
  '1.2.840.10040.4.3': 'SHA-1',
  '2.16.840.1.101.3.4.3.2': 'SHA-256',
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
};
const hashAlgorithmNames: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'SHA-1',
  '2.16.840.1.101.3.4.2.4': 'SHA-224',
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
};
const RSASSA_PSS = '1.2.840.113549.1.1.10';

const curveSizes: Readonly<Record<string, number>> = { prime256v1: 256, 'P-256': 256, secp384r1: 384, 'P-384': 384, secp521r1: 521, 'P-521': 521, secp256k1: 256 };

/** SHA-1 of the DER certificate, upper-case hex: the thumbprint Windows and CRM show. */
export function thumbprintOf(der: Buffer): string {
  return createHash('sha1').update(der).digest('hex').toUpperCase();
}

/** Reads a DER certificate; throws Asn1ShapeError (or Node's parse error) when it is not one. */
export function readX509(der: Buffer): X509Facts {
  const node = new X509Certificate(der);
  const [tbs, signatureAlgorithm] = children(fromDer(der), 'Certificate');
  const fields = children(tbs, 'TBSCertificate');
  // version [0] is optional (absent for v1 certificates).
  const offset = isContext(fields[0], 0) ? 1 : 0;
  const at = (i: number) => fields[offset + i];
  const serial = at(0);
  if (!isUniversal(serial, Type.INTEGER)) throw new Asn1ShapeError('serialNumber is not an INTEGER');
  const issuerNode = at(2);
  const [notBeforeNode, notAfterNode] = children(at(3), 'validity');
  const subjectNode = at(4);
  const issuerDer = toDer(assertName(issuerNode, 'issuer'));
  const subjectDer = toDer(assertName(subjectNode, 'subject'));
  const extensions = readExtensions(fields.slice(offset + 6));

  const publicKey = node.publicKey;
  const { keyAlgorithm, keySize } = describeKey(publicKey);
  let selfSigned = false;
  if (issuerDer === subjectDer) {
    try {
      selfSigned = node.verify(publicKey);
    } catch {
      selfSigned = false;
    }
  }
  return {
    thumbprint: thumbprintOf(der),
    subject: formatName(subjectNode),
    issuer: formatName(issuerNode),
    serialNumber: forge.util.bytesToHex(content(serial, 'serialNumber')).toUpperCase(),
    notBefore: readTime(notBeforeNode),
    notAfter: readTime(notAfterNode),
    keyAlgorithm,
    keySize,
    signatureHash: signatureHashOf(signatureAlgorithm),
    keyUsage: extensions.keyUsage,
    extendedKeyUsage: extensions.extendedKeyUsage,
    selfSigned,
    publicKey,
  };
}

/**
 * The bytes of the certificate's subject Name exactly as they are in the certificate (what Windows'
 * X509Certificate2.SubjectName.RawData holds): sliced from the DER, not re-encoded, so a name that
 * is not in the shortest encoding still compares equal to Windows' bytes. The structure is checked
 * with forge's parser first (Certificate → TBSCertificate → version? serial signature issuer
 * validity subject); the slice walks the same TLVs over the raw bytes.
 */
export function subjectNameDer(der: Buffer): Buffer {
  const [tbsNode] = children(fromDer(der, false), 'Certificate');
  const fields = children(tbsNode, 'TBSCertificate');
  const offset = isContext(fields[0], 0) ? 1 : 0;
  assertName(fields[offset + 4], 'subject');
  const certificate = tlvAt(der, 0, 'Certificate');
  const tbs = tlvAt(der, certificate.contentStart, 'TBSCertificate');
  let field = tlvAt(der, tbs.contentStart, 'TBSCertificate field');
  for (let i = 0; i < offset + 4; i += 1) field = tlvAt(der, field.end, 'TBSCertificate field');
  if (field.end > tbs.end || der[field.start] !== 0x30) throw new Asn1ShapeError('subject is not a name');
  return Buffer.from(der.subarray(field.start, field.end));
}

/** One tag-length-value at `start` (single-byte tags, definite lengths: what a certificate has). */
function tlvAt(der: Buffer, start: number, what: string): { start: number; contentStart: number; end: number } {
  const lengthByte = der[start + 1];
  if (der[start] === undefined || lengthByte === undefined || (der[start] & 0x1f) === 0x1f) throw new Asn1ShapeError(`${what} is truncated or has a long tag`);
  let length = lengthByte;
  let contentStart = start + 2;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 4) throw new Asn1ShapeError(`${what} has an indefinite or too long length`);
    length = 0;
    for (let i = 0; i < count; i += 1) {
      const b = der[contentStart + i];
      if (b === undefined) throw new Asn1ShapeError(`${what} is truncated`);
      length = length * 256 + b;
    }
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Asn1ShapeError(`${what} is truncated`);
  return { start, contentStart, end };
}

function assertName(node: Asn1 | undefined, what: string): Asn1 {
  if (!isUniversal(node, Type.SEQUENCE)) throw new Asn1ShapeError(`${what} is not a name`);
  return node;
}

function readTime(node: Asn1 | undefined): Date {
  if (isUniversal(node, Type.UTCTIME)) return forge.asn1.utcTimeToDate(content(node, 'time'));
  if (isUniversal(node, Type.GENERALIZEDTIME)) return forge.asn1.generalizedTimeToDate(content(node, 'time'));
  throw new Asn1ShapeError('validity is not a time');
}

function describeKey(key: KeyObject): { keyAlgorithm: string; keySize: number } {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { keyAlgorithm: 'RSA', keySize: details.modulusLength ?? 0 };
    case 'rsa-pss':
      return { keyAlgorithm: 'RSA-PSS', keySize: details.modulusLength ?? 0 };
    case 'dsa':
      return { keyAlgorithm: 'DSA', keySize: details.modulusLength ?? 0 };
    case 'ec':
      return { keyAlgorithm: 'EC', keySize: curveSizes[details.namedCurve ?? ''] ?? 0 };
    case 'ed25519':
      return { keyAlgorithm: 'Ed25519', keySize: 256 };
    case 'ed448':
      return { keyAlgorithm: 'Ed448', keySize: 456 };
    default:
      return { keyAlgorithm: (key.asymmetricKeyType ?? 'unknown').toUpperCase(), keySize: 0 };
  }
}

function signatureHashOf(algorithm: Asn1 | undefined): string {
  const [algorithmOid, parameters] = children(algorithm, 'signatureAlgorithm');
  const id = oidOf(algorithmOid, 'signatureAlgorithm');
  if (id !== RSASSA_PSS) return signatureHashes[id] ?? id;
  // RSASSA-PSS: hashAlgorithm [0] in the parameters, SHA-1 when absent (RFC 4055).
  const hashField = Array.isArray(parameters?.value) ? parameters.value.find((p) => isContext(p, 0)) : undefined;
  if (!hashField) return 'SHA-1';
  const hashOid = oidOf(children(children(hashField, 'hashAlgorithm')[0], 'hashAlgorithm')[0], 'hashAlgorithm');
  return hashAlgorithmNames[hashOid] ?? hashOid;
}

function readExtensions(rest: Asn1[]): { keyUsage: string[] | null; extendedKeyUsage: string[] } {
  const wrapper = rest.find((node) => isContext(node, 3));
  let keyUsage: string[] | null = null;
  let extendedKeyUsage: string[] = [];
  if (!wrapper) return { keyUsage, extendedKeyUsage };
  for (const extension of children(children(wrapper, 'extensions')[0], 'extensions')) {
    const parts = children(extension, 'extension');
    const id = oidOf(parts[0], 'extnID');
    const value = parts[parts.length - 1];
    if (id === '2.5.29.15') keyUsage = keyUsageNames(content(fromDer(content(value, 'keyUsage'), false), 'keyUsage'));
    if (id === '2.5.29.37') {
      extendedKeyUsage = children(fromDer(content(value, 'extKeyUsage'), false), 'extKeyUsage').map((p) => {
        const usage = oidOf(p, 'keyPurposeId');
        return extendedKeyUsageNames[usage] ?? usage;
      });
    }
  }
  return { keyUsage, extendedKeyUsage };
}

/** The names of the bits set in a BIT STRING's contents (first byte: unused bits). */
export function keyUsageNames(bitString: string): string[] {
  return keyUsageBits.filter((_, bit) => {
    const byte = bitString.charCodeAt(1 + (bit >> 3));
    return !Number.isNaN(byte) && (byte & (0x80 >> (bit & 7))) !== 0;
  });
}

/**
 * A Name as Windows and RFC 4514 write it: most specific first ("CN=crm, O=Contoso, C=US"), the
 * reverse of the order in the DER. Multi-valued RDNs are joined with "+".
 */
export function formatName(name: Asn1 | undefined): string {
  const rdns = children(name, 'name').map((rdn) =>
    children(rdn, 'RDN')
      .map((attribute) => {
        const [type, value] = children(attribute, 'attribute');
        const typeOid = oidOf(type, 'attribute type');
        const text = value ? decodeString(value) : null;
        const shown = text === null ? `#${value ? forge.util.bytesToHex(toDer(value)) : ''}` : escapeValue(text);
        return `${nameAttributeOids[typeOid] ?? typeOid}=${shown}`;
      })
      .join('+'),
  );
  return rdns.reverse().join(', ');
}

function escapeValue(text: string): string {
  let escaped = text.replace(/[\\,+"<>;]/g, (c) => `\\${c}`);
  if (escaped.startsWith('#') || escaped.startsWith(' ')) escaped = `\\${escaped}`;
  if (escaped.endsWith(' ') && escaped.length > 1) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}

/**
 * Parses "CN=crm-s2s.contoso.com, O=Contoso" (RFC 4514 order, backslash escapes) into attributes in
 * DER order (least specific first), for the evaluation certificate. Null when it is not a name.
 */
export function parseName(text: string): { oid: string; value: string }[] | null {
  const byName = new Map(Object.entries(nameAttributeOids).map(([id, short]) => [short, id]));
  byName.set('S', '2.5.4.8');
  byName.set('EMAIL', '1.2.840.113549.1.9.1');
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i] ?? '';
    if (c === '\\' && i + 1 < text.length) {
      current += c + (text[i + 1] ?? '');
      i += 1;
    } else if (c === ',') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  const attributes: { oid: string; value: string }[] = [];
  for (const part of parts) {
    const match = /^\s*([A-Za-z][A-Za-z0-9]*|\d+(?:\.\d+)+)\s*=\s*(.*?)\s*$/.exec(part);
    if (!match?.[1] || match[2] === undefined) return null;
    const id = /^\d/.test(match[1]) ? match[1] : byName.get(match[1].toUpperCase());
    const value = match[2].replace(/\\(.)/g, '$1');
    if (!id || value === '') return null;
    attributes.push({ oid: id, value });
  }
  return attributes.reverse();
}

import forge from 'node-forge';

/**
 * Small typed helpers over node-forge's ASN.1 nodes, shared by the X.509 reader (cert-x509.ts) and
 * the PKCS#12 reader and writer (cert-pkcs12.ts). forge works on "binary strings" (one char per
 * byte); these helpers keep that inside the certificate files and hand Buffers to everyone else.
 */
export type Asn1 = forge.asn1.Asn1;

const { Class, Type } = forge.asn1;
export { Class, Type };

/** Thrown by the helpers when a structure is not what it must be; the callers turn it into CERT_INVALID. */
export class Asn1ShapeError extends Error {
  override readonly name = 'Asn1ShapeError';
}

/**
 * Parses DER (or BER, when not strict). BIT STRING contents stay as they are: forge would otherwise
 * try to decode them as nested ASN.1, which turns a key-usage bit string into nonsense now and then.
 */
export function fromDer(bytes: string | Buffer, strict = true): Asn1 {
  const binary = typeof bytes === 'string' ? bytes : bytes.toString('binary');
  const parse = forge.asn1.fromDer as unknown as (input: string, options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean }) => Asn1;
  return parse(binary, { strict, parseAllBytes: strict, decodeBitStrings: false });
}

export function toDer(node: Asn1): string {
  return forge.asn1.toDer(node).getBytes();
}

export function toBuffer(binary: string): Buffer {
  return Buffer.from(binary, 'binary');
}

/** The children of a constructed node; throws when it is not one. */
export function children(node: Asn1 | undefined, what: string): Asn1[] {
  if (!node || !Array.isArray(node.value)) throw new Asn1ShapeError(`${what} is missing or not a structure`);
  return node.value;
}

/** The content bytes of a primitive node; constructed (BER-chunked) strings are joined. */
export function content(node: Asn1 | undefined, what: string): string {
  if (!node) throw new Asn1ShapeError(`${what} is missing`);
  if (typeof node.value === 'string') return node.value;
  return node.value.map((part) => content(part, what)).join('');
}

export function isUniversal(node: Asn1 | undefined, type: forge.asn1.Type): node is Asn1 {
  return node !== undefined && node.tagClass === Class.UNIVERSAL && node.type === type;
}

export function isContext(node: Asn1 | undefined, tag: number): node is Asn1 {
  return node !== undefined && node.tagClass === Class.CONTEXT_SPECIFIC && (node.type as number) === tag;
}

export function oidOf(node: Asn1 | undefined, what: string): string {
  if (!isUniversal(node, Type.OID)) throw new Asn1ShapeError(`${what} is not an object identifier`);
  return forge.asn1.derToOid(content(node, what));
}

// ---- builders (for the PKCS#12 writer) ----------------------------------------------------------

export function seq(items: Asn1[]): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
}

export function set(items: Asn1[]): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.SET, true, items);
}

export function oid(value: string): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.OID, false, forge.asn1.oidToDer(value).getBytes());
}

export function int(value: number): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.asn1.integerToDer(value).getBytes());
}

export function octets(binary: string): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, binary);
}

/** [n] EXPLICIT (constructed) or IMPLICIT primitive context tag. */
export function context(tag: number, value: Asn1[] | string): Asn1 {
  return forge.asn1.create(Class.CONTEXT_SPECIFIC, tag, Array.isArray(value), value);
}

/** BMPString, what PKCS#12 uses for friendlyName and the Microsoft CSP name (forge keeps it as a JS string and encodes UCS-2 itself). */
export function bmpString(text: string): Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.BMPSTRING, false, text);
}

/** Decodes the string types certificates and PKCS#12 attributes use; null for anything else. */
export function decodeString(node: Asn1): string | null {
  if (node.tagClass !== Class.UNIVERSAL || typeof node.value !== 'string') return null;
  const bytes = node.value;
  const type: number = node.type;
  if (type === 12 /* UTF8String */) {
    try {
      return forge.util.decodeUtf8(bytes);
    } catch {
      return bytes;
    }
  }
  // Printable, Teletex, Videotex, IA5, Visible: one byte per character.
  if ([19, 20, 21, 22, 26].includes(type)) return bytes;
  if (type === 30 /* BMPString */) return bytes; // forge decodes it to a JS string already
  if (type === 28 /* UniversalString */) {
    let text = '';
    for (let i = 0; i + 3 < bytes.length; i += 4) {
      text += String.fromCodePoint(((bytes.charCodeAt(i) << 24) | (bytes.charCodeAt(i + 1) << 16) | (bytes.charCodeAt(i + 2) << 8) | bytes.charCodeAt(i + 3)) >>> 0);
    }
    return text;
  }
  return null;
}

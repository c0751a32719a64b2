import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { SetupError } from '../../../core/setup-error.ts';

/**
 * The certificate credential of the helper app registration, from one PEM holding the
 * certificate (optionally its chain) and the unencrypted private key (GRAPH_CLIENT_CERT_FILE), in
 * the form msal-node wants: SHA-256 thumbprint (hex), PKCS#8 private key, x5c chain.
 * Errors never carry key material.
 */
export interface MsalClientCertificate {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END \1?PRIVATE KEY-----/;
const HINT = 'GRAPH_CLIENT_CERT_FILE must be a PEM file with the certificate uploaded to the app registration and its unencrypted private key (for example: openssl pkcs12 -in app.pfx -nodes -out app.pem).';

export function parseClientCertificatePem(pem: string): MsalClientCertificate {
  const certBlocks = pem.match(CERT_BLOCK) ?? [];
  const first = certBlocks[0];
  if (first === undefined) throw new SetupError('CONFIG_INVALID', 'The Graph client certificate file holds no certificate.', { hint: HINT });
  const keyBlock = KEY_BLOCK.exec(pem);
  if (!keyBlock) throw new SetupError('CONFIG_INVALID', 'The Graph client certificate file holds no private key.', { hint: HINT });
  if (keyBlock[1] === 'ENCRYPTED ') throw new SetupError('CONFIG_INVALID', 'The private key in the Graph client certificate file is encrypted.', { hint: HINT });
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(first);
  } catch {
    throw new SetupError('CONFIG_INVALID', 'The certificate in the Graph client certificate file cannot be read.', { hint: HINT });
  }
  try {
    key = createPrivateKey(keyBlock[0]);
  } catch {
    throw new SetupError('CONFIG_INVALID', 'The private key in the Graph client certificate file cannot be read.', { hint: HINT });
  }
  if (key.asymmetricKeyType !== 'rsa') throw new SetupError('CONFIG_INVALID', 'The Graph client certificate must have an RSA key.', { hint: HINT });
  if (!cert.checkPrivateKey(key)) {
    throw new SetupError('CONFIG_INVALID', 'The private key in the Graph client certificate file does not belong to its certificate.', { hint: HINT });
  }
  return {
    thumbprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    privateKey: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    x5c: certBlocks.join('\n'),
  };
}

import { X509Certificate } from 'node:crypto';
import { subjectDerBase64 } from '../../../agent/certkit/kit.ts';
import { makeEvaluationPfx, type EvaluationPfxOptions } from '../../../agent/certkit/evaluation-pfx.ts';

export interface TestCertificate {
  pfx: Buffer;
  password: string;
  thumbprint: string;
  derBase64: string;
  subjectDer: string;
}

function certificate(subject: string, options: Partial<EvaluationPfxOptions> = {}): TestCertificate {
  const password = 'pfx-pass';
  // 1024-bit keys: these certificates are only read, and generating them is then quick.
  const made = makeEvaluationPfx({ subject, days: 365, password, keySize: 1024, ...options });
  const derBase64 = new X509Certificate(made.certPem).raw.toString('base64');
  return { pfx: made.pfx, password, thumbprint: made.thumbprint, derBase64, subjectDer: subjectDerBase64(derBase64) };
}

/** The certificates the script cases put in CRM and in LocalMachine\My (public parts; PFX for the import). */
export const S2S_CERT = certificate('CN=crm-s2s.contoso.com, O=Contoso');
/** Same subject as S2S_CERT, another key: a renewal. */
export const RENEWED_CERT = certificate('CN=crm-s2s.contoso.com, O=Contoso');
export const REGISTERED_CERT = certificate('CN=crm-s2s-old.contoso.com, O=Contoso');
/** A PFX with the certificate only. */
export const NO_KEY_PFX = certificate('CN=crm-s2s-nokey.contoso.com', { includePrivateKey: false });

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeEvaluationPfx } from '../agent/certkit/evaluation-pfx.ts';

export interface DemoCertificates {
  dir: string;
  password: string;
  /** The certificate `cert rotate` picks by default (CERT_NEW_PFX). */
  good: { file: string; thumbprint: string };
  /** A 1024-bit, SHA-1 certificate: `cert rotate s2s-weak.pfx` shows a blocked plan. */
  weak: { file: string; thumbprint: string };
}

/**
 * The PFX files an administrator would place in the agent's CERT_DIR, made for the demo and the
 * tests: a good replacement certificate and a weak one. A fresh random password each time; files
 * are written readable by the owner only.
 */
export function writeDemoCertificates(dir: string, now = Date.now()): DemoCertificates {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  const good = makeEvaluationPfx({ subject: 'CN=crm-s2s-2027.contoso.com, O=Contoso', days: 730, password, now });
  const weak = makeEvaluationPfx({ subject: 'CN=crm-s2s-weak.contoso.com, O=Contoso', days: 365, password, now, keySize: 1024, signatureHash: 'sha1' });
  writeFileSync(join(dir, 's2s-new.pfx'), good.pfx, { mode: 0o600 });
  writeFileSync(join(dir, 's2s-weak.pfx'), weak.pfx, { mode: 0o600 });
  return {
    dir,
    password,
    good: { file: 's2s-new.pfx', thumbprint: good.thumbprint },
    weak: { file: 's2s-weak.pfx', thumbprint: weak.thumbprint },
  };
}

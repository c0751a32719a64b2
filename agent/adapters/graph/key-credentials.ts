import { createHash } from 'node:crypto';
import { SetupError } from '../../../core/setup-error.ts';
import type { CertSummary, KeyCredentialInfo } from '../../../jobs/cert-types.ts';
import type { GraphKeyCredential, KeyCredentialInput } from './api.ts';

/** SHA-1 of a base64 DER certificate, upper-case hex: the thumbprint Windows and CRM show. */
export function thumbprintOfDer(derBase64: string): string {
  return createHash('sha1').update(Buffer.from(derBase64, 'base64')).digest('hex').toUpperCase();
}

/** customKeyIdentifier as Graph stores it for a certificate: base64 of the thumbprint's 20 bytes. */
export function customKeyIdentifierOf(thumbprint: string): string {
  return Buffer.from(thumbprint, 'hex').toString('base64');
}

/**
 * The thumbprint of a key credential: from customKeyIdentifier when it holds 20 bytes (the SHA-1),
 * else the SHA-1 of its key when Graph returned the key; null when neither tells.
 */
export function thumbprintOfKeyCredential(credential: Pick<GraphKeyCredential, 'customKeyIdentifier' | 'key'>): string | null {
  if (credential.customKeyIdentifier) {
    const bytes = Buffer.from(credential.customKeyIdentifier, 'base64');
    if (bytes.length === 20) return bytes.toString('hex').toUpperCase();
  }
  return credential.key ? thumbprintOfDer(credential.key) : null;
}

const isoOrNull = (value: string | null): string | null => {
  if (!value) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
};

/** The public facts of a key credential, for cards. */
export function keyCredentialInfo(credential: GraphKeyCredential): KeyCredentialInfo {
  return {
    keyId: credential.keyId.slice(0, 64),
    thumbprint: thumbprintOfKeyCredential(credential),
    displayName: credential.displayName === null ? null : credential.displayName.slice(0, 400),
    usage: credential.usage.slice(0, 20),
    type: credential.type.slice(0, 40),
    startDateTime: isoOrNull(credential.startDateTime),
    endDateTime: isoOrNull(credential.endDateTime),
  };
}

/** Valid at `now`: started and not yet ended (an absent date does not limit). */
export function isCurrent(credential: Pick<GraphKeyCredential, 'startDateTime' | 'endDateTime'>, now: number): boolean {
  const start = credential.startDateTime ? Date.parse(credential.startDateTime) : Number.NEGATIVE_INFINITY;
  const end = credential.endDateTime ? Date.parse(credential.endDateTime) : Number.POSITIVE_INFINITY;
  return start <= now && end > now;
}

export function isExpired(credential: Pick<GraphKeyCredential, 'endDateTime'>, now: number): boolean {
  return credential.endDateTime !== null && Date.parse(credential.endDateTime) <= now;
}

/** A key credential for the certificate (procedure §2.3: AsymmetricX509Cert, Verify, subject as name). */
export function newKeyCredential(summary: CertSummary, derBase64: string): KeyCredentialInput {
  return {
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key: derBase64,
    displayName: summary.subject,
    startDateTime: summary.notBefore,
    endDateTime: summary.notAfter,
    customKeyIdentifier: customKeyIdentifierOf(summary.thumbprint),
  };
}

/**
 * An existing credential as it must be written back (PATCH replaces the whole list): same keyId,
 * same key, same dates. Only certificate credentials can be written back, and only whole.
 */
export function keepKeyCredential(credential: GraphKeyCredential): KeyCredentialInput {
  const { key, startDateTime, endDateTime } = credential;
  if (credential.type !== 'AsymmetricX509Cert' || credential.usage !== 'Verify' || !key || !startDateTime || !endDateTime) {
    throw new SetupError(
      'GRAPH_REQUEST_FAILED',
      `The CRM service principal has a key credential (${credential.keyId}, ${credential.type}/${credential.usage}) this agent cannot write back unchanged${key ? '' : ' (Graph did not return its key)'}.`,
      { hint: 'Look at the key credentials of the Microsoft Dynamics CRM service principal in Entra ID; remove the ones that are not S2S certificates (they would be lost on a write), then Resume.' },
    );
  }
  return {
    keyId: credential.keyId,
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key,
    displayName: credential.displayName ?? '',
    startDateTime,
    endDateTime,
    ...(credential.customKeyIdentifier ? { customKeyIdentifier: credential.customKeyIdentifier } : {}),
  };
}

export interface KeyCredentialPlan {
  /** The new list, or undefined when nothing would change. */
  write: KeyCredentialInput[] | undefined;
  added: boolean;
  /** Expired credentials dropped. */
  dropped: number;
  /** Credentials removed on purpose (retire-old). */
  removed: number;
}

/**
 * Read-merge-write (procedure §2.3): keep every existing credential with its key, drop only the
 * expired ones (unless `keepExpired`: a change that must touch exactly one credential), add `add`
 * unless a credential with its thumbprint is present, remove the ones with a thumbprint in `remove`.
 */
export function mergeKeyCredentials(
  existing: readonly GraphKeyCredential[],
  now: number,
  change: { add?: KeyCredentialInput; addThumbprint?: string; remove?: readonly string[]; keepExpired?: boolean },
): KeyCredentialPlan {
  const remove = new Set(change.remove ?? []);
  let dropped = 0;
  let removed = 0;
  const kept: GraphKeyCredential[] = [];
  for (const credential of existing) {
    const thumbprint = thumbprintOfKeyCredential(credential);
    if (thumbprint !== null && remove.has(thumbprint)) removed += 1;
    else if (!change.keepExpired && isExpired(credential, now)) dropped += 1;
    else kept.push(credential);
  }
  const present = change.addThumbprint !== undefined && kept.some((c) => thumbprintOfKeyCredential(c) === change.addThumbprint);
  const added = change.add !== undefined && !present;
  if (!added && dropped === 0 && removed === 0) return { write: undefined, added, dropped, removed };
  const write = kept.map(keepKeyCredential);
  if (added && change.add) write.push(change.add);
  return { write, added, dropped, removed };
}

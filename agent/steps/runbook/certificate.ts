import { isSetupError } from '../../../core/setup-error.ts';
import type { CertProblem, CertSummary } from '../../../jobs/cert-types.ts';
import { readRegistered } from '../cert/register-crm.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { blockingProblems, describeCert, readNewCert, type NewCert } from '../cert/validate.ts';
import type { JobContext } from '../../runtime/job-context.ts';

/**
 * The S2S certificate `run setup` uses (docs/runbook.md): the certificate CRM has registered when it
 * is valid, otherwise the agent's CERT_NEW_PFX in CERT_DIR. Replacing a valid registered
 * certificate is `cert rotate`'s job, not the runbook's.
 */
export interface ChosenCert {
  source: 'registered' | 'pfx';
  summary: CertSummary;
  derBase64: string;
  /** CERT_NEW_PFX when it holds this certificate (the import step needs its private key); null otherwise. */
  pfx: NewCert | null;
  /** Error-severity requirement problems (the plan is blocked, the run refuses). */
  errors: CertProblem[];
}

export interface CertChoice {
  cert: ChosenCert | null;
  /** Why there is no usable certificate, and what to do (cert null, or errors). */
  problem?: { message: string; fix: string };
}

const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Picks the runbook's certificate; never throws for a missing or unreadable PFX (the choice says why). */
export async function chooseCertificate(ctx: JobContext, certs: ReadyCerts): Promise<CertChoice> {
  const registered = await readRegistered(ctx, certs);
  let pfx: NewCert | null = null;
  let pfxProblem: { message: string; fix: string } | undefined;
  if (!certs.settings.CERT_DIR) {
    pfxProblem = {
      message: 'CERT_DIR is not set, so the agent has no PFX to use.',
      fix: `Put the S2S certificate's PFX in a folder on the agent host and set CERT_DIR to it, CERT_NEW_PFX to the file name (now ${certs.settings.CERT_NEW_PFX}) and CERT_PFX_PASSWORD; restart the agent.`,
    };
  } else {
    try {
      pfx = await readNewCert(ctx, { ...certs, certDir: certs.settings.CERT_DIR }, undefined);
    } catch (error) {
      pfxProblem = {
        message: `${certs.settings.CERT_NEW_PFX} in CERT_DIR cannot be used: ${reason(error)}`,
        fix: (isSetupError(error) ? error.hint : undefined) ?? 'Check CERT_DIR, CERT_NEW_PFX and CERT_PFX_PASSWORD on the agent.',
      };
    }
  }

  if (registered) {
    const summary = certs.kit.summarizeDer(registered.derBase64, { now: ctx.now(), minDaysLeft: certs.settings.CERT_MIN_DAYS_LEFT });
    if (blockingProblems(summary).length === 0) {
      return { cert: { source: 'registered', summary, derBase64: registered.derBase64, pfx: pfx?.summary.thumbprint === summary.thumbprint ? pfx : null, errors: [] } };
    }
  }
  if (pfx) {
    const errors = blockingProblems(pfx.summary);
    return {
      cert: { source: 'pfx', summary: pfx.summary, derBase64: pfx.derBase64, pfx, errors },
      ...(errors.length > 0
        ? { problem: { message: `${pfx.fileName} cannot be used: ${errors.map((e) => e.message).join('; ')}`, fix: errors.map((e) => e.fix).join(' ') } }
        : {}),
    };
  }
  return {
    cert: null,
    problem: pfxProblem ?? { message: 'No certificate is registered and no PFX can be read.', fix: 'Set CERT_DIR and CERT_NEW_PFX on the agent.' },
  };
}

/** "the registered certificate CN=…, thumbprint …, valid until …" or "s2s-new.pfx: CN=…". */
export function describeChoice(cert: ChosenCert): string {
  return cert.source === 'registered' ? `the registered certificate ${describeCert(cert.summary)}` : `${cert.pfx?.fileName ?? 'the PFX'}: ${describeCert(cert.summary)}`;
}

/** The certificate services with nothing required (preflight reports what is missing itself). */
export function certServicesOf(ctx: JobContext): ReadyCerts {
  return requireCerts(ctx, []);
}

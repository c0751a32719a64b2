import { SetupError } from '../../../core/setup-error.ts';
import type { setupCertStepIds } from '../../../jobs/runbook-types.ts';
import {
  checkEntra,
  checkSettings,
  describeEntra,
  DUPLICATE_SUBJECT_FIX,
  entraStep,
  grantKeyAccessStep,
  importAction,
  importStep,
  joinDetail,
  listServers,
  machineCert,
  readRegistered,
  registerStep,
  restartStep,
  settingsStep,
  type MachineCert,
} from '../cert/checks.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import { onServer } from '../cert/on-server.ts';
import { refOf, withPfxCopy } from '../../jobs/cert/rotate.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import type { ChosenCert } from './certificate.ts';

/**
 * The certificate steps of `run setup` (procedure §1, §2.2, §2.3, §8): the rotation's own step code
 * (cert-checks.ts) wrapped as RunbookSteps, so both paths do exactly the same thing. `wrote` is
 * whether the step changed anything; `changed` keeps its meaning (the async services must restart).
 */
export type SetupCertStepId = (typeof setupCertStepIds)[number];

const upToDate = (detail: string): StepCheck => ({ upToDate: true, detail: `already done: ${detail}` });
const would = (detail: string): StepCheck => ({ upToDate: false, detail });

/** Each server's store for the certificate, read once per check. */
async function readStores(env: RunbookEnv, certs: ReadyCerts, cert: ChosenCert): Promise<Map<string, MachineCert>> {
  const out = new Map<string, MachineCert>();
  for (const server of certs.servers) out.set(server, await onServer(server, () => machineCert(env.ctx, certs, server, { thumbprint: cert.summary.thumbprint, derBase64: cert.derBase64 })));
  return out;
}

/** The registered certificate is on a server that lacks it only when its PFX is CERT_NEW_PFX. */
function cannotImport(certs: ReadyCerts, cert: ChosenCert, servers: readonly string[]): SetupError {
  return new SetupError(
    'STEP_FAILED',
    `The registered certificate ${cert.summary.thumbprint} is not on ${listServers(servers)}, and ${certs.settings.CERT_NEW_PFX} in CERT_DIR is not that certificate, so the runbook cannot import it.`,
    {
      hint: `Put the registered certificate's PFX (with its private key) in CERT_DIR as ${certs.settings.CERT_NEW_PFX} and Resume, or import it on ${listServers(servers)} by hand (certutil -importpfx <file> AT_KEYEXCHANGE) and Resume. To move to another certificate use @setup cert rotate.`,
    },
  );
}

export function setupCertSteps(certs: ReadyCerts, cert: ChosenCert, restartOwed: () => boolean): Record<SetupCertStepId, RunbookStep> {
  const ref = refOf(cert);
  const thumbprint = cert.summary.thumbprint;

  const importCheck = async (env: RunbookEnv): Promise<StepCheck> => {
    const stores = await readStores(env, certs, cert);
    const duplicate = [...stores].filter(([, m]) => importAction(m) === 'refuse').map(([s]) => s);
    const missing = [...stores].filter(([, m]) => importAction(m) === 'import').map(([s]) => s);
    if (duplicate.length > 0) {
      return { upToDate: false, detail: `cannot import: another certificate has this subject on ${listServers(duplicate)}`, blocker: { message: `Another certificate with the subject of ${thumbprint} is on ${listServers(duplicate)}.`, fix: DUPLICATE_SUBJECT_FIX } };
    }
    if (missing.length === 0) return upToDate(`${thumbprint} is on ${listServers(certs.servers)} with KeySpec 1`);
    if (!cert.pfx) {
      const e = cannotImport(certs, cert, missing);
      return { upToDate: false, detail: `cannot import on ${listServers(missing)}: no PFX of the registered certificate`, blocker: { message: e.message, fix: e.hint ?? '' } };
    }
    return would(joinDetail([`would import ${thumbprint} on ${listServers(missing)}`, missing.length < certs.servers.length && 'already on the others']));
  };

  const grantCheck = async (env: RunbookEnv): Promise<StepCheck> => {
    const stores = await readStores(env, certs, cert);
    const lacking = [...stores].filter(([, m]) => !(m.found && m.serviceAccountCanRead)).map(([s]) => s);
    if (lacking.length === 0) return upToDate(`${certs.serviceAccount} can read the key on ${listServers(certs.servers)}`);
    return would(`would grant ${certs.serviceAccount} Read on the private key on ${listServers(lacking)}`);
  };

  return {
    import: {
      id: 'import',
      check: importCheck,
      async apply(env) {
        if (cert.pfx) {
          const pfx = cert.pfx;
          const out = await withPfxCopy(pfx, (path) => importStep(env.ctx, certs, ref, { path, password: certs.settings.CERT_PFX_PASSWORD }));
          return { ...out, wrote: out.changed === true };
        }
        // The registered certificate without its PFX: fine only where it is already imported.
        const stores = await readStores(env, certs, cert);
        const duplicate = [...stores].filter(([, m]) => importAction(m) === 'refuse').map(([s]) => s);
        if (duplicate.length > 0) throw new SetupError('STEP_FAILED', `another certificate with the same subject is in LocalMachine\\My on ${listServers(duplicate)}.`, { hint: DUPLICATE_SUBJECT_FIX });
        const missing = [...stores].filter(([, m]) => importAction(m) === 'import').map(([s]) => s);
        if (missing.length > 0) throw cannotImport(certs, cert, missing);
        return { detail: `already on ${listServers(certs.servers)}`, changed: false, wrote: false };
      },
    },
    'grant-key-access': {
      id: 'grant-key-access',
      check: grantCheck,
      async apply(env) {
        const out = await grantKeyAccessStep(env.ctx, certs, ref);
        return { ...out, wrote: out.changed === true };
      },
    },
    'register-crm': {
      id: 'register-crm',
      async check(env) {
        const registered = await readRegistered(env.ctx, certs);
        if (registered?.thumbprint === thumbprint) return upToDate(`${thumbprint} is registered`);
        return would(`would register ${thumbprint} as the S2S token issuer${registered ? ` (replacing ${registered.thumbprint})` : ''}`);
      },
      async apply(env) {
        const out = await registerStep(env.ctx, certs, ref);
        return { ...out, wrote: out.changed === true };
      },
    },
    'entra-key-credential': {
      id: 'entra-key-credential',
      async check(env) {
        const check = await checkEntra(certs.graph(), env.ctx.now(), cert);
        if (!check.plan.added && check.plan.dropped === 0 && !check.spnMissing) return upToDate('the key credential is on the CRM service principal');
        return would(describeEntra(check, true));
      },
      async apply(env) {
        const before = await checkEntra(certs.graph(), env.ctx.now(), cert);
        const wrote = before.plan.added || before.plan.dropped > 0 || before.spnMissing;
        const out = await entraStep(env.ctx, certs, cert);
        return { ...out, wrote };
      },
    },
    's2s-settings': {
      id: 's2s-settings',
      async check(env) {
        const { ok } = await checkSettings(env.ctx, certs);
        return ok ? upToDate('the S2S server settings are set') : would(`would set the authority principal and ${certs.metadataUrl}`);
      },
      async apply(env) {
        const out = await settingsStep(env.ctx, certs);
        return { ...out, wrote: out.changed === true };
      },
    },
    'restart-services': {
      id: 'restart-services',
      check() {
        return Promise.resolve(
          restartOwed()
            ? would(`would restart MSCRMAsyncService and MSCRMAsyncService$maintenance on ${listServers(certs.servers)}`)
            : upToDate('nothing the async services read would change'),
        );
      },
      async apply(env) {
        if (!restartOwed()) return { detail: 'not needed: nothing the async services read changed', changed: false, wrote: false };
        const out = await restartStep(env.ctx, certs);
        return { ...out, wrote: true };
      },
    },
  };
}

import type { StepState } from '../../jobs/cert-types.ts';

/**
 * Whether these step states show register-crm running, done or failed: the step that changes CRM's
 * registration started (a failed or timed-out Set-CrmCertificate may still have taken effect).
 */
export function touchesRegistration(steps: readonly StepState[] | undefined): boolean {
  return (steps ?? []).some((s) => s.id === 'register-crm' && (s.state === 'running' || s.state === 'done' || s.state === 'failed'));
}

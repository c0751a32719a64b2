import { createHash } from 'node:crypto';
import type { SimRole } from './sim-state.ts';

/**
 * Security roles of the simulated organization (what `systemusers(<id>)/systemuserroles_association`
 * serves). Role ids are derived from the name, so a role has the same id in every seed and reset
 * (CRM's own role ids differ per organization: nothing may depend on them).
 */
export const SYSTEM_ADMINISTRATOR = 'System Administrator';
/** The role a seeded user without an explicit role list has. */
export const DEFAULT_USER_ROLE = 'Salesperson';

export function roleNamed(name: string): SimRole {
  const hex = createHash('sha256').update(`role:${name.toLowerCase()}`).digest('hex');
  return { roleid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`, name };
}

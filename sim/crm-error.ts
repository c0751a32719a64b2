/**
 * An error the simulated Web API answers with: HTTP status plus CRM's JSON body
 * `{"error":{"code":"0x8004...","message":"..."}}`.
 */
export class CrmError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'CrmError';
    this.status = status;
    this.code = code;
  }

  toBody(): string {
    return JSON.stringify({ error: { code: this.code, message: this.message } });
  }
}

/** Error codes the simulator uses (those marked unverified were not confirmed by a Microsoft document). */
export const CrmErrorCode = {
  /** OData URI / payload errors (unknown property, syntax error, bad literal). */
  odata: '0x80060888',
  /** "Resource not found for the segment ..." (unknown entity set or path). */
  resourceNotFound: '0x8006088a',
  /** "<entity> With Id = <id> Does Not Exist". */
  objectDoesNotExist: '0x80040217',
  /** Missing privilege (prvApproveRejectEmailAddress). */
  privilege: '0x80040220',
  /** Value outside the valid range of an option set or integer (unverified). */
  outOfRange: '0x80044331',
  /** Attribute not valid for update (unverified). */
  notValidForUpdate: '0x80040203',
  /** Concurrency (If-Match etag) mismatch. */
  concurrency: '0x80060882',
  /** Method not supported on this resource (unverified). */
  methodNotAllowed: '0x80060889',
  /** Server busy / unavailable (simulated 503; unverified). */
  unavailable: '0x80040216',
} as const;

export function odataError(message: string): CrmError {
  return new CrmError(400, CrmErrorCode.odata, message);
}

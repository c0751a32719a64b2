// Types for the part of the `httpntlm` package the agent uses (it ships none).
declare module 'httpntlm/ntlm.js' {
  export interface NtlmCredentials {
    username: string;
    password: string;
    domain: string;
    workstation: string;
  }
  export interface Type2Message {
    type: number;
    negotiateFlags: number;
    serverChallenge: Buffer;
    targetInfo?: Buffer;
  }
  export function createType1Message(options: { domain: string; workstation: string }): string;
  export function parseType2Message(raw: string, callback: (error: Error) => void): Type2Message | null;
  export function createType3Message(type2: Type2Message, options: NtlmCredentials): string;
}

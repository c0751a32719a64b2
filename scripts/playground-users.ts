import { pathToFileURL } from 'node:url';
/**
 * The people of the local demo, as the Microsoft 365 Agents Playground plays them. This module is
 * the single source of `.m365agentsplayground.yml` (see `renderPlaygroundYaml`; a test checks the
 * committed file matches) and of the demo's SETUP_OPERATORS / SETUP_APPROVERS.
 *
 * Playground 0.2.28 facts (read from its bundled config schema 0.1.1):
 * - `users` must hold exactly 5 users, plus `currentUser` (the person the UI acts as): 6 in all.
 * - `users` are all members of the one group chat and of the one team; the personal chat holds
 *   only `currentUser` and the bot.
 * - The team has a General channel (its id is the team id) and at most one more channel.
 * - A user has id, name, userPrincipleName (sic), aadObjectId, givenName, surname, email.
 */

export type DemoRole = 'operator' | 'approver' | 'none';

export interface PlaygroundUser {
  /** The Bot Framework channel account id (activity.from.id). */
  id: string;
  name: string;
  givenName: string;
  surname: string;
  upn: string;
  /** Entra object id (activity.from.aadObjectId): what SETUP_OPERATORS / SETUP_APPROVERS list. */
  aadObjectId: string;
  role: DemoRole;
  /** What this person is for in the demo. */
  note: string;
}

const user = (
  id: string,
  givenName: string,
  surname: string,
  aadObjectId: string,
  role: DemoRole,
  note: string,
): PlaygroundUser => ({
  id,
  name: `${givenName} ${surname}`,
  givenName,
  surname,
  upn: `${givenName.toLowerCase()}@contoso.example`,
  aadObjectId,
  role,
  note,
});

/** The person the Playground UI acts as by default: an operator, who asks for the work. */
export const requester = user(
  'user-olivia',
  'Olivia',
  'Operator',
  '0d5e1a3c-7b42-4c1e-9a61-2f8b6d4e0a11',
  'operator',
  'operator; asks for the work (the requester)',
);

/** Exactly five more (the Playground's schema wants 5). */
export const otherUsers: readonly PlaygroundUser[] = [
  user('user-adam', 'Adam', 'Approver', '5a9c2e71-3d84-4f6b-b2c0-8e1f47a9d322', 'approver', 'approver; clicks Approve'),
  user('user-uma', 'Uma', 'Unauthorised', '9e4b7d20-6a15-4c83-8f2d-1b6c3e5a7f33', 'none', 'not an operator nor an approver: refused'),
  user('user-oscar', 'Oscar', 'Operator', '3f7a1c94-2e68-4d5b-a9e7-6c0d8b2f1e44', 'operator', 'a second operator'),
  user('user-alice', 'Alice', 'Approver', '7c2d5f18-9b3a-4e71-8d46-0a5e9c3b2f55', 'approver', 'a second approver'),
  user('user-lee', 'Lee', 'Reader', 'b81e6a4d-5c2f-4a90-b3d7-4f9a1e6c8d66', 'none', 'a team member without rights'),
];

export const playgroundUsers: readonly PlaygroundUser[] = [requester, ...otherUsers];

export const playgroundTenantId = 'c0a7f3e2-1b5d-4e8a-9f6c-2d4b8e1a3c00';
export const playgroundBot = { id: '28:setup-bot', name: 'setup' } as const;
export const playgroundChats = {
  personalChatId: 'personal-chat-olivia',
  groupChatId: 'group-chat-crm-admins',
  groupChatName: 'CRM admins',
  teamId: 'team-crm-operations',
  teamName: 'CRM Operations',
  teamAadGroupId: 'e6d2b9a4-8c1f-4a7e-b5d3-9f0c2e4a6b77',
  channelId: 'channel-exchange-sync',
  channelName: 'Exchange sync',
} as const;

export function usersWithRole(role: DemoRole): PlaygroundUser[] {
  return playgroundUsers.filter((u) => u.role === role);
}

/** The bot's authorization lists for the demo, matching the Playground's users. */
export function demoAuthorizationEnv(): { SETUP_OPERATORS: string; SETUP_APPROVERS: string } {
  return {
    SETUP_OPERATORS: usersWithRole('operator').map((u) => u.aadObjectId).join(','),
    SETUP_APPROVERS: usersWithRole('approver').map((u) => u.aadObjectId).join(','),
  };
}

function yamlUser(u: PlaygroundUser, indent: string, first: string): string[] {
  return [
    `${first}id: ${u.id}`,
    `${indent}name: ${u.name}`,
    `${indent}userPrincipleName: ${u.upn}`,
    `${indent}aadObjectId: ${u.aadObjectId}`,
    `${indent}givenName: ${u.givenName}`,
    `${indent}surname: ${u.surname}`,
    `${indent}email: ${u.upn}`,
  ];
}

/**
 * The demo user `who` names: a first name, full name or channel id, case-insensitive
 * (`npm start -- --as uma`). Undefined when nobody matches.
 */
export function findPlaygroundUser(who: string): PlaygroundUser | undefined {
  const w = who.trim().toLowerCase();
  return playgroundUsers.find((u) => u.givenName.toLowerCase() === w || u.name.toLowerCase() === w || u.id.toLowerCase() === w);
}

/**
 * The text of `.m365agentsplayground.yml` (Playground config schema 0.1.1). `current` is the
 * person the Playground types as (the committed file: the requester); the other five are `users`.
 */
export function renderPlaygroundYaml(current: PlaygroundUser = requester): string {
  const c = playgroundChats;
  const lines = [
    '# yaml-language-server: $schema=https://aka.ms/teams-app-test-tool-config/0.1.1/config.schema.json',
    '# The people, chats and team of the local demo in the Microsoft 365 Agents Playground.',
    '# Generated from scripts/playground-users.ts (edit that file, then run',
    '# `npx tsx scripts/playground-users.ts > .m365agentsplayground.yml`); a test checks they match.',
    '# The demo (npm start) sets SETUP_OPERATORS / SETUP_APPROVERS from the same list:',
    ...playgroundUsers.map((u) => `#   ${u.name.padEnd(18)} ${u.aadObjectId}  ${u.note}`),
    'version: "0.1.1"',
    `tenantId: ${playgroundTenantId}`,
    'bot:',
    `  id: "${playgroundBot.id}"`,
    `  name: ${playgroundBot.name}`,
    'currentUser:',
    ...yamlUser(current, '  ', '  '),
    'users:',
    ...playgroundUsers.filter((u) => u !== current).flatMap((u) => yamlUser(u, '    ', '  - ')),
    'personalChat:',
    `  id: ${c.personalChatId}`,
    'groupChat:',
    `  id: ${c.groupChatId}`,
    `  name: ${c.groupChatName}`,
    'team:',
    `  id: ${c.teamId}`,
    `  name: ${c.teamName}`,
    `  aadGroupId: ${c.teamAadGroupId}`,
    '  channels:',
    `    - id: ${c.channelId}`,
    `      name: ${c.channelName}`,
  ];
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(renderPlaygroundYaml());
}

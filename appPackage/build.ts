import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AppManifestUtils } from '@microsoft/app-manifest';
import { z } from 'zod';
import { readPngHeader } from './png.ts';
import { writeZip } from './zip.ts';

/**
 * `npm run package`: the Teams app package, appPackage/build/setup-teams-app.zip, holding
 * manifest.json (placeholders filled in), color.png and outline.png at the top level (flat).
 *
 * Placeholders: `${{BOT_ID}}` ← MicrosoftAppId (the Azure Bot's app registration id; BOT_ID also
 * works), `${{TEAMS_APP_ID}}` ← TEAMS_APP_ID (default: this product's fixed id). The manifest is
 * checked with zod (required fields, GUIDs, command limits), the icons by their PNG headers, and
 * the whole manifest against Microsoft's schema bundled in `@microsoft/app-manifest` (offline).
 */
export const appPackageDir = dirname(fileURLToPath(import.meta.url));
export const defaultTeamsAppId = '9b3c1d7e-4a2f-4e58-8c61-2d7f0a9e5b13';
export const packageFileName = 'setup-teams-app.zip';

/** Where @microsoft/app-manifest keeps its bundled Teams schemas (json-schemas/teams/v<version>/). */
export const bundledTeamsSchemasDir = join(dirname(createRequire(import.meta.url).resolve('@microsoft/app-manifest')), 'json-schemas', 'teams');

/** The newest numbered manifest version @microsoft/app-manifest bundles (devPreview left out). */
export function newestBundledManifestVersion(): string {
  const versions = readdirSync(bundledTeamsSchemasDir)
    .map((name) => /^v(\d+)\.(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [Number(m[1]), Number(m[2])] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const newest = versions.at(-1);
  if (!newest) throw new Error(`no Teams manifest schemas in ${bundledTeamsSchemasDir}`);
  return `${newest[0]}.${newest[1]}`;
}

/** The manifest version this app uses: the newest @microsoft/app-manifest ships (checked in the tests). */
export const teamsManifestVersion = '1.30';
export const teamsManifestSchemaUrl = `https://developer.microsoft.com/en-us/json-schemas/teams/v${teamsManifestVersion}/MicrosoftTeams.schema.json`;

/** The bundled schema of `version`, read from disk: validation never goes to the network. */
export function readBundledTeamsSchema(version: string): Record<string, unknown> {
  const file = join(bundledTeamsSchemasDir, `v${version}`, 'MicrosoftTeams.schema.json');
  if (!existsSync(file)) throw new Error(`@microsoft/app-manifest has no bundled schema for manifest version ${version} (${file})`);
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a GUID');
const httpsUrl = z.string().url().refine((u) => u.startsWith('https://'), 'must be an https URL');
const scope = z.enum(['personal', 'team', 'groupChat']);

/** What Teams requires of a bot app's manifest (the parts this product uses). */
export const manifestSchema = z.object({
  $schema: z.literal(teamsManifestSchemaUrl, { errorMap: () => ({ message: `must be ${teamsManifestSchemaUrl}` }) }),
  manifestVersion: z.literal(teamsManifestVersion, { errorMap: () => ({ message: `must be ${teamsManifestVersion}` }) }),
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be x.y.z'),
  id: guid,
  developer: z.object({ name: z.string().min(1).max(32), websiteUrl: httpsUrl, privacyUrl: httpsUrl, termsOfUseUrl: httpsUrl }),
  name: z.object({ short: z.string().min(1).max(30), full: z.string().max(100).optional() }),
  description: z.object({ short: z.string().min(1).max(80), full: z.string().min(1).max(4000) }),
  icons: z.object({ color: z.literal('color.png'), outline: z.literal('outline.png') }),
  accentColor: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'must be #RRGGBB'),
  bots: z
    .array(
      z.object({
        botId: guid,
        scopes: z.array(scope).min(1),
        commandLists: z
          .array(
            z.object({
              scopes: z.array(scope).min(1),
              commands: z.array(z.object({ title: z.string().min(1).max(32), description: z.string().min(1).max(128) })).min(1).max(10),
            }),
          )
          .max(3),
      }),
    )
    .length(1),
});
export type TeamsManifestJson = z.infer<typeof manifestSchema>;

export const iconSizes = { 'color.png': 192, 'outline.png': 32 } as const;

/** Replaces `${{NAME}}` placeholders; any left unfilled is an error naming the variable. */
export function fillPlaceholders(template: string, values: Readonly<Record<string, string | undefined>>): string {
  const missing = new Set<string>();
  const out = template.replace(/\$\{\{\s*([A-Z0-9_]+)\s*\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined || value === '') {
      missing.add(name);
      return '';
    }
    return value;
  });
  if (missing.size > 0) throw new Error(`No value for ${[...missing].map((n) => `\${{${n}}}`).join(', ')} in manifest.json`);
  return out;
}

export interface BuildResult {
  zipPath: string;
  manifest: TeamsManifestJson;
  files: string[];
}

export async function buildAppPackage(options: { env: NodeJS.ProcessEnv; outDir?: string; sourceDir?: string }): Promise<BuildResult> {
  const sourceDir = options.sourceDir ?? appPackageDir;
  const outDir = options.outDir ?? resolve(sourceDir, 'build');
  const botId = options.env.MicrosoftAppId ?? options.env.BOT_ID;
  if (!botId) {
    throw new Error(
      'MicrosoftAppId is not set: the manifest needs the bot\'s id (the Azure Bot\'s Microsoft App ID, a GUID). ' +
        'Set MicrosoftAppId (as for the bot) and run npm run package again.',
    );
  }
  const text = fillPlaceholders(readFileSync(resolve(sourceDir, 'manifest.json'), 'utf8'), {
    BOT_ID: botId,
    TEAMS_APP_ID: options.env.TEAMS_APP_ID ?? defaultTeamsAppId,
  });
  const parsed = manifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(`manifest.json is not valid:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  const icons = Object.entries(iconSizes).map(([name, size]) => {
    const data = readFileSync(resolve(sourceDir, name));
    const header = readPngHeader(data);
    if (header.width !== size || header.height !== size) {
      throw new Error(`${name} must be ${size}×${size} pixels; it is ${header.width}×${header.height}`);
    }
    return { name, data };
  });

  mkdirSync(outDir, { recursive: true });
  const manifestPath = resolve(outDir, 'manifest.json');
  writeFileSync(manifestPath, text);
  let schemaErrors: string[];
  try {
    // readTeamsManifest is the typed reader of readAndValidateTeamsManifest; the schema is given
    // explicitly (the bundled one of teamsManifestVersion), so nothing is fetched.
    const manifest = await AppManifestUtils.readTeamsManifest(manifestPath);
    const schema = readBundledTeamsSchema(parsed.data.manifestVersion) as unknown as Parameters<typeof AppManifestUtils.validateAgainstSchema>[1];
    schemaErrors = await AppManifestUtils.validateAgainstSchema(manifest, schema);
  } catch (error) {
    // Its typed reader throws on the first property of the wrong shape.
    schemaErrors = [error instanceof Error ? error.message : String(error)];
  }
  if (schemaErrors.length > 0) throw new Error(`manifest.json does not match the Teams schema:\n  ${schemaErrors.join('\n  ')}`);

  const entries = [{ name: 'manifest.json', data: Buffer.from(text, 'utf8') }, ...icons];
  const zipPath = resolve(outDir, packageFileName);
  writeFileSync(zipPath, writeZip(entries));
  return { zipPath, manifest: parsed.data, files: entries.map((e) => e.name) };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildAppPackage({ env: process.env }).then(
    (result) => {
      console.log(`Wrote ${result.zipPath} (${result.files.join(', ')}).`);
      console.log('Upload it in Teams (Apps → Manage your apps → Upload an app) or through the Teams admin center.');
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}

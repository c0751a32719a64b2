import { parseCommand } from '../../bot/inbound/command-parser.ts';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppManifestUtils } from '@microsoft/app-manifest';
import { appPackageDir, buildAppPackage, defaultTeamsAppId, fillPlaceholders, iconSizes, newestBundledManifestVersion, readBundledTeamsSchema, teamsManifestSchemaUrl, teamsManifestVersion } from '../../appPackage/build.ts';
import { drawColorIcon, drawOutlineIcon } from '../../appPackage/make-icons.ts';
import { decodeRgbaPng, readPngHeader } from '../../appPackage/png.ts';
import { readZip, writeZip } from '../../appPackage/zip.ts';

const BOT_ID = '4f0b6c8e-2a1d-4e7b-9c3f-5d8a1b2c3d4f';
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'app-package-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of appPackage/ with the manifest changed by `edit`. */
function sourceWith(edit: (manifest: Record<string, unknown>) => void): string {
  const dir = tempDir();
  const manifest = JSON.parse(readFileSync(resolve(appPackageDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  edit(manifest);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  for (const icon of Object.keys(iconSizes)) copyFileSync(resolve(appPackageDir, icon), join(dir, icon));
  return dir;
}

describe('icons', () => {
  it('color.png is 192×192 and outline.png 32×32 (read from the PNG headers)', () => {
    for (const [name, size] of Object.entries(iconSizes)) {
      const header = readPngHeader(readFileSync(resolve(appPackageDir, name)));
      expect({ name, width: header.width, height: header.height }).toEqual({ name, width: size, height: size });
    }
  });

  it('outline.png is white on transparent only, with some of each', () => {
    const { rgba } = decodeRgbaPng(readFileSync(resolve(appPackageDir, 'outline.png')));
    let opaque = 0;
    let transparent = 0;
    for (let i = 0; i < rgba.length; i += 4) {
      const alpha = rgba[i + 3];
      if (alpha === 0) transparent++;
      else {
        expect([rgba[i], rgba[i + 1], rgba[i + 2], alpha]).toEqual([255, 255, 255, 255]);
        opaque++;
      }
    }
    expect(opaque).toBeGreaterThan(100);
    expect(transparent).toBeGreaterThan(100);
  });

  it('color.png is fully opaque', () => {
    const { rgba } = decodeRgbaPng(readFileSync(resolve(appPackageDir, 'color.png')));
    for (let i = 3; i < rgba.length; i += 4) expect(rgba[i]).toBe(255);
  });

  it('the committed icons are what make-icons.ts draws', () => {
    expect(drawColorIcon().equals(readFileSync(resolve(appPackageDir, 'color.png')))).toBe(true);
    expect(drawOutlineIcon().equals(readFileSync(resolve(appPackageDir, 'outline.png')))).toBe(true);
  });
});

describe('zip', () => {
  it('round-trips stored and deflated entries with their CRCs', () => {
    const entries = [
      { name: 'a.txt', data: Buffer.from('hello hello hello hello hello hello') },
      { name: 'random.bin', data: Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7919) % 251)) },
      { name: 'empty', data: Buffer.alloc(0) },
    ];
    const back = readZip(writeZip(entries));
    expect(back.map((e) => [e.name, e.data.toString('hex')])).toEqual(entries.map((e) => [e.name, e.data.toString('hex')]));
  });

  it('refuses folders and duplicate names (the package must be flat)', () => {
    expect(() => writeZip([{ name: 'x/manifest.json', data: Buffer.alloc(1) }])).toThrow(/flat/);
    expect(() => writeZip([{ name: 'a', data: Buffer.alloc(1) }, { name: 'a', data: Buffer.alloc(1) }])).toThrow(/duplicate/);
  });
});

describe('npm run package', () => {
  it('writes a flat zip with the filled-in manifest and both icons', async () => {
    const outDir = tempDir();
    const result = await buildAppPackage({ env: { MicrosoftAppId: BOT_ID }, outDir });
    const entries = readZip(readFileSync(result.zipPath));
    expect(entries.map((e) => e.name).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
    const manifestText = entries.find((e) => e.name === 'manifest.json')?.data.toString('utf8') ?? '';
    expect(manifestText).not.toContain('${{');
    const manifest = JSON.parse(manifestText) as Record<string, unknown> & { bots: { botId: string; scopes: string[]; commandLists: { commands: { title: string }[] }[] }[] };
    expect(manifest.id).toBe(defaultTeamsAppId);
    expect(manifest.manifestVersion).toBe(teamsManifestVersion);
    for (const key of ['version', 'developer', 'name', 'description', 'icons', 'accentColor']) expect(manifest).toHaveProperty(key);
    const developer = manifest.developer as Record<string, string>;
    for (const key of ['websiteUrl', 'privacyUrl', 'termsOfUseUrl']) expect(developer[key]).toMatch(/^https:\/\//);
    const bot = manifest.bots[0];
    expect(bot?.botId).toBe(BOT_ID);
    expect(bot?.scopes.sort()).toEqual(['groupChat', 'personal', 'team']);
    // Teams offers these as typed commands: each must be one the bot understands as it stands.
    const titles = bot?.commandLists[0]?.commands.map((c) => c.title) ?? [];
    expect(titles).toEqual(expect.arrayContaining(['help', 'run setup', 'approve mailboxes', 'cert rotate']));
    for (const title of titles) expect(parseCommand(title), title).toMatchObject({ ok: true });
    for (const name of ['color.png', 'outline.png'] as const) {
      const data = entries.find((e) => e.name === name)?.data ?? Buffer.alloc(0);
      expect(readPngHeader(data).width).toBe(iconSizes[name]);
    }
  });

  it('takes TEAMS_APP_ID when set', async () => {
    const id = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
    const result = await buildAppPackage({ env: { MicrosoftAppId: BOT_ID, TEAMS_APP_ID: id }, outDir: tempDir() });
    expect(result.manifest.id).toBe(id);
  });

  it('stops with a message naming MicrosoftAppId when it is not set', async () => {
    await expect(buildAppPackage({ env: {}, outDir: tempDir() })).rejects.toThrow(/MicrosoftAppId is not set/);
  });

  it('refuses a bot id that is not a GUID', async () => {
    await expect(buildAppPackage({ env: { MicrosoftAppId: 'not-a-guid' }, outDir: tempDir() })).rejects.toThrow(/bots\.0\.botId: must be a GUID/);
  });

  it('refuses a manifest without a required field', async () => {
    const sourceDir = sourceWith((m) => {
      delete m.developer;
    });
    await expect(buildAppPackage({ env: { MicrosoftAppId: BOT_ID }, sourceDir, outDir: tempDir() })).rejects.toThrow(/developer/);
  });

  it('refuses what only the Teams schema knows is wrong (checked offline with @microsoft/app-manifest)', async () => {
    const sourceDir = sourceWith((m) => {
      m.permissions = ['identity', 'readEverything'];
    });
    await expect(buildAppPackage({ env: { MicrosoftAppId: BOT_ID }, sourceDir, outDir: tempDir() })).rejects.toThrow(/schema/);
  });

  it('refuses icons of the wrong size', async () => {
    const sourceDir = sourceWith(() => undefined);
    copyFileSync(resolve(appPackageDir, 'outline.png'), join(sourceDir, 'color.png'));
    await expect(buildAppPackage({ env: { MicrosoftAppId: BOT_ID }, sourceDir, outDir: tempDir() })).rejects.toThrow(/color\.png must be 192×192/);
  });
});

describe('manifest schema version', () => {
  type Schema = Parameters<typeof AppManifestUtils.validateAgainstSchema>[1];
  const filled = (): Record<string, unknown> =>
    JSON.parse(fillPlaceholders(readFileSync(resolve(appPackageDir, 'manifest.json'), 'utf8'), { BOT_ID, TEAMS_APP_ID: defaultTeamsAppId })) as Record<string, unknown>;
  const validate = async (manifest: Record<string, unknown>): Promise<string[]> =>
    AppManifestUtils.validateAgainstSchema(manifest as unknown as Parameters<typeof AppManifestUtils.validateAgainstSchema>[0], readBundledTeamsSchema(teamsManifestVersion) as unknown as Schema);

  it('is the newest numbered one @microsoft/app-manifest bundles (not devPreview)', () => {
    expect(teamsManifestVersion).toBe(newestBundledManifestVersion());
    const manifest = filled();
    expect(manifest.manifestVersion).toBe(teamsManifestVersion);
    expect(manifest.$schema).toBe(teamsManifestSchemaUrl);
    // The bundled schema pins the version itself.
    expect((readBundledTeamsSchema(teamsManifestVersion).properties as { manifestVersion: { const?: string } }).manifestVersion.const).toBe(teamsManifestVersion);
  });

  it('the manifest is valid against that bundled schema, offline', async () => {
    expect(await validate(filled())).toEqual([]);
  });

  it('the same schema rejects a copy without a required field, an older manifestVersion and an unknown property', async () => {
    const withoutIcons = filled();
    delete withoutIcons.icons;
    expect((await validate(withoutIcons)).join('\n')).toMatch(/must have required property 'icons'/);
    expect((await validate({ ...filled(), manifestVersion: '1.19' })).join('\n')).toMatch(/manifestVersion must be equal to constant/);
    expect((await validate({ ...filled(), botFramework: true })).join('\n')).toMatch(/must NOT have additional properties/);
  });

  it('npm run package refuses a manifest on another schema version', async () => {
    const sourceDir = sourceWith((m) => {
      m.manifestVersion = '1.19';
      m.$schema = 'https://developer.microsoft.com/en-us/json-schemas/teams/v1.19/MicrosoftTeams.schema.json';
    });
    await expect(buildAppPackage({ env: { MicrosoftAppId: BOT_ID }, sourceDir, outDir: tempDir() })).rejects.toThrow(/manifestVersion: must be 1\.30/);
  });
});

describe('fillPlaceholders', () => {
  it('fills ${{NAME}} and names the ones without a value', () => {
    expect(fillPlaceholders('a ${{X}} b ${{ Y }}', { X: '1', Y: '2' })).toBe('a 1 b 2');
    expect(() => fillPlaceholders('${{X}} ${{Z}}', { X: '1' })).toThrow('${{Z}}');
  });
});

import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../../agent/runtime/config.ts';
import { createCertServices } from '../../../../agent/runtime/cert-services.ts';
import { silentLogger } from '../../../../core/logger.ts';
import { connectRedis } from '../../../../core/redis-connection.ts';
import { SetupError } from '../../../../core/setup-error.ts';

/**
 * POWERSHELL_PASS_ENV: the agent setting that names the variables its PowerShell scripts get on top
 * of Windows' own (powershell-runner.ts builds the child's environment from an allowlist).
 */
const base = { JOB_SIGNING_KEY: 'k'.repeat(32), CRM_URL: 'http://crm.local/contoso', CRM_AUTH: 'none' };

function configError(env: Record<string, string>): SetupError {
  try {
    loadAgentConfig({ ...base, ...env });
  } catch (error) {
    if (error instanceof SetupError) return error;
    throw error;
  }
  throw new Error('expected a configuration error');
}

describe('POWERSHELL_PASS_ENV', () => {
  it('is empty by default and reads a comma-separated list of names', () => {
    expect(loadAgentConfig(base).POWERSHELL_PASS_ENV).toEqual([]);
    expect(loadAgentConfig({ ...base, POWERSHELL_PASS_ENV: ' PWSH_SIM_URL, HTTPS_PROXY ,,NO_PROXY' }).POWERSHELL_PASS_ENV).toEqual(['PWSH_SIM_URL', 'HTTPS_PROXY', 'NO_PROXY']);
  });

  it('refuses the agent\'s secrets (any case) and what is not a variable name', () => {
    for (const secret of ['CERT_PFX_PASSWORD', 'graph_client_secret', 'JOB_SIGNING_KEY', 'CRM_PASSWORD', 'REDIS_URL', 'SETUP_PFX_PASSWORD']) {
      const error = configError({ POWERSHELL_PASS_ENV: `PWSH_SIM_URL,${secret}` });
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toContain('POWERSHELL_PASS_ENV');
      expect(error.message).toContain('secrets');
    }
    expect(configError({ POWERSHELL_PASS_ENV: 'A=B' }).message).toContain('environment variable name');
    expect(configError({ POWERSHELL_PASS_ENV: 'X;Y' }).message).toContain('environment variable name');
  });
});

/** Records its environment in the file FAKE_RECORD names, prints a Get-S2SCertificate result. */
const FAKE = `#!/usr/bin/env node
require('node:fs').writeFileSync(process.env.FAKE_RECORD, JSON.stringify(process.env));
process.stdout.write(JSON.stringify({ registered: false, derBase64: null }) + '\\n');
`;

describe('the agent\'s PowerShell runner (createCertServices)', () => {
  let dir: string;
  let fake: string;
  let redis: Redis;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ps-pass-env-'));
    fake = join(dir, 'fake-powershell.cjs');
    await writeFile(fake, FAKE);
    await chmod(fake, 0o755);
    redis = await connectRedis('redis://127.0.0.1:6379');
  });
  afterAll(async () => {
    await redis.quit();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the scripts the allowlist and POWERSHELL_PASS_ENV\'s names, never the agent\'s secrets', async () => {
    const recordFile = join(dir, 'env.json');
    const secrets = {
      CERT_PFX_PASSWORD: 'secret-pfx-password-in-agent-env',
      GRAPH_CLIENT_SECRET: 'secret-graph-client-secret',
      JOB_SIGNING_KEY: 'secret-signing-key-0123456789abcdef0123',
      CRM_PASSWORD: 'secret-crm-password',
      REDIS_URL: 'redis://:secret-redis@127.0.0.1:6379',
    };
    const agentEnv = { ...base, ...secrets, CRM_AUTH: 'none', POWERSHELL: fake, POWERSHELL_PASS_ENV: 'FAKE_RECORD' };
    const config = loadAgentConfig(agentEnv);
    const handle = await createCertServices(config, {
      redis,
      logger: silentLogger(),
      powershellEnv: { ...agentEnv, PATH: process.env.PATH ?? '', FAKE_RECORD: recordFile, NOT_NAMED: 'not passed' },
    });
    try {
      expect(await handle.services.powershell.run('Get-S2SCertificate', {})).toEqual({ registered: false, derBase64: null });
    } finally {
      await handle.close();
    }
    const env = JSON.parse(await readFile(recordFile, 'utf8')) as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual(['FAKE_RECORD', 'PATH']);
    const dumped = JSON.stringify(env);
    for (const value of Object.values(secrets)) expect(dumped).not.toContain(value);
  });
});

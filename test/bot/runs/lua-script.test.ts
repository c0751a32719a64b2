import { readdirSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LuaScript } from '../../../bot/runs/lua-script.ts';
import { runScripts } from '../../../bot/runs/run-scripts.ts';

const fakeRedis = (reply: unknown): Redis => ({ eval: () => Promise.resolve(reply) }) as unknown as Redis;

describe('LuaScript', () => {
  it('loads every script file once, each with a header saying what it returns', () => {
    const files = readdirSync(new URL('../../../bot/runs/lua/', import.meta.url)).filter((f) => f.endsWith('.lua'));
    const loaded = Object.values(runScripts).map((s) => `${s.name}.lua`);
    expect(loaded.sort()).toEqual(files.sort());
    for (const s of Object.values(runScripts)) {
      expect(s.source).toMatch(/^--\[\[[\s\S]*KEYS\[1\][\s\S]*Returns: [\s\S]*?\]\]\n/);
      expect(s.source).not.toMatch(/\{\{\w+\}\}/);
    }
  });

  it('fills {{name}} from the TypeScript side: the final states of approve-cert', () => {
    expect(runScripts.approveCert.source).toContain("local final = { ['succeeded'] = true,");
    expect(runScripts.approveCert.source).toContain("['plan-failed'] = true");
    expect(() => new LuaScript('approve-cert', z.unknown())).toThrow(/no value for \{\{finalStates\}\}/);
  });

  it('parses the reply with its schema and names the script when the reply is not what it declares', async () => {
    await expect(runScripts.transition.run(fakeRedis(['conflict', 'running']), ['k'], [])).resolves.toEqual(['conflict', 'running']);
    await expect(runScripts.transition.run(fakeRedis(['surprise', '']), ['k'], [])).rejects.toThrow(/Lua script transition replied/);
    await expect(runScripts.markSeq.run(fakeRedis('1'), ['k'], [])).rejects.toThrow(/mark-seq/);
  });
});

#!/usr/bin/env node
// The simulator's stand-in for powershell.exe. Invoked exactly like it:
//   pwsh-sim.mjs -NoProfile -NonInteractive -ExecutionPolicy Bypass -File <dir>/<Script>.ps1 -Param value ...
// It sends the script name, the -Param values, the files named by PfxPath / CerPath (base64) and
// SETUP_PFX_PASSWORD to `${PWSH_SIM_URL}/_sim/powershell` (the CRM simulator, loopback only),
// prints the script's JSON on stdout (exit 0) or its error on stderr (exit 1).
// Plain Node, no dependencies: it starts once per script run.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { basename } from 'node:path';

const FILE_PARAMS = new Set(['pfxpath', 'cerpath']);
const HOST_FLAGS = new Set(['-noprofile', '-noninteractive', '-nologo']);
const HOST_OPTIONS = new Set(['-executionpolicy']);

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

function parseArgs(argv) {
  let file;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    const lower = arg.toLowerCase();
    if (HOST_FLAGS.has(lower)) continue;
    if (HOST_OPTIONS.has(lower)) {
      i++;
      continue;
    }
    if (lower === '-file') {
      file = argv[i + 1];
      i += 2;
      break;
    }
    throw new Error(`pwsh-sim: unsupported argument '${arg}' before -File.`);
  }
  if (!file) throw new Error('pwsh-sim: -File <script.ps1> is required.');
  const params = {};
  for (; i < argv.length; i += 2) {
    const name = argv[i];
    if (!name.startsWith('-') || name.length < 2) throw new Error(`${basename(file)} : A positional parameter cannot be found that accepts argument '${name}'.`);
    if (i + 1 >= argv.length) throw new Error(`${basename(file)} : Missing an argument for parameter '${name.slice(1)}'. Specify a parameter of type 'System.String' and try again.`);
    params[name.slice(1)] = argv[i + 1];
  }
  return { script: basename(file).replace(/\.ps1$/i, ''), params };
}

function isLoopback(url) {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function post(url, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body), 'utf8');
    const req = request(
      url,
      { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length } },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function main() {
  const base = process.env.PWSH_SIM_URL;
  if (!base) return fail('pwsh-sim: PWSH_SIM_URL is not set: set it to the CRM simulator\'s base URL (http://127.0.0.1:<port>).');
  let url;
  try {
    url = new URL('/_sim/powershell', base);
  } catch {
    return fail(`pwsh-sim: PWSH_SIM_URL '${base}' is not a URL.`);
  }
  if (url.protocol !== 'http:' || !isLoopback(url)) return fail(`pwsh-sim: PWSH_SIM_URL must be an http URL on this machine (loopback), not '${base}'.`);

  let call;
  try {
    call = parseArgs(process.argv.slice(2));
  } catch (error) {
    return fail(error.message);
  }
  const files = {};
  for (const [name, value] of Object.entries(call.params)) {
    if (!FILE_PARAMS.has(name.toLowerCase())) continue;
    try {
      files[name] = readFileSync(value).toString('base64');
    } catch (error) {
      if (error.code !== 'ENOENT') return fail(`${call.script}: cannot read '${value}' (${error.code ?? error.message}).`);
      // Missing: the simulator answers as PowerShell would ("Cannot find path ...").
    }
  }
  const password = process.env.SETUP_PFX_PASSWORD ?? null;

  let response;
  try {
    response = await post(url, { script: call.script, params: call.params, files, password });
  } catch (error) {
    return fail(`pwsh-sim: cannot reach the simulator at ${url.origin} (${error.code ?? error.message}).`);
  }
  let body;
  try {
    body = JSON.parse(response.text);
  } catch {
    return fail(`pwsh-sim: the simulator answered ${response.status} without JSON.`);
  }
  if (response.status === 200 && body && typeof body === 'object' && 'output' in body) {
    process.stdout.write(`${JSON.stringify(body.output)}\n`);
    return undefined;
  }
  return fail(body?.error?.message ?? `pwsh-sim: the simulator answered ${response.status}.`);
}

await main();

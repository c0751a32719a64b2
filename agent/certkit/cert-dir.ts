import { open, readdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { SetupError } from '../../core/setup-error.ts';
import { certFileNameSchema } from '../../jobs/cert-types.ts';

/** A PFX is a few kilobytes; anything this large is not one. */
export const MAX_PFX_BYTES = 64 * 1024;

export interface CertFile {
  /** The file's real path (inside CERT_DIR). */
  path: string;
  bytes: Buffer;
}

const inside = (dir: string, target: string) => {
  const rel = relative(dir, target);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

const code = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

/**
 * Reads a PFX named in a job from CERT_DIR. Only a plain file name is taken (the job schema already
 * refuses paths); the resolved path, and its real path after symbolic links, must stay inside
 * CERT_DIR; the file must be a regular file of at most MAX_PFX_BYTES.
 */
export async function readCertFile(certDir: string, fileName: string): Promise<CertFile> {
  const name = certFileNameSchema.safeParse(fileName);
  if (!name.success) {
    throw new SetupError('CERT_FILE_NOT_FOUND', `"${fileName.slice(0, 120)}" is not a PFX file name.`, {
      hint: 'Give the name of a .pfx or .p12 file in the agent\'s CERT_DIR (letters, digits, dot, dash, underscore), not a path.',
    });
  }
  let dir: string;
  try {
    dir = await realpath(certDir);
  } catch (error) {
    throw new SetupError('CERT_FILE_NOT_FOUND', `The agent's CERT_DIR (${certDir}) cannot be opened (${code(error) ?? 'error'}).`, {
      hint: 'Create the folder or set CERT_DIR to the folder that holds the PFX files, then restart the agent.',
      cause: error,
    });
  }
  const candidate = resolve(dir, name.data);
  if (!inside(dir, candidate)) throw outside(name.data);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (error) {
    if (code(error) !== 'ENOENT') throw unreadable(name.data, error);
    throw await notFound(dir, name.data);
  }
  if (!inside(dir, real)) throw outside(name.data);
  const handle = await open(real, 'r').catch((error: unknown) => {
    throw unreadable(name.data, error);
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new SetupError('CERT_FILE_NOT_FOUND', `${name.data} in CERT_DIR is not a file.`, { hint: 'Put the PFX file itself in CERT_DIR.' });
    if (stat.size > MAX_PFX_BYTES) {
      throw new SetupError('CERT_INVALID', `${name.data} is ${stat.size} bytes, larger than any PFX of one certificate (at most ${MAX_PFX_BYTES}).`, {
        hint: 'Export the certificate with its private key only (no chain of many certificates) to a new PFX.',
      });
    }
    const bytes = await handle.readFile();
    if (bytes.length > MAX_PFX_BYTES) throw new SetupError('CERT_INVALID', `${name.data} grew while it was read.`, { hint: 'Copy the PFX into CERT_DIR once, then run the command again.' });
    return { path: real, bytes };
  } finally {
    await handle.close();
  }
}

function outside(name: string): SetupError {
  return new SetupError('CERT_FILE_NOT_FOUND', `${name} is not a file inside the agent's CERT_DIR (it links elsewhere).`, {
    hint: 'Copy the PFX into CERT_DIR itself; links that leave the folder are refused.',
  });
}

function unreadable(name: string, error: unknown): SetupError {
  return new SetupError('CERT_FILE_NOT_FOUND', `${name} in CERT_DIR cannot be read (${code(error) ?? 'error'}).`, {
    hint: 'Let the account the agent runs as read the file, then run the command again.',
    cause: error,
  });
}

async function notFound(dir: string, name: string): Promise<SetupError> {
  const present = await readdir(dir).then(
    (names) => names.filter((n) => certFileNameSchema.safeParse(n).success).sort().slice(0, 10),
    () => [],
  );
  const listed = present.length === 0 ? 'CERT_DIR has no PFX files.' : `CERT_DIR has: ${present.join(', ')}.`;
  return new SetupError('CERT_FILE_NOT_FOUND', `There is no ${name} in the agent's CERT_DIR. ${listed}`, {
    hint: `Copy the new PFX to ${join(dir, name)} on the agent host (or name one of the files above: @setup cert rotate <file>), then run the command again.`,
  });
}

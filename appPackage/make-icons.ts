import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodePng } from './png.ts';

/**
 * Draws the app's two icons with Node built-ins only (`npx tsx appPackage/make-icons.ts`; the
 * results are committed):
 * - color.png, 192×192: a white gear on the accent colour, full bleed.
 * - outline.png, 32×32: the same gear in white on a transparent background (every pixel is either
 *   fully transparent or opaque white, as Teams asks).
 */
export const accentColor = '#1F6FB2';

/** Gear coverage at (x, y) in a unit square centred on 0.5, 0.5. */
function inGear(x: number, y: number): boolean {
  const dx = x - 0.5;
  const dy = y - 0.5;
  const r = Math.hypot(dx, dy);
  const teeth = 8;
  const angle = Math.atan2(dy, dx);
  const phase = (((angle / (2 * Math.PI)) * teeth) % 1 + 1) % 1; // 0..1 within a tooth period
  const onTooth = phase < 0.42;
  const inner = 0.13;
  const body = 0.3;
  const tip = 0.4;
  return r >= inner && (r <= body || (onTooth && r <= tip));
}

/** Fraction of a pixel covered by the gear (4×4 supersampling), the gear scaled by `scale`. */
function coverage(px: number, py: number, size: number, scale: number): number {
  let hits = 0;
  for (let sy = 0; sy < 4; sy++) {
    for (let sx = 0; sx < 4; sx++) {
      const x = (px + (sx + 0.5) / 4) / size;
      const y = (py + (sy + 0.5) / 4) / size;
      if (inGear(0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale)) hits++;
    }
  }
  return hits / 16;
}

function hexToRgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.replace('#', ''), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

export function drawColorIcon(size = 192): Buffer {
  const [r, g, b] = hexToRgb(accentColor);
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const c = coverage(x, y, size, 1.05);
      const i = (y * size + x) * 4;
      rgba[i] = Math.round(r + (255 - r) * c);
      rgba[i + 1] = Math.round(g + (255 - g) * c);
      rgba[i + 2] = Math.round(b + (255 - b) * c);
      rgba[i + 3] = 255;
    }
  }
  return encodePng(size, size, rgba);
}

export function drawOutlineIcon(size = 32): Buffer {
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      const on = coverage(x, y, size, 1.2) >= 0.5;
      rgba[i] = 255;
      rgba[i + 1] = 255;
      rgba[i + 2] = 255;
      rgba[i + 3] = on ? 255 : 0;
    }
  }
  return encodePng(size, size, rgba);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const here = dirname(fileURLToPath(import.meta.url));
  writeFileSync(resolve(here, 'color.png'), drawColorIcon());
  writeFileSync(resolve(here, 'outline.png'), drawOutlineIcon());
  console.log('wrote appPackage/color.png (192×192) and appPackage/outline.png (32×32)');
}

import { deflateSync, inflateSync } from 'node:zlib';

/** CRC-32 (IEEE), as PNG chunks and zip entries use it. */
const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array, start = 0xffffffff): number {
  let c = start;
  for (const byte of data) c = (crcTable[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** Encodes 8-bit RGBA pixels (row-major, width*height*4 bytes) as a PNG. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  if (rgba.length !== width * height * 4) throw new Error(`expected ${width * height * 4} bytes of RGBA, got ${rgba.length}`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // colour type: RGBA
  header[10] = 0; // compression
  header[11] = 0; // filter
  header[12] = 0; // no interlace
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    Buffer.from(rgba.buffer, rgba.byteOffset + y * stride, stride).copy(raw, y * (stride + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export interface PngInfo {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
}

/** Reads width, height, bit depth and colour type from a PNG's IHDR chunk. */
export function readPngHeader(png: Uint8Array): PngInfo {
  const b = Buffer.from(png.buffer, png.byteOffset, png.length);
  const signature = '89504e470d0a1a0a';
  if (b.subarray(0, 8).toString('hex') !== signature) throw new Error('not a PNG (bad signature)');
  if (b.subarray(12, 16).toString('ascii') !== 'IHDR') throw new Error('not a PNG (no IHDR first)');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bitDepth: b.readUInt8(24), colorType: b.readUInt8(25) };
}

/**
 * Decodes the RGBA PNGs this folder writes (8-bit RGBA, no interlace, any of the five row filters),
 * so tests can check the pixels. Not a general PNG decoder.
 */
export function decodeRgbaPng(png: Uint8Array): { width: number; height: number; rgba: Buffer } {
  const info = readPngHeader(png);
  if (info.bitDepth !== 8 || info.colorType !== 6) throw new Error('only 8-bit RGBA PNGs are supported');
  const b = Buffer.from(png.buffer, png.byteOffset, png.length);
  const idat: Buffer[] = [];
  for (let offset = 8; offset < b.length; ) {
    const length = b.readUInt32BE(offset);
    const type = b.subarray(offset + 4, offset + 8).toString('ascii');
    if (type === 'IDAT') idat.push(b.subarray(offset + 8, offset + 8 + length));
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = info.width * 4;
  const out = Buffer.alloc(stride * info.height);
  for (let y = 0; y < info.height; y++) {
    const filter = raw[y * (stride + 1)] ?? 0;
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x] ?? 0;
      const left = x >= 4 ? (out[y * stride + x - 4] ?? 0) : 0;
      const up = y > 0 ? (out[(y - 1) * stride + x] ?? 0) : 0;
      const upLeft = x >= 4 && y > 0 ? (out[(y - 1) * stride + x - 4] ?? 0) : 0;
      let predictor = 0;
      if (filter === 1) predictor = left;
      else if (filter === 2) predictor = up;
      else if (filter === 3) predictor = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - upLeft);
        predictor = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      out[y * stride + x] = (value + predictor) & 0xff;
    }
  }
  return { width: info.width, height: info.height, rgba: out };
}

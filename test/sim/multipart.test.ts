import { describe, expect, it } from 'vitest';
import {
  multipartBoundary,
  parseContentType,
  parseHttpRequest,
  parseMultipart,
  serializeHttpResponse,
  serializeMultipart,
} from '../../sim/multipart.ts';

const CRLF = '\r\n';

describe('multipart/mixed parser and serializer', () => {
  it('reads the boundary from Content-Type, quoted or not, with other parameters', () => {
    expect(multipartBoundary('multipart/mixed; boundary=batch_123')).toBe('batch_123');
    expect(multipartBoundary('multipart/mixed;boundary="batch_a;b=c"; charset=utf-8')).toBe('batch_a;b=c');
    expect(multipartBoundary('Multipart/Mixed; charset=utf-8; BOUNDARY=changeset_9')).toBe('changeset_9');
    expect(multipartBoundary('application/json; boundary=x')).toBeUndefined();
    expect(multipartBoundary('multipart/mixed')).toBeUndefined();
    expect(multipartBoundary(undefined)).toBeUndefined();
    expect(parseContentType('application/http').mediaType).toBe('application/http');
  });

  it('splits parts on CRLF delimiters, ignores preamble and epilogue, keeps JSON bodies intact', () => {
    const json = JSON.stringify({ text: '--batch_1 is not a delimiter inside a line', n: 1 });
    const body = [
      'preamble to ignore',
      '--batch_1',
      'Content-Type: application/http',
      'Content-Transfer-Encoding: binary',
      'Content-ID: 7',
      '',
      'PATCH mailboxes(00000000-0000-4000-8000-000000000001) HTTP/1.1',
      'Content-Type: application/json',
      '',
      json,
      '--batch_1',
      'Content-Type: application/http',
      '',
      'GET /contoso/api/data/v9.0/WhoAmI HTTP/1.1',
      '',
      '',
      '--batch_1--',
      'epilogue',
    ].join(CRLF);
    const parts = parseMultipart(body, 'batch_1');
    expect(parts).toHaveLength(2);
    expect(parts[0]?.headers.get('content-id')).toBe('7');
    const first = parseHttpRequest(parts[0]?.body ?? '');
    expect(first).toMatchObject({ method: 'PATCH', url: 'mailboxes(00000000-0000-4000-8000-000000000001)' });
    expect(first.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(first.body)).toEqual(JSON.parse(json));
    const second = parseHttpRequest(parts[1]?.body ?? '');
    expect(second).toMatchObject({ method: 'GET', url: '/contoso/api/data/v9.0/WhoAmI', body: '' });
  });

  it('accepts bare LF line ends and trailing whitespace after a delimiter', () => {
    const body = '--b  \nContent-Type: application/http\n\nDELETE x HTTP/1.1\n\n--b--\n';
    const parts = parseMultipart(body, 'b');
    expect(parts).toHaveLength(1);
    expect(parseHttpRequest(parts[0]?.body ?? '').method).toBe('DELETE');
  });

  it('keeps a nested change set for a second pass', () => {
    const inner = ['--cs', 'Content-Type: application/http', '', 'PATCH a HTTP/1.1', '', '{}', '--cs--'].join(CRLF);
    const body = ['--b', 'Content-Type: multipart/mixed; boundary=cs', '', inner, '--b--', ''].join(CRLF);
    const [outer] = parseMultipart(body, 'b');
    expect(multipartBoundary(outer?.headers.get('content-type'))).toBe('cs');
    const parts = parseMultipart(outer?.body ?? '', 'cs');
    expect(parts).toHaveLength(1);
    expect(parseHttpRequest(parts[0]?.body ?? '').body).toBe('{}');
  });

  it('rejects a body without its closing delimiter, bad header lines and bad request lines', () => {
    expect(() => parseMultipart('--b\r\nContent-Type: application/http\r\n\r\nGET x HTTP/1.1\r\n', 'b')).toThrow(/does not end/);
    expect(() => parseMultipart('no delimiters at all', 'b')).toThrow(/does not end/);
    expect(() => parseMultipart('--b\r\nnot a header\r\n\r\nGET x\r\n--b--', 'b')).toThrow(/header line/);
    expect(() => parseHttpRequest('get lowercase HTTP/1.1')).toThrow(/request line/);
    expect(() => parseHttpRequest('')).toThrow(/request line/);
  });

  it('writes CRLF parts with a closing delimiter that its own parser reads back', () => {
    const response = serializeHttpResponse({ status: 204, headers: { 'OData-Version': '4.0' }, body: '' });
    expect(response).toBe(`HTTP/1.1 204 No Content${CRLF}OData-Version: 4.0${CRLF}${CRLF}`);
    const text = serializeMultipart(
      [
        { headers: { 'Content-Type': 'application/http', 'Content-ID': '1' }, body: response },
        { headers: { 'Content-Type': 'application/http' }, body: serializeHttpResponse({ status: 200, headers: {}, body: '{"a":1}' }) },
      ],
      'batchresponse_x',
    );
    expect(text.startsWith(`--batchresponse_x${CRLF}Content-Type: application/http${CRLF}Content-ID: 1${CRLF}${CRLF}HTTP/1.1 204 No Content`)).toBe(true);
    expect(text.endsWith(`${CRLF}--batchresponse_x--${CRLF}`)).toBe(true);
    expect(text.replace(/\r\n/g, '')).not.toContain('\n');
    const parts = parseMultipart(text, 'batchresponse_x');
    expect(parts).toHaveLength(2);
    expect(parts[1]?.body).toBe(`HTTP/1.1 200 OK${CRLF}${CRLF}{"a":1}`);
  });
});

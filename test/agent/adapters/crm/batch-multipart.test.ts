import { describe, expect, it } from 'vitest';
import { boundaryOf, parseBatchResponse, writeBatch } from '../../../../agent/adapters/crm/batch-multipart.ts';

const root = 'http://crm.local/org/api/data/v9.0/';
const id1 = '00000000-0000-0000-0000-000000000001';
const id2 = '00000000-0000-0000-0000-000000000002';

describe('writeBatch', () => {
  it('writes one top-level application/http part per request, with CRLF line ends and a closing delimiter', () => {
    const written = writeBatch(
      [
        { method: 'PATCH', path: `mailboxes(${id1})`, headers: { 'If-Match': '*' }, body: { emailrouteraccessapproval: 1 } },
        { method: 'PATCH', path: `mailboxes(${id2})`, headers: { 'If-Match': '*' }, body: { emailrouteraccessapproval: 1 } },
      ],
      { serviceRoot: root, boundary: 'batch_abc' },
    );
    expect(written.contentType).toBe('multipart/mixed; boundary=batch_abc');
    const parts = written.body.split('--batch_abc');
    // preamble, two parts, the closing "--" + CRLF
    expect(parts).toHaveLength(4);
    expect(parts[3]).toBe('--\r\n');
    expect(parts[1]).toBe(
      '\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n' +
        `PATCH ${root}mailboxes(${id1}) HTTP/1.1\r\nIf-Match: *\r\nContent-Type: application/json; type=entry\r\n\r\n` +
        '{"emailrouteraccessapproval":1}\r\n',
    );
    expect(written.body).not.toMatch(/[^\r]\n/);
  });

  it('puts requests in one change set with Content-IDs when asked', () => {
    const written = writeBatch(
      [
        { method: 'PATCH', path: `mailboxes(${id1})`, body: { a: 1 } },
        { method: 'PATCH', path: `mailboxes(${id2})`, body: { a: 2 } },
      ],
      { serviceRoot: root, boundary: 'batch_x', changeSet: true },
    );
    const inner = /boundary=(changeset_[0-9a-f-]+)/.exec(written.body)?.[1];
    expect(inner).toBeDefined();
    expect(written.body).toContain('Content-ID: 1\r\n');
    expect(written.body).toContain('Content-ID: 2\r\n');
    expect(written.body).toContain(`--${inner}--\r\n--batch_x--\r\n`);
  });

  it('refuses header values with line breaks, empty and oversized batches', () => {
    expect(() => writeBatch([{ method: 'GET', path: 'x', headers: { A: 'b\r\nEvil: 1' } }], { serviceRoot: root })).toThrow(/line break/);
    expect(() => writeBatch([], { serviceRoot: root })).toThrow();
    const many = Array.from({ length: 1001 }, () => ({ method: 'GET' as const, path: 'WhoAmI' }));
    expect(() => writeBatch(many, { serviceRoot: root })).toThrow(/1000/);
    expect(() => writeBatch([{ method: 'GET', path: 'a b' }], { serviceRoot: root })).toThrow(/white space/);
  });
});

describe('parseBatchResponse', () => {
  it('reads top-level parts in order, with status, headers and JSON error bodies', () => {
    const body = [
      '--batchresponse_1',
      'Content-Type: application/http',
      'Content-Transfer-Encoding: binary',
      '',
      'HTTP/1.1 204 No Content',
      'OData-Version: 4.0',
      '',
      '',
      '--batchresponse_1',
      'Content-Type: application/http',
      'Content-Transfer-Encoding: binary',
      '',
      'HTTP/1.1 403 Forbidden',
      'Content-Type: application/json; odata.metadata=minimal',
      '',
      '{"error":{"code":"0x80040220","message":"missing prvApproveRejectEmailAddress privilege"}}',
      '--batchresponse_1--',
      '',
    ].join('\r\n');
    const parts = parseBatchResponse('multipart/mixed; boundary=batchresponse_1', body);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toMatchObject({ status: 204, body: undefined });
    expect(parts[0]?.headers['odata-version']).toBe('4.0');
    expect(parts[1]?.status).toBe(403);
    expect(parts[1]?.body).toEqual({ error: { code: '0x80040220', message: 'missing prvApproveRejectEmailAddress privilege' } });
  });

  it('flattens change-set responses, keeps Content-ID, and accepts LF-only line ends and a quoted boundary', () => {
    const body = [
      '--b1',
      'Content-Type: multipart/mixed; boundary=cs1',
      '',
      '--cs1',
      'Content-Type: application/http',
      'Content-Transfer-Encoding: binary',
      'Content-ID: 1',
      '',
      'HTTP/1.1 204 No Content',
      '',
      '',
      '--cs1',
      'Content-Type: application/http',
      'Content-ID: 2',
      '',
      'HTTP/1.1 200 OK',
      'Content-Type: application/json',
      '',
      '{"value":[1,2]}',
      '--cs1--',
      '--b1--',
    ].join('\n');
    const parts = parseBatchResponse('multipart/mixed; boundary="b1"', body);
    expect(parts.map((p) => [p.status, p.contentId])).toEqual([
      [204, '1'],
      [200, '2'],
    ]);
    expect(parts[1]?.body).toEqual({ value: [1, 2] });
  });

  it('rejects a response that is not multipart or a part without a status line', () => {
    expect(() => parseBatchResponse('application/json', '{}')).toThrow(/multipart/);
    expect(() => parseBatchResponse('multipart/mixed; boundary=z', '--z\r\nContent-Type: application/http\r\n\r\nnonsense\r\n--z--')).toThrow(/status line/);
    expect(boundaryOf('multipart/mixed;boundary=abc')).toBe('abc');
    expect(boundaryOf(undefined)).toBeUndefined();
  });
});

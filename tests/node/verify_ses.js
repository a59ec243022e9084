// Checks a GB/T 38540 SES_Signature with sm-crypto, the SM2 library OFD viewers in the
// browser use, without any of tongban's code: a few lines of DER walking, then sm-crypto.
// Usage: node verify_ses.js FILE.ses DOCUMENT   ->  JSON verdict on stdout
'use strict';
const fs = require('fs');
const path = require('path');
const { sm2, sm3 } = require(path.join(__dirname, 'node_modules', 'sm-crypto'));

const USER_ID = '1234567812345678';

// One TLV at `pos`: tag, where the content starts and ends, where the whole value ends.
function tlv(buf, pos) {
  const tag = buf[pos];
  let len = buf[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
    start += n;
  }
  return { tag, pos, start, end: start + len };
}

function children(buf, node) {
  const out = [];
  for (let p = node.start; p < node.end; ) {
    const child = tlv(buf, p);
    out.push(child);
    p = child.end;
  }
  return out;
}

const whole = (buf, node) => buf.subarray(node.pos, node.end);
const content = (buf, node) => buf.subarray(node.start, node.end);
const bits = (buf, node) => buf.subarray(node.start + 1, node.end); // drop unused-bits byte
const hex = (bytes) => Buffer.from(bytes).toString('hex');

// The uncompressed public point (04||x||y) of a DER certificate, as sm-crypto wants it.
function publicKeyHex(cert) {
  const tbs = children(cert, children(cert, tlv(cert, 0))[0]);
  const fields = tbs[0].tag === 0xa0 ? tbs.slice(1) : tbs;
  const spki = children(cert, fields[5]);
  return hex(bits(cert, spki[1]));
}

const ses = fs.readFileSync(process.argv[2]);
const documentBytes = fs.readFileSync(process.argv[3]);
const sig = children(ses, tlv(ses, 0));
const tbs = children(ses, sig[0]);
const seal = children(ses, tbs[1]);

const signerCert = content(ses, sig[1]);
const makerCert = content(ses, seal[1]);
const verdict = {
  signature: sm2.doVerifySignature(
    Array.from(whole(ses, sig[0])), hex(bits(ses, sig[3])), publicKeyHex(signerCert),
    { der: true, hash: true, userId: USER_ID }),
  seal_signature: sm2.doVerifySignature(
    Array.from(whole(ses, seal[0])), hex(bits(ses, seal[3])), publicKeyHex(makerCert),
    { der: true, hash: true, userId: USER_ID }),
  data_hash: sm3(Array.from(documentBytes)) === hex(bits(ses, tbs[3])),
};
process.stdout.write(JSON.stringify(verdict) + '\n');

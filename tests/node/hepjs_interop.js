// Interop with npm hep-js (the sipcapture Node HEP library).
//   node hepjs_interop.js encode   -> one JSON line per packet hep-js encodes: {hex, rcinfo, payload}
//   node hepjs_interop.js decode   <- a raw HEP stream on stdin; one JSON line per packet
//                                     hep-js decodes: {rcinfo, payload}
// hep-js sizes strings by JavaScript length, so the cases stay ASCII.
'use strict';
const HEPjs = require('hep-js');

// Vendor 0x0008 (Genesys) chunk 0x0080 as hep-js's README shows it.
HEPjs.addVendorExtensions({ 8: { 128: { keyName: 'vendor_note', type: 'string' } } });

function cases() {
  const base = {
    protocolFamily: 2, protocol: 17,
    srcIp: '192.168.1.10', dstIp: '10.20.30.40',
    srcPort: 5060, dstPort: 5080,
    timeSeconds: 1732406400, timeUseconds: 999999,
    captureId: 2001,
  };
  return [
    { rcinfo: { ...base, payloadType: 1 },
      payload: 'OPTIONS sip:bob@example.org SIP/2.0\r\nCall-ID: a84b4c76e66710\r\nCSeq: 1 OPTIONS\r\n\r\n' },
    { rcinfo: { ...base, payloadType: 100, correlation_id: 'janus:room:4242', hepNodeName: 'janus-1' },
      payload: '{"emitter":"janus-1","type":64}' },
    { rcinfo: { ...base, payloadType: 5, correlation_id: 'cid-rtcp', capturePass: 'myHep', srcPort: 0, dstPort: 65535 },
      payload: '{"type":200,"ssrc":1}' },
    { rcinfo: { ...base, payloadType: 100, correlation_id: 'x', timeSeconds: 0, timeUseconds: 0, captureId: 4294967295 },
      payload: 'log line' },
    { rcinfo: { ...base, payloadType: 100, correlation_id: 'vend', vendor_note: 'hello-vendor' },
      payload: '{}' },
  ];
}

function frames(buf) {
  const out = [];
  let pos = 0;
  while (pos + 6 <= buf.length) {
    const len = buf.readUInt16BE(pos + 4);
    if (len < 6 || pos + len > buf.length) throw new Error('bad frame at ' + pos);
    out.push(buf.subarray(pos, pos + len));
    pos += len;
  }
  if (pos !== buf.length) throw new Error('trailing bytes');
  return out;
}

const mode = process.argv[2];
if (mode === 'encode') {
  for (const c of cases()) {
    const buf = HEPjs.encapsulate(c.payload, c.rcinfo);
    process.stdout.write(JSON.stringify({ hex: buf.toString('hex'), rcinfo: c.rcinfo, payload: c.payload }) + '\n');
  }
} else if (mode === 'decode') {
  const chunks = [];
  process.stdin.on('data', (d) => chunks.push(d));
  process.stdin.on('end', () => {
    for (const f of frames(Buffer.concat(chunks))) {
      const d = HEPjs.decapsulate(f);
      process.stdout.write(JSON.stringify({ rcinfo: d.rcinfo, payload: d.payload }) + '\n');
    }
  });
} else {
  console.error('usage: node hepjs_interop.js encode|decode');
  process.exit(2);
}

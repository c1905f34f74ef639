// A second, independent SMSC for kaskad's SMPP tests: node-smpp's server (npm "smpp").
// Prints {"port": N} once listening, then one JSON line per submit_sm it accepts.
// Answers every submit_sm with a message id and, when a receipt is asked for, sends a
// delivery receipt (TLVs and the text form) 20 ms later on the same session. A destination
// ending in 0401 is refused with 0x00000401, a vendor-specific code (SMPP 3.4 leaves
// 0x400-0x4FF to SMSC vendors); one ending in 0999 is never answered (a lost response); one
// ending in 0998 is answered with generic_nack (ESME_RINVCMDID) instead of submit_sm_resp.
'use strict';
const smpp = require('smpp');

const SYSTEM_ID = process.argv[2] || 'kaskad';
const PASSWORD = process.argv[3] || 'secret';
let counter = 0x2000;

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

const server = smpp.createServer({}, (session) => {
  session.on('error', () => {});
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== SYSTEM_ID || pdu.password !== PASSWORD) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    session.send(pdu.response());
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('submit_sm', (pdu) => {
    if (String(pdu.destination_addr).endsWith('0401')) {
      session.send(pdu.response({ command_status: 0x401 }));
      return;
    }
    if (String(pdu.destination_addr).endsWith('0999')) {
      return;
    }
    if (String(pdu.destination_addr).endsWith('0998')) {
      session.send(new smpp.PDU('generic_nack', {
        sequence_number: pdu.sequence_number, command_status: smpp.ESME_RINVCMDID,
      }));
      return;
    }
    counter += 1;
    const id = counter.toString(16);
    const sm = pdu.short_message || {};
    emit({
      submit: id, destination: pdu.destination_addr, source: pdu.source_addr,
      data_coding: pdu.data_coding, esm_class: pdu.esm_class,
      udh: sm.udh ? sm.udh.map((b) => Array.from(b)) : null,
      text: typeof sm.message === 'string' ? sm.message : null,
    });
    session.send(pdu.response({ message_id: id }));
    if (pdu.registered_delivery & 1) {
      setTimeout(() => {
        const text = 'id:' + id + ' sub:001 dlvrd:001 submit date:' + stamp() +
          ' done date:' + stamp() + ' stat:DELIVRD err:000 text:';
        session.deliver_sm({
          source_addr: pdu.destination_addr, destination_addr: pdu.source_addr,
          esm_class: 4, short_message: text,
          receipted_message_id: id, message_state: 2,
        });
      }, 20);
    }
  });
});

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
process.on('SIGTERM', () => process.exit(0));

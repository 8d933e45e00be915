// JSON and SSE checks for scale_out_test.sh (node's standard library only).
//   node check.js content FILE             the reply's message content, as a JSON string
//   node check.js stream PORT KEY BODY     POST BODY (a file) to /v1/chat/completions, streamed;
//                                          prints what arrived and when, as JSON
//   node check.js kill LOGDIR KILL_T GRACE ACCESS_LOG KILLED_PORT REFS [EVENT]
//                                          the requests sent around a replica's SIGKILL (see the test)
'use strict';
const fs = require('fs');
const http = require('http');

const [cmd, ...args] = process.argv.slice(2);

function content(file) {
  const reply = JSON.parse(fs.readFileSync(file, 'utf8'));
  return reply.choices[0].message.content;
}

if (cmd === 'content') {
  console.log(JSON.stringify(content(args[0])));
} else if (cmd === 'stream') {
  const [port, key, bodyFile] = args;
  const body = fs.readFileSync(bodyFile);
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const out = { reads: 0, events: [], bad: [] };
  const req = http.request({
    host: '127.0.0.1', port: Number(port), method: 'POST', path: '/v1/chat/completions',
    headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key, 'Content-Length': body.length },
  }, (res) => {
    out.status = res.statusCode;
    out.contentType = res.headers['content-type'];
    out.transferEncoding = res.headers['transfer-encoding'] || null;
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (piece) => {
      const read = out.reads++;
      const t = ms();
      buf += piece;
      for (let i; (i = buf.indexOf('\n\n')) >= 0;) {
        out.events.push({ read, t, text: buf.slice(0, i) });
        buf = buf.slice(i + 2);
      }
    });
    res.on('end', () => {
      out.rest = buf;
      out.end = ms();
      let text = '';
      out.done = false;
      for (const e of out.events) {
        if (!e.text.startsWith('data: ')) { out.bad.push(e.text); continue; }
        const data = e.text.slice(6);
        if (data === '[DONE]') { out.done = true; out.doneRead = e.read; out.doneT = e.t; continue; }
        if (out.done) { out.bad.push('after [DONE]: ' + data); continue; }
        const chunk = JSON.parse(data);
        if (chunk.error) { out.bad.push(data); continue; }
        const delta = chunk.choices[0].delta;
        if (delta.content) {
          text += delta.content;
          out.contentEvents = (out.contentEvents || 0) + 1;
          if (out.firstContentT === undefined) out.firstContentT = e.t;
        }
        if (chunk.choices[0].finish_reason) out.finishReason = chunk.choices[0].finish_reason;
      }
      // Content events that arrived in an earlier read than the one that carried [DONE].
      out.contentBeforeDoneRead = out.events.filter((e) => e.read < out.doneRead && e.text.includes('"content":"') &&
                                                        !e.text.includes('"content":""')).length;
      out.text = text;
      out.eventCount = out.events.length;
      delete out.events;
      console.log(JSON.stringify(out));
    });
  });
  req.setTimeout(30000, () => req.destroy(new Error('no reply in 30 s')));
  req.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); });
  req.end(body);
} else if (cmd === 'kill') {
  // Each client log line: ID PROMPT START END STATUS (times in seconds since the epoch).
  const [logDir, killT, grace, accessLog, killedPort, refsFile, event = 'the kill'] = args;
  const kill = Number(killT), after = kill + Number(grace);
  const refs = JSON.parse(fs.readFileSync(refsFile, 'utf8'));
  const upstreams = {};  // X-Test-Id -> the replicas nginx tried, from the access log
  const upstreamStatus = {};  // X-Test-Id -> their answers, e.g. "503, 200"
  for (const line of fs.readFileSync(accessLog, 'utf8').split('\n')) {
    const m = /^T (\S+) \d+ \S+ \[(.*)\] (.*)$/.exec(line);
    if (m && m[1] !== '-') { upstreams[m[1]] = m[3]; upstreamStatus[m[1]] = m[2]; }
  }
  const r = { sent: 0, ok: 0, wrongContent: [], failedInFlight: [], failedOther: [], afterGrace: 0,
              retried: 0, retriedAfter503: 0, startedAfterKill: 0, inFlightOnKilled: 0 };
  for (const name of fs.readdirSync(logDir).filter((n) => n.startsWith('log.'))) {
    for (const line of fs.readFileSync(`${logDir}/${name}`, 'utf8').split('\n').filter(Boolean)) {
      const [id, prompt, start, end, status] = line.split(' ');
      const s = Number(start), e = Number(end);
      r.sent++;
      if (s >= kill) r.startedAfterKill++;
      if (s >= after) r.afterGrace++;
      const via = upstreams[id] || '';
      if (via.includes(',')) r.retried++;
      if (/^503,/.test(upstreamStatus[id] || '')) r.retriedAfter503++;
      if (s <= kill && e >= kill && via.split(',')[0].trim().endsWith(`:${killedPort}`)) r.inFlightOnKilled++;
      if (status === '200') {
        r.ok++;
        const got = content(`${logDir}/${id}.json`);
        if (got !== refs[prompt]) r.wrongContent.push(`${id}: ${JSON.stringify(got)}`);
        continue;
      }
      const what = `${id} sent ${(s - kill).toFixed(3)} s after ${event}, answered ${(e - kill).toFixed(3)} s after it: ` +
                   `HTTP ${status}, nginx tried ${via || '(not in the access log)'} (answers: ${upstreamStatus[id] || '-'})`;
      // Allowed: a request in flight at the kill whose replica was the killed one.
      if (s < after && s <= kill && e >= kill && via.includes(`:${killedPort}`)) r.failedInFlight.push(what);
      else r.failedOther.push(what);
    }
  }
  console.log(JSON.stringify(r));
} else {
  console.error(`check.js: unknown command ${cmd}`);
  process.exit(2);
}

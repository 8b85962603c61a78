// Notify: tell the team about unusual readings.
//
// Each alert becomes a short message POSTed as JSON to the webhook in
// params.webhook_url (a chat room, an incident tool, ...). A failed delivery
// is retried with growing pauses (0.5 s, 1 s, 2 s, ...). With no webhook set,
// nothing leaves the machine: the messages are recorded in outbox.ndjson so
// you can see exactly what would have been sent.
//
// At most params.max_alerts messages go out one by one, most severe first;
// the rest are folded into a single summary message, so a noisy day does not
// flood anyone's phone.

'use strict';

const http = require('node:http');
const https = require('node:https');
const pipeloom = require('pipeloom');

const SEVERITY = { critical: 2, warning: 1 };

function describe(alert) {
  const unit = alert.unit ? ` ${alert.unit}` : '';
  const what = alert.reason === 'stuck'
    ? `has reported ${alert.value}${unit} over and over (the sensor may be stuck)`
    : `read ${alert.value}${unit}, ${alert.reason === 'low' ? 'far below' : 'far above'} the usual` +
      (alert.expected !== null && alert.expected !== undefined ? ` (about ${alert.expected}${unit})` : '');
  return `${alert.label.toUpperCase()}: sensor ${alert.sensor_id} ${alert.metric} ${what} at ${alert.ts}`;
}

function summarise(rest) {
  const groups = new Map();
  for (const a of rest) {
    const key = `${a.sensor_id} ${a.metric} ${a.label}`;
    groups.set(key, (groups.get(key) || 0) + 1);
  }
  const lines = [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`);
  return {
    text: `…and ${rest.length} more alerts in this run, by sensor, metric and level: ${lines.slice(0, 20).join('; ')}` +
      (lines.length > 20 ? `; and ${lines.length - 20} more groups` : ''),
    count: rest.length,
    groups: Object.fromEntries(groups),
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One kept-alive connection per scheme for the whole run: a burst of alerts costs one TCP (and TLS) handshake.
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/** One POST of `payload` (a string) as JSON; resolves to the HTTP status, rejects on a network error or timeout. */
function send(url, payload, timeoutMs) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const lib = target.protocol === 'https:' ? https : http;
    const req = lib.request(target, {
      method: 'POST',
      agent: agents[target.protocol],
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      res.resume(); // the answer's body is not needed, but must be read for the connection to be reused
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { timeout: true })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** POST `body` as JSON, retrying network errors, 429 and 5xx with exponential backoff. */
async function post(url, body, { retries, backoffMs, timeoutMs }) {
  const payload = JSON.stringify(body);
  let lastError = '';
  for (let attempt = 1; attempt <= retries + 1; attempt += 1) {
    try {
      const status = await send(url, payload, timeoutMs);
      if (status >= 200 && status < 300) return { status: 'sent', http_status: status, attempts: attempt };
      lastError = `HTTP ${status}`;
      if (status < 500 && status !== 429) {
        return { status: 'failed', http_status: status, attempts: attempt, error: lastError };
      }
    } catch (err) {
      lastError = err.message || String(err.code);
    }
    if (attempt <= retries) await sleep(backoffMs * 2 ** (attempt - 1));
  }
  return { status: 'failed', attempts: retries + 1, error: lastError };
}

async function main() {
  const p = pipeloom.params();
  const url = p.webhook_url || '';
  const maxAlerts = Number.isInteger(p.max_alerts) ? p.max_alerts : 20;
  const options = {
    retries: Number.isInteger(p.retries) ? p.retries : 3,
    backoffMs: typeof p.backoff_ms === 'number' ? p.backoff_ms : 500,
    timeoutMs: typeof p.timeout_ms === 'number' ? p.timeout_ms : 5000,
  };

  const alerts = Array.from(pipeloom.records('alerts'));
  alerts.sort((a, b) => (SEVERITY[b.label] || 0) - (SEVERITY[a.label] || 0) ||
    Math.abs(b.score) - Math.abs(a.score) || String(a.ts).localeCompare(String(b.ts)));
  const chosen = alerts.slice(0, maxAlerts);
  const rest = alerts.slice(maxAlerts);

  const messages = chosen.map((alert) => ({ kind: 'alert', alert, body: { text: describe(alert), alert } }));
  if (rest.length) {
    const summary = summarise(rest);
    messages.push({ kind: 'summary', alert: null, body: { text: summary.text, summary } });
  }

  const outbox = pipeloom.writer('outbox');
  const results = [];
  try {
    for (const m of messages) {
      const outcome = url ? await post(url, m.body, options) : { status: 'recorded', attempts: 0 };
      outbox.write({ to: url || null, status: outcome.status, body: m.body });
      const a = m.alert || {};
      results.push({
        kind: m.kind, sensor_id: a.sensor_id ?? null, metric: a.metric ?? null, label: a.label ?? null,
        ts: a.ts ?? null, text: m.body.text, ...outcome,
      });
    }
    outbox.close();
  } catch (err) {
    outbox.abort();
    throw err;
  } finally {
    Object.values(agents).forEach((agent) => agent.destroy());
  }
  pipeloom.write('sent_alerts', results);

  const failed = results.filter((r) => r.status === 'failed');
  const where = url ? `to ${new URL(url).host}` : 'to outbox.ndjson (no webhook_url set, nothing left this machine)';
  console.log(`notify: ${alerts.length} alerts; ${messages.length - failed.length} of ${messages.length} messages ` +
    `${url ? 'sent' : 'recorded'} ${where}` + (rest.length ? `; ${rest.length} folded into one summary` : ''));
  if (failed.length) {
    console.error(`notify: ${failed.length} message(s) could not be delivered: ${failed[0].error}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`notify: ${err.message}`);
  process.exitCode = 1;
});

// Load generator for any OpenAI-compatible chat completions server (q3vl serve, llama-server, ...):
// for each concurrency level N, N client loops each send streamed requests (an optional image as a
// data URL + a prompt, then max_tokens tokens, greedy, the end-of-text token ignored where the server
// supports it) and the script prints aggregate generated tokens per second, time to first token
// p50/p95 and inter-token latency p50/p95, measured at the client from the server-sent events.
//
//   node bench/openai_load.mjs --url http://127.0.0.1:8080/v1 [--streams 1,2,4,8] [--requests 3]
//        [--max-tokens 64] [--image img.png] [--prompt TEXT] [--label NAME] [--json out.json]
//
// Every request is timed from the moment it is sent; a level's tokens/s is all tokens generated
// at that level over the level's wall time. Requests that fail are counted and reported.
import { readFileSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';

function parseArgs(argv) {
  const args = { url: 'http://127.0.0.1:8080/v1', streams: '1', requests: 3, maxTokens: 64, image: '', label: '',
                 prompt: 'Describe this picture in detail.', json: '', model: 'default', timeout: 600 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    args[key] = typeof args[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  args.streams = String(args.streams).split(',').map(Number);
  return args;
}

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function messages(args) {
  const content = [];
  if (args.image) {
    const type = extname(args.image).toLowerCase() === '.png' ? 'image/png' : 'image/jpeg';
    content.push({ type: 'image_url', image_url: { url: `data:${type};base64,${readFileSync(args.image).toString('base64')}` } });
  }
  content.push({ type: 'text', text: args.prompt });
  return [{ role: 'user', content }];
}

// One streamed request: time to first content, the gaps between content events, tokens generated.
async function streamOnce(args, body) {
  const sent = performance.now();
  const response = await fetch(`${args.url}/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: AbortSignal.timeout(args.timeout * 1000),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = null;
  let last = null;
  const gaps = [];
  let tokens = 0;
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ')) continue;
      const data = event.slice(6);
      if (data === '[DONE]') continue;
      const parsed = JSON.parse(data);
      if (parsed.error) throw new Error(`stream error: ${JSON.stringify(parsed.error)}`);
      if (parsed.usage) tokens = parsed.usage.completion_tokens;
      const content = parsed.choices?.[0]?.delta?.content;
      if (!content) continue;
      const now = performance.now();
      if (first === null) first = now;
      else gaps.push(now - last);
      last = now;
    }
  }
  return { ttft: first === null ? NaN : first - sent, gaps, tokens, total: performance.now() - sent };
}

async function level(args, streams) {
  const body = JSON.stringify({
    model: args.model, messages: messages(args), max_tokens: args.maxTokens, temperature: 0, stream: true,
    stream_options: { include_usage: true }, ignore_eos: true,  // llama-server honours ignore_eos; q3vl ignores unknown fields
  });
  const results = [];
  let failures = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: streams }, async () => {
    for (let i = 0; i < args.requests; ++i) {
      try {
        results.push(await streamOnce(args, body));
      } catch (error) {
        ++failures;
        console.error(`request failed: ${error.message}`);
      }
    }
  }));
  const wall = (performance.now() - started) / 1000;
  const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
  return {
    streams, requests: results.length, failures, wall_s: wall, tokens,
    tokens_per_s: tokens / wall,
    ttft_p50_ms: percentile(results.map((r) => r.ttft), 50), ttft_p95_ms: percentile(results.map((r) => r.ttft), 95),
    itl_p50_ms: percentile(results.flatMap((r) => r.gaps), 50), itl_p95_ms: percentile(results.flatMap((r) => r.gaps), 95),
  };
}

const args = parseArgs(process.argv);
const rows = [];
await streamOnce(args, JSON.stringify({ model: args.model, messages: messages(args), max_tokens: 4, temperature: 0, stream: true }));  // warm-up
for (const streams of args.streams) rows.push(await level(args, streams));
const label = args.label || args.url;
console.log(`| server | streams | requests | tokens/s (all streams) | TTFT p50 / p95 ms | inter-token p50 / p95 ms | failed |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const r of rows) {
  console.log(`| ${label} | ${r.streams} | ${r.requests} | ${r.tokens_per_s.toFixed(2)} | ${r.ttft_p50_ms.toFixed(0)} / ${r.ttft_p95_ms.toFixed(0)} | ` +
              `${r.itl_p50_ms.toFixed(1)} / ${r.itl_p95_ms.toFixed(1)} | ${r.failures} |`);
}
if (args.json) writeFileSync(args.json, JSON.stringify({ label, rows }, null, 2));
if (rows.some((r) => r.failures > 0)) process.exit(1);

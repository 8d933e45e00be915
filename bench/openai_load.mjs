// Load generator for any OpenAI-compatible chat completions server (q3vl serve, llama-server, ...),
// measured at the client from the server-sent events. Three scenarios (--scenario, default streams):
//
//   streams  for each concurrency level N, N client loops each send streamed requests (an optional
//            image as a data URL + a prompt, then max_tokens tokens, greedy, the end-of-text token
//            ignored where the server supports it); prints generated tokens per second, time to first
//            token (TTFT) p50/p95 and inter-token latency p50/p95.
//   busy     TTFT of a request with a never-seen image on an idle server, then the same while
//            --busy-streams other streams decode; prints the medians and busy / idle.
//   turns    a two-turn chat that resends its history (turn 2 = turn 1 + the reply + a question);
//            prints the median TTFT of each turn and turn 2 / turn 1 (the prompt cache's effect).
//   all      the three, in that order.
//
//   node bench/openai_load.mjs --url http://127.0.0.1:8080/v1 [--scenario streams|busy|turns|all]
//        [--streams 1,2,4,8] [--requests 3] [--max-tokens 64] [--image img.png] [--prompt TEXT]
//        [--label NAME] [--json out.json] [--warmup 0|1] [--busy-streams 3] [--busy-max-tokens 400]
//        [--bmp-size 448] [--settle-ms 500] [--timeout 600] [--distinct 0|1]
//
// streams: every request is timed from the moment it is sent. "tokens/s, all" is all tokens of a
// level over the level's wall time (so it includes every TTFT); "decode tokens/s" is the tokens
// generated after each request's first one over the time at least one request was between its first
// and last content event (the union of those intervals), i.e. the decoding rate with prefill and
// queueing left out. --image is optional; the same image is resent, so later requests may hit a cache
// (another stream's too, on a server that shares prompts across slots); --distinct 1 gives each
// stream its own generated image instead.
//
// busy and turns send generated 24-bit BMPs (--bmp-size square), each one distinct from every image
// sent before, also by earlier runs of this script (a random per-run salt), so every image is a cache
// miss. busy: keep --busy-streams below the server's slot count (q3vl --parallel, llama-server -np),
// otherwise the background streams or the measured request wait in the queue.
//
// --warmup 1 (default) sends one short request first (with --image if given), and for busy/turns one
// more with a generated BMP, so one-time start-up costs stay out of the numbers. Requests that fail
// are counted and reported, and make the exit status 1.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SCENARIOS = ['streams', 'busy', 'turns'];
const FOLLOW_UP = 'And what colours are there?';

function parseArgs(argv) {
  const args = { url: 'http://127.0.0.1:8080/v1', streams: '1', requests: 3, maxTokens: 64, image: '', label: '',
                 prompt: 'Describe this picture in detail.', json: '', model: 'default', timeout: 600,
                 scenario: 'streams', warmup: 1, busyStreams: 3, busyMaxTokens: 400, bmpSize: 448, settleMs: 500,
                 distinct: 0 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    if (i + 1 >= argv.length) throw new Error(`option ${argv[i]} needs a value`);
    args[key] = typeof args[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    if (Number.isNaN(args[key])) throw new Error(`option ${argv[i]} needs a number, not ${argv[i + 1]}`);
  }
  args.streams = String(args.streams).split(',').map(Number);
  if (args.scenario !== 'all' && !SCENARIOS.includes(args.scenario)) {
    throw new Error(`--scenario must be one of ${[...SCENARIOS, 'all'].join(', ')}, not ${args.scenario}`);
  }
  if (args.warmup !== 0 && args.warmup !== 1) throw new Error('--warmup must be 0 or 1');
  if (args.distinct !== 0 && args.distinct !== 1) throw new Error('--distinct must be 0 or 1');
  args.scenarios = args.scenario === 'all' ? SCENARIOS : [args.scenario];
  return args;
}

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// The usual median (the mean of the middle two for an even count): busy/turns have few samples.
function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// Total length of the union of [start, end] intervals (overlaps counted once).
function unionLength(intervals) {
  const sorted = intervals.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [s, e] of sorted) {
    if (s > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else if (e > curEnd) {
      curEnd = e;
    }
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

// Node's fetch reports a refused connection as "fetch failed" with the reason in `cause`.
const describe = (error) => (error.cause?.message ? `${error.message} (${error.cause.message})` : error.message);

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

// ---- images ----

const IMAGE_TYPES = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.bmp': 'image/bmp',
                      '.webp': 'image/webp', '.gif': 'image/gif' };

function fileDataUrl(path) {
  const type = IMAGE_TYPES[extname(path).toLowerCase()] ?? 'image/jpeg';
  return `data:${type};base64,${readFileSync(path).toString('base64')}`;
}

// Small seeded PRNG (mulberry32): the pattern parameters of each generated image.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A per-run salt, so that a second run against the same server still sends images it has never seen.
const RUN_SALT = randomBytes(4).readUInt32LE(0);
let imageCounter = 0;

// A new uncompressed 24-bit BMP (BITMAPINFOHEADER, rows bottom-up, BGR, rows padded to 4 bytes):
// smooth colour waves whose frequencies and phases come from (salt, counter), plus the salt and the
// counter stamped as eight 8x8 grey blocks in the top-left corner, so no two images are equal, even
// after a server rescales them. BMP because both q3vl and llama-server (stb_image) decode it and
// writing it needs no compression library.
function uniqueBmp(size) {
  const counter = ++imageCounter;
  const rand = mulberry32((RUN_SALT ^ Math.imul(counter, 0x9e3779b9)) >>> 0);
  const waves = [0, 1, 2].map(() => ({ fx: 0.005 + rand() * 0.05, fy: 0.005 + rand() * 0.05, phase: rand() * 2 * Math.PI }));
  const stamp = [RUN_SALT & 255, (RUN_SALT >>> 8) & 255, (RUN_SALT >>> 16) & 255, RUN_SALT >>> 24,
                 counter & 255, (counter >>> 8) & 255, (counter >>> 16) & 255, (counter >>> 24) & 255];
  const width = size;
  const height = size;
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const dataSize = rowBytes * height;
  const buf = Buffer.alloc(54 + dataSize);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(54 + dataSize, 2);  // file size
  buf.writeUInt32LE(54, 10);            // offset of the pixels
  buf.writeUInt32LE(40, 14);            // BITMAPINFOHEADER
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);         // positive: bottom-up rows
  buf.writeUInt16LE(1, 26);             // planes
  buf.writeUInt16LE(24, 28);            // bits per pixel
  buf.writeUInt32LE(0, 30);             // BI_RGB, uncompressed
  buf.writeUInt32LE(dataSize, 34);
  buf.writeInt32LE(2835, 38);           // 72 dpi
  buf.writeInt32LE(2835, 42);
  for (let y = 0; y < height; ++y) {
    const row = 54 + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; ++x) {
      const block = y < 8 && x < 64 ? stamp[x >> 3] : -1;
      for (let c = 0; c < 3; ++c) {
        const w = waves[c];
        const value = block >= 0 ? block : Math.round(127.5 + 127.5 * Math.sin(x * w.fx + y * w.fy + w.phase));
        buf[row + x * 3 + (2 - c)] = value;  // stored as B, G, R
      }
    }
  }
  return buf;
}

const bmpDataUrl = (size) => `data:image/bmp;base64,${uniqueBmp(size).toString('base64')}`;

function userMessage(imageUrl, text) {
  const content = [];
  if (imageUrl) content.push({ type: 'image_url', image_url: { url: imageUrl } });
  content.push({ type: 'text', text });
  return { role: 'user', content };
}

function messages(args) {
  return [userMessage(args.image ? fileDataUrl(args.image) : '', args.prompt)];
}

function requestBody(args, msgs, maxTokens) {
  return JSON.stringify({
    model: args.model, messages: msgs, max_tokens: maxTokens, temperature: 0, stream: true,
    stream_options: { include_usage: true }, ignore_eos: true,  // llama-server honours ignore_eos; q3vl ignores unknown fields
  });
}

// ---- one streamed request ----

// One streamed request: time to first content, the gaps between content events, tokens generated
// (from the usage chunk; the count of content events where a server sends none), the reply text, and
// the absolute times of the first and last content events (for the decode-time union).
// `signal` lets a caller abort it (busy's background streams); `onFirst` fires at the first content.
async function streamOnce(args, body, { signal, onFirst } = {}) {
  const timeout = AbortSignal.timeout(args.timeout * 1000);
  const sent = performance.now();
  const response = await fetch(`${args.url}/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
    signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = null;
  let last = null;
  const gaps = [];
  let tokens = null;
  let events = 0;
  let text = '';
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
      if (first === null) {
        first = now;
        onFirst?.();
      } else {
        gaps.push(now - last);
      }
      last = now;
      ++events;
      text += content;
    }
  }
  return { ttft: first === null ? NaN : first - sent, gaps, tokens: tokens ?? events, text,
           firstAt: first, lastAt: last, total: performance.now() - sent };
}

// ---- scenario: streams ----

async function level(args, streams) {
  const shared = requestBody(args, messages(args), args.maxTokens);
  // --distinct 1: each stream its own new image (a generated BMP), so no stream's prompt can be
  // taken from another's cache; a stream's later requests repeat its own.
  const bodies = Array.from({ length: streams }, () =>
    args.distinct ? requestBody(args, [userMessage(bmpDataUrl(args.bmpSize), args.prompt)], args.maxTokens) : shared);
  const results = [];
  let failures = 0;
  const started = performance.now();
  await Promise.all(bodies.map(async (body) => {
    for (let i = 0; i < args.requests; ++i) {
      try {
        results.push(await streamOnce(args, body));
      } catch (error) {
        ++failures;
        console.error(`request failed: ${describe(error)}`);
      }
    }
  }));
  const wall = (performance.now() - started) / 1000;
  const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
  // Decode rate: the first token of each request belongs to its prefill, so (tokens - 1) per
  // request, over the time any request of this level was between its first and last content.
  const decodeTokens = results.reduce((sum, r) => sum + Math.max(0, r.tokens - 1), 0);
  const decodeWall = unionLength(results.filter((r) => r.firstAt !== null).map((r) => [r.firstAt, r.lastAt])) / 1000;
  return {
    streams, requests: results.length, failures, wall_s: wall, tokens,
    tokens_per_s: tokens / wall,
    decode_tokens: decodeTokens, decode_wall_s: decodeWall, decode_tokens_per_s: decodeWall > 0 ? decodeTokens / decodeWall : NaN,
    ttft_p50_ms: percentile(results.map((r) => r.ttft), 50), ttft_p95_ms: percentile(results.map((r) => r.ttft), 95),
    itl_p50_ms: percentile(results.flatMap((r) => r.gaps), 50), itl_p95_ms: percentile(results.flatMap((r) => r.gaps), 95),
  };
}

async function runStreams(args, label) {
  const rows = [];
  for (const streams of args.streams) rows.push(await level(args, streams));
  console.log(`| server | streams | requests | tokens/s, all tokens / wall time | decode tokens/s, while any stream decodes | ` +
              `TTFT p50 / p95 ms | inter-token p50 / p95 ms | failed |`);
  console.log(`|---|---|---|---|---|---|---|---|`);
  for (const r of rows) {
    console.log(`| ${label} | ${r.streams} | ${r.requests} | ${fmt(r.tokens_per_s, 2)} | ${fmt(r.decode_tokens_per_s, 2)} | ` +
                `${fmt(r.ttft_p50_ms)} / ${fmt(r.ttft_p95_ms)} | ${fmt(r.itl_p50_ms, 1)} / ${fmt(r.itl_p95_ms, 1)} | ${r.failures} |`);
  }
  return { rows, failures: rows.reduce((sum, r) => sum + r.failures, 0) };
}

// ---- scenario: busy ----

async function busyRound(args) {
  // Every image of the round is made first: making one costs the client ~0.1 s of CPU, which should
  // not run while the background streams are being read.
  const newImageBody = (maxTokens) => requestBody(args, [userMessage(bmpDataUrl(args.bmpSize), args.prompt)], maxTokens);
  const idleBody = newImageBody(args.maxTokens);
  const backgroundBodies = Array.from({ length: args.busyStreams }, () => newImageBody(args.busyMaxTokens));
  const probeBody = newImageBody(args.maxTokens);

  // (a) idle server: TTFT of a new image = its vision pass + prefill + the first token.
  const idleReply = await streamOnce(args, idleBody);
  if (!Number.isFinite(idleReply.ttft)) throw new Error('no content in the reply');
  const idle = idleReply.ttft;

  // (b) start the background streams, each with its own new image and a long reply, and wait until
  // every one is decoding (has sent content) or has ended, so the measured request meets decoders,
  // not prefills.
  const controller = new AbortController();
  let decoding = 0;
  const background = backgroundBodies.map((body) => {
    let markStarted;
    let isDecoding = false;
    const started = new Promise((resolve) => { markStarted = resolve; });
    const onFirst = () => { isDecoding = true; ++decoding; markStarted(); };
    const done = streamOnce(args, body, { signal: controller.signal, onFirst })
      .then(
        (r) => ({ ended: 'finished', tokens: r.tokens }),
        (error) => (controller.signal.aborted ? { ended: 'aborted' } : { ended: 'failed', error: describe(error) }))
      .finally(() => { if (isDecoding) --decoding; markStarted(); });
    return { started, done };
  });
  await Promise.all(background.map((b) => b.started));
  // How many background streams were decoding when the measured request was sent and when its first
  // token came: below --busy-streams means a background stream ended early (too few max tokens, the
  // server's cap, a failure) and the round was less busy than asked.
  const decodingAtSend = decoding;
  let busy = NaN;
  let decodingAtFirst = NaN;
  let probeError = null;
  try {
    const r = await streamOnce(args, probeBody, { onFirst: () => { decodingAtFirst = decoding; } });
    busy = r.ttft;
  } catch (error) {
    probeError = error;
  }
  controller.abort();
  const ends = await Promise.all(background.map((b) => b.done));
  // A round whose background failed did not measure a busy server: it counts as failed, not in the medians.
  const backgroundFailures = ends.filter((e) => e.ended === 'failed');
  for (const e of backgroundFailures) console.error(`busy: background stream failed: ${e.error}`);
  if (probeError) throw probeError;
  if (backgroundFailures.length) throw new Error(`${backgroundFailures.length} background stream(s) failed`);
  if (!Number.isFinite(busy)) throw new Error('no content in the reply');
  if (decodingAtFirst < args.busyStreams) {
    console.error(`busy: only ${decodingAtFirst} of ${args.busyStreams} background streams were still decoding at the measured ` +
                  `request's first token (raise --busy-max-tokens, or the server caps max_tokens)`);
  }
  return { idle_ttft_ms: idle, busy_ttft_ms: busy, decoding_at_send: decodingAtSend, decoding_at_first_token: decodingAtFirst };
}

async function runBusy(args, label) {
  const rounds = [];
  let failures = 0;
  for (let i = 0; i < args.requests; ++i) {
    try {
      rounds.push(await busyRound(args));
    } catch (error) {
      ++failures;
      console.error(`busy: round failed: ${describe(error)}`);
    }
    // The server sees the aborted streams' disconnects at its next write: give it time to free their
    // slots before the next idle measurement.
    await sleep(args.settleMs);
  }
  const idle = median(rounds.map((r) => r.idle_ttft_ms));
  const busy = median(rounds.map((r) => r.busy_ttft_ms));
  const minDecoding = rounds.length ? Math.min(...rounds.map((r) => r.decoding_at_first_token)) : NaN;
  console.log(`| server | rounds | TTFT new image, idle, median ms | TTFT new image, ${args.busyStreams} streams decoding, median ms | ` +
              `busy / idle | fewest streams decoding at its first token | failed |`);
  console.log(`|---|---|---|---|---|---|---|`);
  console.log(`| ${label} | ${rounds.length} | ${fmt(idle)} | ${fmt(busy)} | ${fmt(busy / idle, 2)} | ${fmt(minDecoding)} | ${failures} |`);
  return { busy_streams: args.busyStreams, busy_max_tokens: args.busyMaxTokens, rounds,
           idle_ttft_median_ms: idle, busy_ttft_median_ms: busy, busy_over_idle: busy / idle, failures };
}

// ---- scenario: turns ----

async function turnsRound(args) {
  const image = bmpDataUrl(args.bmpSize);
  const turn1 = [userMessage(image, args.prompt)];
  const first = await streamOnce(args, requestBody(args, turn1, args.maxTokens));
  // Turn 2 resends the whole history, the same image bytes included, as chat clients do.
  const turn2 = [...turn1, { role: 'assistant', content: first.text }, userMessage('', FOLLOW_UP)];
  const second = await streamOnce(args, requestBody(args, turn2, args.maxTokens));
  if (!Number.isFinite(first.ttft) || !Number.isFinite(second.ttft)) throw new Error('no content in a reply');
  return { turn1_ttft_ms: first.ttft, turn2_ttft_ms: second.ttft, turn1_tokens: first.tokens, turn1_chars: first.text.length };
}

async function runTurns(args, label) {
  const rounds = [];
  let failures = 0;
  for (let i = 0; i < args.requests; ++i) {
    try {
      rounds.push(await turnsRound(args));
    } catch (error) {
      ++failures;
      console.error(`turns: round failed: ${describe(error)}`);
    }
  }
  const t1 = median(rounds.map((r) => r.turn1_ttft_ms));
  const t2 = median(rounds.map((r) => r.turn2_ttft_ms));
  console.log(`| server | rounds | turn 1 TTFT (new image), median ms | turn 2 TTFT (history resent), median ms | ` +
              `turn 2 / turn 1 (target <= 0.15) | failed |`);
  console.log(`|---|---|---|---|---|---|`);
  console.log(`| ${label} | ${rounds.length} | ${fmt(t1)} | ${fmt(t2)} | ${fmt(t2 / t1, 3)} | ${failures} |`);
  return { rounds, turn1_ttft_median_ms: t1, turn2_ttft_median_ms: t2, turn2_over_turn1: t2 / t1, failures };
}

// ---- main ----

const args = parseArgs(process.argv);
const label = args.label || args.url;
if (args.warmup) {
  await streamOnce(args, JSON.stringify({ model: args.model, messages: messages(args), max_tokens: 4, temperature: 0, stream: true }));
  // busy/turns time vision passes: warm that path too (with its own new image) when --image did not.
  if (!args.image && args.scenarios.some((s) => s !== 'streams')) {
    await streamOnce(args, JSON.stringify({ model: args.model, messages: [userMessage(bmpDataUrl(args.bmpSize), args.prompt)],
                                            max_tokens: 4, temperature: 0, stream: true }));
  }
}
const runners = { streams: runStreams, busy: runBusy, turns: runTurns };
const results = {};
for (const scenario of args.scenarios) {
  if (Object.keys(results).length) console.log('');
  results[scenario] = await runners[scenario](args, label);
}
if (args.json) {
  // Keyed by scenario; `rows` repeats the streams table where it was before, for existing readers.
  const out = { label, ...results };
  if (results.streams) out.rows = results.streams.rows;
  writeFileSync(args.json, JSON.stringify(out, null, 2));
}
if (Object.values(results).some((r) => r.failures > 0)) process.exit(1);

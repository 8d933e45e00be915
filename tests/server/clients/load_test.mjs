// A bounded load test of `q3vl serve`: 8 client loops (the openai npm SDK) against 2 slots and a
// queue of 16, mixing text, image (data URL) and streamed greedy requests for Q3VL_LOAD_SECONDS
// (default 60). Every answer must be 200 and its text must equal what the same request gave alone
// at the start; a 429 is counted and retried; the server's RSS at the end may exceed its RSS after
// the warm-up by at most 20% + 50 MB. Prints requests done, 429s, p50/p95 latency and RSS, exits 1
// on any failure.
//
//   Q3VL=build/q3vl Q3VL_LOAD_SECONDS=60 node tests/server/clients/load_test.mjs
import {
  startServer, buildGoldenPackage, fullCases, chatTurn, fetchMetrics, waitForGauge, rssBytes, requireDep, schemaValidators,
} from './serve.mjs';

const { OpenAI, RateLimitError } = requireDep('openai');
const validate = schemaValidators();

const seconds = Number(process.env.Q3VL_LOAD_SECONDS || 60);
if (!(seconds > 0)) throw new Error(`Q3VL_LOAD_SECONDS=${process.env.Q3VL_LOAD_SECONDS}: not a positive number`);
const CLIENTS = 8;
const MAX_TOKENS = 16;
const warmupSeconds = Math.max(2, seconds * 0.2);
const MB = 1024 * 1024;

const failures = [];
const fail = (message) => {
  failures.push(message);
  console.error(`FAIL: ${message}`);
};

// A hard bound whatever happens (a hung request, a server that does not stop).
const watchdog = setTimeout(() => {
  console.error(`FAIL: load test still running ${seconds + 180} s on; giving up`);
  process.exit(1);
}, (seconds + 180) * 1000);
watchdog.unref();

const pkg = buildGoldenPackage();
let server;
try {
  server = await startServer({ model: pkg.pkg, args: ['--parallel', '2', '--max-queue', '16'] });
  const api = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });

  // The mix: each golden conversation (text only, image + system, two turns with an image, the
  // three-turn chat with two images), greedy, 16 tokens, streamed and not.
  const conversations = [
    ...fullCases().map((c) => ({ name: c.name, messages: c.messages, images: c.imageCount })),
    { name: 'full_chat turn 2', messages: chatTurn(2).messages, images: 2 },
  ];
  const templates = conversations.flatMap((c) => [false, true].map((streamed) => ({
    name: `${c.name}${streamed ? ' (stream)' : ''}`,
    streamed,
    images: c.images,
    params: { model: server.model, messages: c.messages, max_tokens: MAX_TOKENS, temperature: 0 },
  })));

  async function send(template) {
    if (!template.streamed) {
      const completion = validate.completion(await api.chat.completions.create(template.params));
      const [choice] = completion.choices;
      if (choice.finish_reason !== 'length' || completion.usage.completion_tokens !== MAX_TOKENS) {
        throw new Error(`${template.name}: finish_reason ${choice.finish_reason}, ${completion.usage.completion_tokens} tokens`);
      }
      return choice.message.content;
    }
    const stream = await api.chat.completions.create({ ...template.params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      validate.chunk(chunk);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    if (finish !== 'length' || usage?.completion_tokens !== MAX_TOKENS) {
      throw new Error(`${template.name} (stream): finish_reason ${finish}, usage ${JSON.stringify(usage)}`);
    }
    return text;
  }

  // Reference answers: each request once, alone.
  const reference = new Map();
  for (const template of templates) reference.set(template.name, await send(template));
  for (const c of conversations) {
    if (reference.get(c.name) !== reference.get(`${c.name} (stream)`)) {
      fail(`${c.name}: streamed text ${JSON.stringify(reference.get(`${c.name} (stream)`))} != non-streamed ${JSON.stringify(reference.get(c.name))}`);
    }
  }
  console.log(`reference answers: ${templates.length} requests (${conversations.length} conversations x streamed/not, ${MAX_TOKENS} tokens)`);

  const latencies = [];
  const perTemplate = new Map(templates.map((t) => [t.name, 0]));
  let rateLimited = 0;
  let warmRss = null;
  let peakRss = rssBytes(server.pid);
  const start = Date.now();
  const deadline = start + seconds * 1000;

  async function clientLoop(index) {
    for (let i = 0; Date.now() < deadline; i++) {
      const template = templates[(index + i * 3) % templates.length];
      const begun = Date.now();
      for (;;) {
        try {
          const text = await send(template);
          latencies.push(Date.now() - begun);
          perTemplate.set(template.name, perTemplate.get(template.name) + 1);
          if (text !== reference.get(template.name)) {
            fail(`client ${index}: ${template.name}: ${JSON.stringify(text)} != alone ${JSON.stringify(reference.get(template.name))}`);
          }
          break;
        } catch (error) {
          if (error instanceof RateLimitError) {
            rateLimited++;
            await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
            if (Date.now() < deadline + 30_000) continue;
          }
          fail(`client ${index}: ${template.name}: ${error.status ?? ''} ${error.message}`);
          return;
        }
      }
    }
  }

  const sampler = setInterval(() => {
    try { peakRss = Math.max(peakRss, rssBytes(server.pid)); } catch { /* exited: reported below */ }
  }, 250);
  const warmup = new Promise((resolve) => setTimeout(() => {
    warmRss = rssBytes(server.pid);
    console.log(`warm-up done after ${warmupSeconds.toFixed(1)} s: ${latencies.length} requests, RSS ${(warmRss / MB).toFixed(1)} MB`);
    resolve();
  }, warmupSeconds * 1000));
  await Promise.all([warmup, ...Array.from({ length: CLIENTS }, (_, index) => clientLoop(index))]);
  const elapsed = (Date.now() - start) / 1000;
  clearInterval(sampler);

  await waitForGauge(server, 'q3vl_active_sequences', 0, { timeoutMs: 10_000 }).catch((error) => fail(error.message));
  await waitForGauge(server, 'q3vl_queue_depth', 0, { timeoutMs: 10_000 }).catch((error) => fail(error.message));
  const endRss = rssBytes(server.pid);
  const metrics = await fetchMetrics(server);
  const answered = metrics.get('q3vl_requests_total{status="200"}') ?? 0;
  const expectedAnswered = latencies.length + templates.length;
  if (answered < expectedAnswered) fail(`q3vl_requests_total{status="200"} is ${answered}, fewer than the ${expectedAnswered} answers received`);

  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);
  console.log(`requests done: ${latencies.length} in ${elapsed.toFixed(1)} s (${(latencies.length / elapsed).toFixed(1)}/s) by ${CLIENTS} clients on ${server.slots} slots`);
  console.log(`per request: ${[...perTemplate].map(([name, n]) => `${name} ${n}`).join(', ')}`);
  console.log(`429s: ${rateLimited} (each retried)`);
  console.log(`latency: p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${sorted.at(-1)} ms`);
  const limit = warmRss * 1.2 + 50 * MB;
  console.log(`RSS: warm ${(warmRss / MB).toFixed(1)} MB, end ${(endRss / MB).toFixed(1)} MB, peak ${(peakRss / MB).toFixed(1)} MB ` +
              `(limit ${(limit / MB).toFixed(1)} MB = warm x 1.2 + 50 MB)`);
  if (latencies.length === 0) fail('no request completed');
  // Under a sanitizer (Q3VL_LOAD_NO_RSS_CHECK=1) the allocator keeps freed memory in quarantine.
  if (process.env.Q3VL_LOAD_NO_RSS_CHECK === '1') console.log('RSS bound not checked (sanitizer build)');
  else if (endRss > limit) fail(`end RSS ${(endRss / MB).toFixed(1)} MB > warm RSS x 1.2 + 50 MB = ${(limit / MB).toFixed(1)} MB`);
  for (const [name, n] of perTemplate) if (n === 0) fail(`${name}: never sent under load`);

  await server.stop().catch((error) => fail(error.message));
} catch (error) {
  fail(error.stack || String(error));
} finally {
  server?.kill();
  pkg.cleanup();
}

console.log(failures.length ? `load test FAILED (${failures.length} failures)` : 'load test passed');
process.exit(failures.length ? 1 : 0);

// `q3vl serve` driven by the official `openai` npm SDK: greedy replies equal Hugging Face's text
// (tests/fixtures/golden), streamed and not, multi-turn with the KV cache reused, an aborted stream
// frees its slot, parallel slots answer as a lone request does, errors come back as the SDK's error
// classes, and every object matches OpenAI's schema (schemas/).
//
//   Q3VL=build/q3vl node --test tests/server/clients/openai_sdk.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, buildGoldenPackage, fullCases, chatTurn, loadManifest, fetchMetrics, waitForGauge, requireDep, schemaValidators, repoRoot,
} from './serve.mjs';

const openai = requireDep('openai');
const { OpenAI } = openai;
const validate = schemaValidators();

let pkg;  // the built golden package
let main;  // one slot; context and max tokens large enough for the aborted long stream

before(async () => {
  pkg = buildGoldenPackage();
  main = await startServer({ model: pkg.pkg, args: ['--context', '8192', '--max-tokens', '4000'] });
});

after(() => {
  main?.kill();  // a no-op when the last test stopped it
  pkg?.cleanup();
});

function client(server, apiKey = 'unused') {
  return new OpenAI({ baseURL: server.baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
}

const greedy = (messages, max_tokens, extra = {}) => ({ messages, max_tokens, temperature: 0, ...extra });

async function complete(api, server, params, options) {
  const completion = await api.chat.completions.create({ model: server.model, ...params }, options);
  validate.completion(completion);
  assert.equal(completion.model, server.model);
  return completion;
}

// Streams `params` and checks every chunk's schema and the stream's shape; returns the text, the
// final usage (include_usage) and the chunks.
async function stream(api, server, params) {
  const chunks = [];
  const response = await api.chat.completions.create(
    { model: server.model, ...params, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of response) {
    validate.chunk(chunk, `chunk ${chunks.length}`);
    chunks.push(chunk);
  }
  assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
  const usageChunk = chunks.at(-1);
  assert.deepEqual(usageChunk.choices, [], 'the include_usage chunk comes last and has no choices');
  assert.ok(usageChunk.usage, 'the last chunk carries usage');
  const body = chunks.slice(0, -1);
  for (const chunk of body) {
    assert.equal(chunk.usage ?? null, null, 'only the last chunk carries usage');
    assert.equal(chunk.choices.length, 1);
    assert.equal(chunk.id, usageChunk.id, 'one id for the whole stream');
    assert.equal(chunk.created, usageChunk.created);
    assert.equal(chunk.model, server.model);
  }
  assert.equal(body[0].choices[0].delta.role, 'assistant', 'the first delta names the role');
  const finishes = body.map((chunk) => chunk.choices[0].finish_reason);
  assert.ok(finishes.slice(0, -1).every((reason) => reason === null), `finish_reason only on the last choice chunk: ${finishes}`);
  const text = body.map((chunk) => chunk.choices[0].delta.content ?? '').join('');
  return { text, finishReason: finishes.at(-1), usage: usageChunk.usage, chunks };
}

test('health and model listing', async () => {
  const health = await fetch(`${main.origin}/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, 'ok');

  const ids = [];
  for await (const model of client(main).models.list()) {
    assert.equal(model.object, 'model');
    assert.equal(typeof model.id, 'string');
    assert.ok(Number.isInteger(model.created), `created ${model.created}`);
    assert.equal(typeof model.owned_by, 'string');
    ids.push(model.id);
  }
  assert.deepEqual(ids, [pkg.name]);
  assert.equal(main.model, pkg.name, 'the ready line names the package folder');
});

test('non-streamed greedy replies equal Hugging Face', async () => {
  const api = client(main);
  let checked = 0;
  for (const golden of fullCases()) {
    const completion = await complete(api, main, greedy(golden.messages, golden.maxTokens));
    const [choice] = completion.choices;
    assert.equal(choice.message.content, golden.expected, `${golden.name}: text`);
    assert.equal(choice.finish_reason, 'length', golden.name);
    assert.equal(choice.logprobs, null, `${golden.name}: no logprobs unless asked`);
    assert.equal(completion.usage.completion_tokens, golden.maxTokens, golden.name);
    assert.equal(completion.usage.prompt_tokens, golden.promptTokens, `${golden.name}: HF's prompt length`);
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
    checked++;
  }
  assert.equal(checked, 3, 'full_image_system, full_text_only, full_two_turn');
  assert.ok(fullCases().some((c) => c.imageCount > 0), 'images were sent as data URLs');
});

test('streamed greedy replies equal Hugging Face, with a final usage chunk', async () => {
  const api = client(main);
  let checked = 0;
  for (const golden of fullCases()) {
    const { text, finishReason, usage } = await stream(api, main, greedy(golden.messages, golden.maxTokens));
    assert.equal(text, golden.expected, `${golden.name}: concatenated deltas`);
    assert.equal(finishReason, 'length', golden.name);
    assert.equal(usage.completion_tokens, golden.maxTokens, golden.name);
    assert.equal(usage.prompt_tokens, golden.promptTokens, `${golden.name}: HF's prompt length`);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    checked++;
  }
  assert.equal(checked, 3);
});

test('multi-turn: the whole chat resent each turn gives HF\'s replies and reuses the cache', async () => {
  const api = client(main);
  const turns = chatTurn(0).turns;
  assert.equal(turns, 3);
  const goldenTurns = loadManifest().chats.full_chat.turns;
  for (let turn = 0; turn < turns; turn++) {
    const { messages, expected, maxTokens } = chatTurn(turn);
    const completion = await complete(api, main, greedy(messages, maxTokens));
    assert.equal(completion.choices[0].message.content, expected, `turn ${turn}: text`);
    assert.equal(completion.usage.prompt_tokens, goldenTurns[turn].prompt_tokens, `turn ${turn}: HF's prompt length`);
    const cached = completion.usage.prompt_tokens_details?.cached_tokens;
    assert.ok(Number.isInteger(cached), `turn ${turn}: usage.prompt_tokens_details.cached_tokens is ${cached}`);
    if (turn >= 1) assert.ok(cached > 0, `turn ${turn}: cached_tokens ${cached}, expected > 0`);
    assert.ok(cached < completion.usage.prompt_tokens, `turn ${turn}: cached ${cached} of ${completion.usage.prompt_tokens}`);
  }
});

test('logprobs: 32 entries, 3 alternatives each, sorted, the greedy choice first', async () => {
  const golden = fullCases().find((c) => c.name === 'full_text_only');
  const completion = await complete(client(main), main,
                                    greedy(golden.messages, golden.maxTokens, { logprobs: true, top_logprobs: 3 }));
  const [choice] = completion.choices;
  assert.equal(choice.message.content, golden.expected);
  const entries = choice.logprobs.content;
  assert.equal(entries.length, golden.maxTokens);
  for (const [i, entry] of entries.entries()) {
    assert.ok(entry.logprob <= 0, `entry ${i}: logprob ${entry.logprob}`);
    assert.equal(entry.top_logprobs.length, 3, `entry ${i}`);
    for (let k = 0; k < 3; k++) {
      assert.ok(entry.top_logprobs[k].logprob <= 0, `entry ${i} top ${k}`);
      if (k > 0) assert.ok(entry.top_logprobs[k - 1].logprob >= entry.top_logprobs[k].logprob, `entry ${i}: top_logprobs not descending`);
    }
    assert.equal(entry.top_logprobs[0].token, entry.token, `entry ${i}: greedy picks the most likely token`);
    assert.equal(entry.top_logprobs[0].logprob, entry.logprob, `entry ${i}`);
  }
  const bytes = Buffer.from(entries.flatMap((entry) => entry.bytes));
  assert.equal(bytes.toString('utf8'), golden.expected, 'the chosen tokens\' bytes spell the reply');

  // Streamed, the same entries arrive spread over the chunks.
  const { text, chunks } = await stream(client(main), main,
                                        greedy(golden.messages, golden.maxTokens, { logprobs: true, top_logprobs: 3 }));
  assert.equal(text, golden.expected);
  const streamed = chunks.flatMap((chunk) => chunk.choices[0]?.logprobs?.content ?? []);
  assert.deepEqual(streamed.map((entry) => [entry.token, entry.bytes, entry.top_logprobs.length]),
                   entries.map((entry) => [entry.token, entry.bytes, 3]), 'streamed logprobs entries');
});

test('an aborted stream frees its slot, and the next request succeeds', async (t) => {
  const api = client(main);
  const golden = fullCases().find((c) => c.name === 'full_text_only');
  const controller = new AbortController();
  const response = await api.chat.completions.create(
    { model: main.model, ...greedy(golden.messages, 3000), stream: true }, { signal: controller.signal });
  let received = 0;
  let activeWhileStreaming;
  // The SDK ends the iteration quietly when its own signal aborts it (or throws APIUserAbortError).
  try {
    for await (const chunk of response) {
      validate.chunk(chunk);
      assert.equal(chunk.choices[0].finish_reason, null, 'the long stream ended before the abort');
      if (++received === 3) activeWhileStreaming = (await fetchMetrics(main)).get('q3vl_active_sequences');
      if (received === 5) controller.abort();
    }
  } catch (error) {
    if (!(error instanceof openai.APIUserAbortError || error.name === 'AbortError')) throw error;
  }
  assert.ok(controller.signal.aborted);
  assert.equal(received, 5);
  assert.equal(activeWhileStreaming, 1, 'q3vl_active_sequences while the stream runs');
  const t0 = Date.now();
  await waitForGauge(main, 'q3vl_active_sequences', 0, { timeoutMs: 5000 });
  t.diagnostic(`slot freed ${Date.now() - t0} ms after the abort`);

  const completion = await complete(api, main, greedy(golden.messages, golden.maxTokens));
  assert.equal(completion.choices[0].message.content, golden.expected);
});

test('errors come back as the SDK\'s error classes', async () => {
  const api = client(main);
  const golden = fullCases()[0];
  await assert.rejects(complete(api, main, greedy(golden.messages, 4, { n: 2 })), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.status, 400);
    validate.error({ error: error.error }, 'n: 2 error');
    return true;
  });
  // The same on the wire, for the envelope the SDK unwraps.
  const raw = await fetch(`${main.baseURL}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: main.model, ...greedy(golden.messages, 4, { n: 2 }) }),
  });
  assert.equal(raw.status, 400);
  assert.match(raw.headers.get('content-type'), /^application\/json/);
  const body = validate.error(await raw.json(), 'n: 2 error body');
  assert.equal(body.error.type, 'invalid_request_error');
});

// Structured output through the SDK (issue 15): json_schema (plain and streamed) and json_object
// replies of the random-weight model parse and validate with ajv; what cannot be enforced is a 400
// naming it.
test('structured output: response_format json_schema and json_object give valid JSON', async () => {
  const api = client(main);
  const Ajv = requireDep('ajv').default;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 20 }, age: { type: 'integer' },
      colour: { enum: ['red', 'green', 'blue'] }, tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    },
    required: ['name', 'age', 'colour', 'tags'], additionalProperties: false,
  };
  const check = ajv.compile(schema);
  const messages = [{ role: 'user', content: 'Describe a person as JSON.' }];
  const response_format = { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } };
  let checked = 0;
  for (const [temperature, seed, max_tokens] of [[0, undefined, 64], [1.0, 11, 40], [1.3, 12, 200]]) {
    const completion = await api.chat.completions.create({ model: main.model, messages, response_format, temperature, seed, max_tokens });
    const value = JSON.parse(completion.choices[0].message.content);
    assert.ok(check(value), `${ajv.errorsText(check.errors)}: ${completion.choices[0].message.content}`);
    assert.deepEqual(Object.keys(value), ['name', 'age', 'colour', 'tags']);  // the order of `required`
    ++checked;
  }
  const stream = await api.chat.completions.create({ model: main.model, messages, response_format, temperature: 0, max_tokens: 64, stream: true });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
  assert.ok(check(JSON.parse(streamed)), streamed);
  ++checked;
  const object = await api.chat.completions.create({ model: main.model, messages, response_format: { type: 'json_object' }, temperature: 1.2, seed: 3, max_tokens: 48 });
  const parsed = JSON.parse(object.choices[0].message.content);
  assert.equal(typeof parsed, 'object');
  assert.ok(parsed !== null && !Array.isArray(parsed));
  ++checked;
  assert.equal(checked, 5);

  await assert.rejects(api.chat.completions.create({
    model: main.model, messages, max_tokens: 8,
    response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'string', pattern: '^a$' } } },
  }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
    assert.match(error.message, /'pattern' is not supported/);
    assert.equal(error.param, 'response_format.json_schema.schema');
    return true;
  });
});

// Qwen3-VL Thinking's published template (assets/qwen3-vl-thinking) on the golden model: the
// reasoning comes back as reasoning_content (streamed too); a tool call round trip (tool_choice
// required, then the call and its result sent back); structured output after the reasoning.
test('Thinking template: reasoning_content, a tool-call round trip, json_schema after reasoning', async (t) => {
  const thinkingPkg = buildGoldenPackage({
    name: 'golden-thinking', extraArgs: ['--chat-template', `${repoRoot}/assets/qwen3-vl-thinking/chat_template.json`],
  });
  t.after(() => thinkingPkg.cleanup());
  const server = await startServer({ model: thinkingPkg.pkg, args: ['--context', '4096'], t });
  const api = client(server);
  const Ajv = requireDep('ajv').default;
  const ajv = new Ajv({ allErrors: true, strict: false });

  // An untrained model never closes <think>: everything it writes is reasoning.
  const ask = [{ role: 'user', content: 'Why is the sky blue?' }];
  const plain = await complete(api, server, greedy(ask, 24));
  const message = plain.choices[0].message;
  assert.equal(typeof message.reasoning_content, 'string');
  assert.ok(message.reasoning_content.length > 0);
  assert.equal(message.content, '');
  assert.equal(plain.choices[0].finish_reason, 'length');
  const streamed = await stream(api, server, greedy(ask, 24));
  const streamedReasoning = streamed.chunks.map((chunk) => chunk.choices[0]?.delta?.reasoning_content ?? '').join('');
  assert.equal(streamedReasoning, message.reasoning_content);
  assert.equal(streamed.text, '');

  // The tool call round trip.
  const parameters = {
    type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['celsius', 'fahrenheit'] } },
    required: ['city', 'unit'], additionalProperties: false,
  };
  const checkArguments = ajv.compile(parameters);
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters } },
                 { type: 'function', function: { name: 'clock', parameters: { type: 'object', properties: {} } } }];
  const question = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const first = await complete(api, server, greedy(question, 96, { tools, tool_choice: 'required', temperature: 1.0, seed: 5 }));
  const callMessage = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.equal(callMessage.tool_calls.length, 1);
  const call = callMessage.tool_calls[0];
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.ok(['get_weather', 'clock'].includes(call.function.name), call.function.name);
  if (call.function.name === 'get_weather') {
    assert.ok(checkArguments(JSON.parse(call.function.arguments)), `${ajv.errorsText(checkArguments.errors)}: ${call.function.arguments}`);
  }
  const followUp = [...question, callMessage, { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' }];
  const second = await complete(api, server, greedy(followUp, 16, { tools }));
  assert.ok(['stop', 'length', 'tool_calls'].includes(second.choices[0].finish_reason));
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens - 8, 'the call and its result are in the prompt');
  assert.ok(second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens, 'the first turn comes from the cache');

  // A named function, streamed: the call arrives as a tool_calls delta.
  const named = await stream(api, server, greedy(question, 96, { tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }));
  assert.equal(named.finishReason, 'tool_calls');
  const deltas = named.chunks.flatMap((chunk) => chunk.choices[0]?.delta?.tool_calls ?? []);
  assert.equal(deltas.length, 1);
  assert.equal(deltas[0].index, 0);
  assert.equal(deltas[0].function.name, 'get_weather');
  assert.ok(checkArguments(JSON.parse(deltas[0].function.arguments)), deltas[0].function.arguments);
  assert.equal(named.text, '');

  // Structured output: the reasoning first, then the document.
  const schema = { type: 'object', properties: { answer: { type: 'string', maxLength: 24 }, sure: { type: 'boolean' } },
                   required: ['answer', 'sure'], additionalProperties: false };
  const checkAnswer = ajv.compile(schema);
  const structured = await complete(api, server, greedy(ask, 80, {
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } },
  }));
  const value = JSON.parse(structured.choices[0].message.content);
  assert.ok(checkAnswer(value), structured.choices[0].message.content);
  assert.equal(typeof structured.choices[0].message.reasoning_content, 'string');
  await server.stop();
});

test('tools on the Instruct template: tool_choice none answers in text; malformed tool requests are 400s', async () => {
  const api = client(main);
  const tools = [{ type: 'function', function: { name: 'clock', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } }, required: ['zone'] } } }];
  const messages = [{ role: 'user', content: 'Time?' }];
  const none = await complete(api, main, greedy(messages, 8, { tools, tool_choice: 'none' }));
  assert.equal(none.choices[0].message.tool_calls, undefined);
  assert.equal(typeof none.choices[0].message.content, 'string');
  const required = await complete(api, main, greedy(messages, 48, { tools, tool_choice: 'required' }));
  assert.equal(required.choices[0].message.tool_calls[0].function.name, 'clock');
  assert.equal(required.choices[0].message.content, null);
  for (const [params, param] of [
    [{ tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] }, 'tools[0].function.parameters'],
  ]) {
    await assert.rejects(api.chat.completions.create({ model: main.model, messages, max_tokens: 4, ...params }), (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.param, param);
      return true;
    });
  }
});

test('api key: a wrong key is an AuthenticationError, the right one works', async (t) => {
  const key = 'sk-q3vl-test-0123456789';
  const server = await startServer({ model: pkg.pkg, args: ['--api-key', key], t });
  const golden0 = fullCases().find((c) => c.name === 'full_text_only');
  await assert.rejects(complete(client(server, 'sk-wrong'), server, greedy(golden0.messages, 4)), (error) => {
    assert.ok(error instanceof OpenAI.AuthenticationError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.status, 401);
    validate.error({ error: error.error }, '401 error');
    return true;
  });
  await assert.rejects(client(server, 'sk-wrong').models.list(), (error) => error instanceof OpenAI.AuthenticationError);
  const bare = await fetch(`${server.baseURL}/models`);
  assert.equal(bare.status, 401, 'no Authorization header');
  validate.error(await bare.json());

  const completion = await complete(client(server, key), server, greedy(golden0.messages, golden0.maxTokens));
  assert.equal(completion.choices[0].message.content, golden0.expected);
  await server.stop();
});

test('parallel: 4 concurrent requests on 2 slots answer as each alone does', async (t) => {
  const server = await startServer({ model: pkg.pkg, args: ['--parallel', '2'], t });
  assert.equal(server.slots, 2);
  const api = client(server);
  const requests = [
    ...fullCases().map((c) => ({ name: c.name, params: greedy(c.messages, c.maxTokens), expected: c.expected })),
    (() => { const c = chatTurn(2); return { name: 'full_chat turn 2', params: greedy(c.messages, c.maxTokens), expected: c.expected }; })(),
  ];
  assert.equal(new Set(requests.map((r) => JSON.stringify(r.params))).size, 4, 'four different requests');

  const alone = [];
  for (const request of requests) {
    const completion = await complete(api, server, request.params);
    assert.equal(completion.choices[0].message.content, request.expected, `${request.name} alone`);
    alone.push(completion.choices[0].message.content);
  }

  let peak = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      peak = Math.max(peak, (await fetchMetrics(server)).get('q3vl_active_sequences') ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  // Two streamed and two not, all at once.
  const together = await Promise.all(requests.map(async (request, i) => (i % 2
    ? (await stream(api, server, request.params)).text
    : (await complete(api, server, request.params)).choices[0].message.content)));
  polling = false;
  await poller;
  t.diagnostic(`peak q3vl_active_sequences during the burst: ${peak}`);
  assert.ok(peak <= 2, `${peak} sequences active on 2 slots`);
  for (const [i, request] of requests.entries()) assert.equal(together[i], alone[i], `${request.name} concurrent vs alone`);
  await waitForGauge(server, 'q3vl_active_sequences', 0);
  await server.stop();
});

test('SIGTERM stops the server with exit code 0', async () => {
  const metrics = await fetchMetrics(main);
  assert.ok((metrics.get('q3vl_requests_total{status="200"}') ?? 0) > 0, 'q3vl_requests_total{status="200"} counts answers');
  assert.equal(metrics.get('q3vl_queue_depth'), 0);
  await main.stop();
});

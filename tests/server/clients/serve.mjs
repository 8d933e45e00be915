// Helpers shared by the real-client tests of `q3vl serve`: start and stop a server, build the
// golden test package, turn the golden manifest's cases into OpenAI chat messages, read /metrics,
// and validate OpenAI objects against tests/server/clients/schemas/.
//
// Environment:
//   Q3VL             the q3vl binary (default: <repo>/build/q3vl)
//   Q3VL_SOURCE_DIR  the repository root (default: three folders above this file)
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(process.env.Q3VL_SOURCE_DIR || path.join(here, '..', '..', '..'));
export const q3vlBinary = path.resolve(process.env.Q3VL || path.join(repoRoot, 'build', 'q3vl'));
if (!existsSync(q3vlBinary)) throw new Error(`no q3vl binary at ${q3vlBinary}: set Q3VL to the built q3vl`);

// Node packages come from <repo>/.deps/node (scripts/setup.sh), never from the network.
const depsRequire = createRequire(path.join(repoRoot, '.deps', 'node') + path.sep);
export function requireDep(name) {
  try {
    return depsRequire(name);
  } catch (error) {
    throw new Error(`${name} is not installed under ${repoRoot}/.deps/node (run scripts/setup.sh): ${error.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

const READY_LINE = /^q3vl serve: model "([^"]+)" ready on (http:\/\/127\.0\.0\.1:(\d+)\/v1) \((\d+) slots? of (\d+) tokens\)$/;
const live = new Set();  // servers not yet seen to exit: killed when this process exits, whatever happened

process.on('exit', () => {
  for (const server of live) {
    try { server.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function waitForExit(proc, timeoutMs) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode, timedOut: false });
      return;
    }
    const timer = setTimeout(() => resolve({ code: null, signal: null, timedOut: true }), timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    });
  });
}

// Spawns `q3vl serve --model PKG --port 0 --threads 1 ARGS...` and waits (at most readyTimeoutMs)
// for its one ready line on stdout. Returns {baseURL, origin, port, model, slots, proc, pid,
// stderr(), stop(), kill()}. stop() sends SIGTERM and throws unless the server exits with 0.
// Pass `t` (a node:test context) to have the server killed when that test ends, passed or not.
export async function startServer({ model, args = [], env = {}, readyTimeoutMs = 60_000, threads = 1, t } = {}) {
  if (!model) throw new Error('startServer: model (a package folder) is required');
  const argv = ['serve', '--model', model, '--port', '0', ...(threads ? ['--threads', String(threads)] : []), ...args];
  const proc = spawn(q3vlBinary, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderrText = '';
  let stdoutText = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (data) => {
    stderrText += data;
    if (stderrText.length > 256 * 1024) stderrText = stderrText.slice(-128 * 1024);
  });
  const server = {
    proc,
    pid: proc.pid,
    argv,
    stderr: () => stderrText,
    stdout: () => stdoutText,
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      live.delete(server);
    },
    async stop({ timeoutMs = 30_000 } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const result = await waitForExit(proc, timeoutMs);
      live.delete(server);
      if (result.timedOut) {
        proc.kill('SIGKILL');
        throw new Error(`q3vl serve did not exit within ${timeoutMs} ms of SIGTERM\n--- stderr ---\n${stderrText.slice(-4000)}`);
      }
      if (result.code !== 0) {
        throw new Error(`q3vl serve exited with code ${result.code} signal ${result.signal} after SIGTERM (expected 0)\n` +
                        `--- stderr ---\n${stderrText.slice(-4000)}`);
      }
      return result;
    },
  };
  live.add(server);
  if (t) t.after(() => server.kill());

  const ready = await new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      server.kill();
      finish(reject, new Error(`q3vl serve printed no ready line within ${readyTimeoutMs} ms\n` +
                               `--- stdout ---\n${stdoutText}\n--- stderr ---\n${stderrText.slice(-4000)}`));
    }, readyTimeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (data) => {
      stdoutText += data;
      buffered += data;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).replace(/\r$/, '');
        buffered = buffered.slice(newline + 1);
        const match = READY_LINE.exec(line);
        if (match) finish(resolve, { model: match[1], baseURL: match[2], port: Number(match[3]), slots: Number(match[4]) });
        else if (!settled) finish(reject, new Error(`unexpected stdout line before the ready line: ${JSON.stringify(line)}`));
      }
    });
    proc.once('error', (error) => finish(reject, new Error(`cannot start ${q3vlBinary}: ${error.message}`)));
    proc.once('exit', (code, signal) => {
      live.delete(server);
      finish(reject, new Error(`q3vl serve exited (code ${code}, signal ${signal}) before it was ready\n` +
                               `--- stdout ---\n${stdoutText}\n--- stderr ---\n${stderrText.slice(-4000)}`));
    });
  }).catch((error) => {
    server.kill();
    throw error;
  });
  return Object.assign(server, ready, { origin: ready.baseURL.replace(/\/v1$/, '') });
}

// ---------------------------------------------------------------------------------------------
// The golden package and manifest

export const goldenDir = path.join(repoRoot, 'tests', 'fixtures', 'golden');

// Builds tests/fixtures/golden/models/full into a fresh temporary folder; returns {dir, pkg, name,
// cleanup()}. The package folder's name is what the server reports as the model.
// `extraArgs`: more `q3vl build` flags (e.g. another --chat-template).
export function buildGoldenPackage({ name = 'golden-full', extraArgs = [] } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'q3vl-clients-'));
  const pkg = path.join(dir, name);
  try {
    execFileSync(q3vlBinary, ['build', '--model', path.join(goldenDir, 'models', 'full'), '--out', pkg,
                              '--tokenizer-dir', path.join(repoRoot, '.deps', 'tokenizer-qwen3'),
                              // the golden model has none; the video fixtures' file, given explicitly
                              '--video-preprocessor-config',
                              path.join(repoRoot, 'assets', 'qwen3-vl', 'video_preprocessor_config.json'), '--quiet',
                              ...extraArgs],
                 { stdio: ['ignore', 'inherit', 'inherit'] });
    if (!existsSync(path.join(pkg, 'q3vl_package.json'))) throw new Error(`q3vl build wrote no package in ${pkg}`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, pkg, name, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let manifestCache = null;
export function loadManifest() {
  if (!manifestCache) manifestCache = JSON.parse(readFileSync(path.join(goldenDir, 'manifest.json'), 'utf8'));
  return manifestCache;
}

export function pngDataURL(file) {
  return `data:image/png;base64,${readFileSync(file).toString('base64')}`;
}

// HF-form messages ({"type":"image"} parts stand for `imageFiles`, in order) -> OpenAI messages
// with the images inline as data URLs.
export function toOpenAIMessages(messages, imageFiles) {
  let next = 0;
  const out = messages.map((message) => {
    if (typeof message.content === 'string') return { role: message.role, content: message.content };
    return {
      role: message.role,
      content: message.content.map((part) => {
        if (part.type === 'image') {
          if (next >= imageFiles.length) throw new Error('more {"type":"image"} parts than images');
          return { type: 'image_url', image_url: { url: pngDataURL(imageFiles[next++]) } };
        }
        if (part.type === 'text') return { type: 'text', text: part.text };
        throw new Error(`unsupported part type ${part.type}`);
      }),
    };
  });
  if (next !== imageFiles.length) throw new Error(`${imageFiles.length} images but ${next} image parts`);
  return out;
}

// The manifest's cases for the `full` model, each as {name, messages (OpenAI), expected, imageCount}.
export function fullCases() {
  const manifest = loadManifest();
  return Object.entries(manifest.cases)
    .filter(([, c]) => c.model === 'full')
    .map(([name, c]) => ({
      name,
      messages: toOpenAIMessages(c.messages, c.images.map((image) => path.join(goldenDir, c.dir, image.file))),
      expected: c.greedy.decoded_text,
      maxTokens: c.greedy.num_tokens,
      promptTokens: c.sequence_length,  // HF's prompt length, image tokens included
      imageCount: c.images.length,
    }));
}

// chats.full_chat: messages for turn `turn` (0-based): the whole history, every earlier assistant
// message being HF's reply; each user turn's images come before its text, as in HF's prompt.
export function chatTurn(turn, chatName = 'full_chat') {
  const chat = loadManifest().chats[chatName];
  const messages = [];
  for (let i = 0; i <= turn; i++) {
    const { user, images } = chat.turns[i];
    if (images.length === 0) messages.push({ role: 'user', content: user });
    else {
      messages.push({
        role: 'user',
        content: [...images.map((file) => ({ type: 'image_url', image_url: { url: pngDataURL(path.join(goldenDir, chat.dir, file)) } })),
                  { type: 'text', text: user }],
      });
    }
    if (i < turn) messages.push({ role: 'assistant', content: chat.turns[i].reply });
  }
  return { messages, expected: chat.turns[turn].reply, maxTokens: chat.max_new_tokens, turns: chat.turns.length };
}

// ---------------------------------------------------------------------------------------------
// /metrics and /proc

// Prometheus text -> Map of `name{labels}` (as written) -> number.
export async function fetchMetrics(server) {
  const response = await fetch(`${server.origin}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics: ${response.status}`);
  const samples = new Map();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^(\S+?(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (match) samples.set(match[1], Number(match[2]));
  }
  return samples;
}

export async function waitForGauge(server, name, value, { timeoutMs = 5000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = (await fetchMetrics(server)).get(name);
    if (last === value) return last;
    if (Date.now() > deadline) throw new Error(`${name} is ${last}, not ${value}, ${timeoutMs} ms on`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

// ---------------------------------------------------------------------------------------------
// JSON schemas (OpenAI's objects)

let validators = null;
export function schemaValidators() {
  if (validators) return validators;
  const Ajv = requireDep('ajv').default;
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const load = (file) => JSON.parse(readFileSync(path.join(here, 'schemas', file), 'utf8'));
  ajv.addSchema(load('common.schema.json'));
  ajv.addSchema(load('chat.completion.schema.json'), 'chat.completion');
  ajv.addSchema(load('chat.completion.chunk.schema.json'), 'chat.completion.chunk');
  ajv.addSchema(load('error.schema.json'), 'error');
  const make = (key) => (value, what = key) => {
    const validate = ajv.getSchema(key);
    if (!validate(value)) {
      throw new Error(`${what} does not match the ${key} schema: ${ajv.errorsText(validate.errors)}\n` +
                      JSON.stringify(value).slice(0, 2000));
    }
    return value;
  };
  validators = { completion: make('chat.completion'), chunk: make('chat.completion.chunk'), error: make('error') };
  return validators;
}

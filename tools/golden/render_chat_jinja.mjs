// Second, independent oracle for tests/fixtures/chat/chat_cases.json: re-renders every case with
// @huggingface/jinja (a JavaScript Jinja implementation, unrelated to Python's jinja2) and the same
// template, and reports where it disagrees with the transformers rendering stored in the file.
//
//   (cd tools/golden/node && npm install @huggingface/jinja)
//   node tools/golden/render_chat_jinja.mjs [cases.json] [template.json]
//
// Exit status: 0 when every case agrees, 1 otherwise.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
// Resolve the package from tools/golden/node/ where it is installed.
const require = createRequire(resolve(here, "node/package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));

const casesPath = process.argv[2] ?? resolve(repo, "tests/fixtures/chat/chat_cases.json");
const templatePath = process.argv[3] ?? resolve(repo, "assets/qwen3-vl/chat_template.json");
const template = new Template(JSON.parse(readFileSync(templatePath, "utf8")).chat_template);
const { cases } = JSON.parse(readFileSync(casesPath, "utf8"));

// First differing position, shown with a little context on both sides.
function describeDifference(actual, expected) {
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  const window = (s) => JSON.stringify(s.slice(Math.max(0, at - 30), at + 40));
  return `first difference at ${at}\n    jinja.js:     ${window(actual)}\n    transformers: ${window(expected)}`;
}

let disagreements = 0;
for (const testCase of cases) {
  let rendered;
  try {
    rendered = template.render({
      messages: testCase.messages,
      tools: testCase.tools ?? null,
      add_generation_prompt: testCase.add_generation_prompt,
      add_vision_id: testCase.add_vision_id,
    });
  } catch (error) {
    disagreements++;
    console.log(`FAIL ${testCase.name}: ${error.message}`);
    continue;
  }
  if (rendered !== testCase.expected) {
    disagreements++;
    console.log(`DIFF ${testCase.name}: ${describeDifference(rendered, testCase.expected)}`);
  }
}
console.log(`${cases.length - disagreements}/${cases.length} cases agree between @huggingface/jinja and transformers`);
process.exit(disagreements === 0 ? 0 : 1);

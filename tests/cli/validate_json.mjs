// Validates replies against JSON Schemas with ajv (an independent validator):
//   node validate_json.mjs DEPS_NODE_DIR CASES.jsonl
// Each line of CASES.jsonl: {"schema": FILE or null (any JSON object), "reply": TEXT, "label": ...}.
// Prints one line per failure; exits 1 if any reply is not JSON or does not validate.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [depsDir, casesFile] = process.argv.slice(2);
const Ajv = createRequire(path.join(depsDir, 'x'))('ajv').default;
const ajv = new Ajv({ allErrors: true, strict: false });
let checked = 0;
let failed = 0;
for (const line of readFileSync(casesFile, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const c = JSON.parse(line);
  ++checked;
  let value;
  try {
    value = JSON.parse(c.reply);
  } catch (error) {
    ++failed;
    console.log(`${c.label}: not JSON (${error.message}): ${JSON.stringify(c.reply).slice(0, 200)}`);
    continue;
  }
  const schema = c.schema ? JSON.parse(readFileSync(c.schema, 'utf8')) : { type: 'object' };
  const validate = ajv.compile(schema);
  if (!validate(value)) {
    ++failed;
    console.log(`${c.label}: ${ajv.errorsText(validate.errors)}: ${c.reply.slice(0, 200)}`);
  }
}
console.log(`${checked} replies checked, ${failed} invalid`);
process.exit(failed > 0 || checked === 0 ? 1 : 0);

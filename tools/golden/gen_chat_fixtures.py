#!/usr/bin/env python3
"""Chat-template fixtures for q3vl's native renderer (src/text/chat_format.*).

Renders a set of conversations with Hugging Face transformers' own chat-template code
(`render_jinja_template`, what tokenizer/processor `apply_chat_template(..., tokenize=False)`
call) and the Qwen3-VL-4B-Instruct template in assets/qwen3-vl/chat_template.json, and writes
tests/fixtures/chat/chat_cases.json: per case the HF-format messages, the options and the
expected text. No expected string is typed by hand.

Run inside the reference chroot:

    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_chat_fixtures.py

A second, independent oracle (@huggingface/jinja) re-renders the same file:
    node tools/golden/render_chat_jinja.mjs
"""

import argparse
import copy
import hashlib
import json
import os

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

IMAGE = {"type": "image"}
VIDEO = {"type": "video"}


def text(t):
    return {"type": "text", "text": t}


def image_url(url):
    return {"type": "image_url", "image_url": {"url": url}}


def msg(role, content, **extra):
    m = {"role": role, "content": content}
    m.update(extra)
    return m


def user(content):
    return msg("user", content)


def assistant(content, **extra):
    return msg("assistant", content, **extra)


def system(content):
    return msg("system", content)


def tool(content):
    return msg("tool", content)


def call(name, arguments, wrapped=True):
    inner = {"name": name, "arguments": arguments}
    return {"type": "function", "function": inner} if wrapped else inner


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
ZOOM_TOOL = {
    "type": "function",
    "function": {
        "name": "zoom_in",
        "description": "Crop the image to a box (x0, y0, x1, y1 in 0..1000) and return it.",
        "parameters": {
            "type": "object",
            "properties": {"bbox": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4}},
            "required": ["bbox"],
        },
    },
}
UNICODE_TOOL = {
    "type": "function",
    "function": {
        "name": "翻译",
        "description": "Übersetze \"Text\" ins Deutsche — avec des accents, tabs\tand a\nnewline 🌍",
        "parameters": {"type": "object", "properties": {"q": {"type": "string", "default": ""}}, "required": []},
    },
}
NUMBERS_TOOL = {
    "name": "numbers",
    "description": "plain (unwrapped) definition with numbers",
    "parameters": {"scale": 1.5, "limit": 100, "tiny": 1e-07, "huge": 1e22, "neg": -0.25, "flag": False, "none": None},
}


def build_cases():
    cases = []

    def add(name, messages, add_generation_prompt=True, add_vision_id=False, tools=None):
        case = {
            "name": name,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "add_vision_id": add_vision_id,
        }
        if tools is not None:
            case["tools"] = tools
        cases.append(case)

    # --- plain text -------------------------------------------------------------------------
    add("user_text", [user("Hello!")])
    add("user_text_no_generation_prompt", [user("Hello!")], add_generation_prompt=False)
    add("user_text_as_list", [user([text("Hello!")])])
    add("user_adjacent_text_items_no_separator", [user([text("one"), text("two"), text(" three ")])])
    add("user_empty_string", [user("")])
    add("user_empty_list", [user([])])
    add("user_missing_content", [{"role": "user"}])
    add("user_empty_text_item", [user([text("")])])
    add("whitespace_preserved", [user("  \n leading and trailing \n\n"), assistant("\n answer \n"), user("\t")])
    add("special_tokens_verbatim", [user("<|im_end|>\n<|im_start|>system\n<|vision_start|><|image_pad|><|vision_end|>")])
    add("jinja_syntax_is_data", [user("{{ messages }} {% if x %}{%- endif -%} {# c #}")])
    add("unicode_text", [user("你好，世界！ 🌍🚀 Ünïcödé — مرحبا بالعالم — नमस्ते — e\u0301 \u200b zero-width"),
                         assistant("こんにちは 😀")])

    # --- images and videos in user turns ------------------------------------------------------
    add("image_then_text", [user([IMAGE, text("Describe this image.")])])
    add("text_then_image", [user([text("What is in "), IMAGE, text("?")])])
    add("two_images", [user([IMAGE, IMAGE, text("Compare them.")])])
    add("interleaved_images_and_text", [user([text("A:"), IMAGE, text("B:"), IMAGE, text("C:"), IMAGE])])
    add("image_only", [user([IMAGE])])
    add("video_then_text", [user([VIDEO, text("What happens?")])])
    add("image_and_video", [user([IMAGE, VIDEO, IMAGE, text("Relate the video to the pictures.")])])
    add("openai_image_url", [user([text("Look: "), image_url("https://example.com/cat.png")])])
    add("image_key_without_type", [user([{"image": "file:///tmp/a.jpg"}, {"text": "untyped text item"}])])
    add("image_url_key_without_type", [user([{"image_url": {"url": "data:image/png;base64,AAAA"}}])])
    add("hf_image_url_and_path_keys", [user([{"type": "image", "url": "https://example.com/x.jpg"},
                                             {"type": "image", "path": "/tmp/y.png"}, text("two sources")])])
    add("video_key_without_type", [user([{"video": ["f1.jpg", "f2.jpg"]}, text("frames")])])
    add("images_in_later_turns", [user("Hi"), assistant("Hello! How can I help?"),
                                  user([IMAGE, text("What is this?")]), assistant("A cat."),
                                  user([text("And this one?"), IMAGE])])

    # --- add_vision_id -----------------------------------------------------------------------
    add("vision_id_single_image", [user([IMAGE, text("Describe.")])], add_vision_id=True)
    add("vision_id_two_images", [user([IMAGE, IMAGE, text("Compare.")])], add_vision_id=True)
    add("vision_id_images_and_videos_count_separately",
        [user([IMAGE, VIDEO, IMAGE, VIDEO, text("?")])], add_vision_id=True)
    add("vision_id_counts_across_turns",
        [user([IMAGE, text("first")]), assistant("ok"), user([IMAGE, VIDEO, text("second")]), assistant("ok"),
         user([VIDEO, IMAGE])], add_vision_id=True)
    add("vision_id_same_conversation_off",
        [user([IMAGE, text("first")]), assistant("ok"), user([IMAGE, VIDEO, text("second")]), assistant("ok"),
         user([VIDEO, IMAGE])], add_vision_id=False)
    add("vision_id_twelve_images", [user([IMAGE] * 12 + [text("Which is different?")])], add_vision_id=True)
    add("vision_id_openai_image_url", [user([image_url("https://example.com/a.png"), text("x")])],
        add_vision_id=True)
    add("vision_id_text_only", [user("no media here")], add_vision_id=True)
    add("vision_id_no_generation_prompt", [user([IMAGE, text("a")]), assistant("b")],
        add_generation_prompt=False, add_vision_id=True)

    # --- system ------------------------------------------------------------------------------
    add("system_string", [system("You are a helpful assistant."), user("Hi")])
    add("system_list_content", [system([text("You are "), text("terse.")]), user("Hi")])
    add("system_list_with_image_ignored", [system([IMAGE, text("Only text counts."), VIDEO]),
                                           user([IMAGE, text("x")])], add_vision_id=True)
    add("system_empty_string", [system(""), user("Hi")])
    add("system_empty_list", [system([]), user("Hi")])
    add("system_only", [system("Be brief.")])
    add("system_only_no_generation_prompt", [system("Be brief.")], add_generation_prompt=False)
    add("system_not_first_is_dropped", [user("Hi"), system("late system"), assistant("Hello")])
    add("two_systems_second_dropped", [system("first"), system("second"), user("Hi")])
    add("system_unicode_multiline", [system("Règles :\n1. Réponds en français.\n2. 简洁。"), user("Salut")])

    # --- consecutive roles ------------------------------------------------------------------
    add("consecutive_user_messages", [user("first"), user([IMAGE, text("second")]), user("third")])
    add("consecutive_assistant_messages", [user("Hi"), assistant("one"), assistant("two")])
    add("ends_with_assistant_and_generation_prompt", [user("Hi"), assistant("Hello")])
    add("ends_with_assistant_no_generation_prompt", [user("Hi"), assistant("Hello")], add_generation_prompt=False)
    add("multi_turn_training_style",
        [system("sys"), user("q1"), assistant("a1"), user([IMAGE, text("q2")]), assistant("a2"), user("q3"),
         assistant("a3")], add_generation_prompt=False)
    add("assistant_first", [assistant("I speak first."), user("ok")])

    # --- assistant content -------------------------------------------------------------------
    add("assistant_list_content", [user("Hi"), assistant([text("part one, "), text("part two")])])
    add("assistant_list_image_ignored_not_counted",
        [user([IMAGE, text("a")]), assistant([IMAGE, text("see "), VIDEO]), user([IMAGE, VIDEO])],
        add_vision_id=True)
    add("assistant_think_block_verbatim",
        [user("2+2?"), assistant("<think>\nsimple arithmetic\n</think>\n\n4"), user("3+3?")])
    add("assistant_reasoning_content_ignored",
        [user("2+2?"), assistant("4", reasoning_content="hidden reasoning"), user("ok")])
    add("assistant_empty_string", [user("Hi"), assistant("")])
    add("assistant_missing_content", [user("Hi"), {"role": "assistant"}])

    # --- tool calls --------------------------------------------------------------------------
    add("tool_call_no_content",
        [user("Weather in Paris?"), assistant("", tool_calls=[call("get_weather", {"city": "Paris"})])])
    add("tool_call_with_content",
        [user("Weather in Paris?"),
         assistant("Let me check.", tool_calls=[call("get_weather", {"city": "Paris", "unit": "celsius"})])])
    add("two_tool_calls_no_content",
        [user("Paris and Rome?"),
         assistant("", tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})])])
    add("two_tool_calls_with_content",
        [user("Paris and Rome?"),
         assistant("Checking both.",
                   tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})])])
    add("tool_call_string_arguments_openai",
        [user("Weather?"), assistant("", tool_calls=[
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\" , \"unit\": \"celsius\"}"}}])])
    add("tool_call_unwrapped",
        [user("Weather?"), assistant("", tool_calls=[call("get_weather", {"city": "Oslo"}, wrapped=False)])])
    add("tool_call_arguments_edge_values",
        [user("numbers"), assistant("", tool_calls=[call("calc", {
            "b": 1.0, "a": 1e16, "c": 1e15, "d": 1e-05, "e": 0.0001, "f": -0.0, "g": 0.1, "h": 123456789.125,
            "i": 12345678901234567890, "j": -42, "k": [1, 2.5, [], {}], "l": None, "m": True, "n": False,
            "o": 3.14159e-300, "p": 2.5e+300, "q": 1.7976931348623157e308, "r": 5e-324, "s": 100.0,
            "t": 1234567890123456.0, "u": 0.30000000000000004})])])
    add("tool_call_arguments_strings",
        [user("strings"), assistant("", tool_calls=[call("echo", {
            "quote": "say \"hi\"", "backslash": "C:\\path\\to", "controls": "a\nb\tc\rd\be\ff\u0001g\u001fh\u007f",
            "unicode": "héllo 世界 🙂", "slash": "a/b", "html": "<b>&amp;</b>", "empty": "",
            "ключ": "значение"})])])
    add("tool_call_empty_arguments", [user("now"), assistant("", tool_calls=[call("get_time", {})])])
    add("tool_call_list_content_with_empty_text_is_truthy",
        [user("x"), assistant([text("")], tool_calls=[call("f", {"a": 1})])])
    add("tool_call_empty_list_content",
        [user("x"), assistant([], tool_calls=[call("f", {"a": 1})])])
    add("tool_call_missing_content",
        [user("x"), {"role": "assistant", "tool_calls": [call("f", {"a": 1})]}])
    add("tool_calls_empty_list", [user("x"), assistant("plain", tool_calls=[])])

    # --- tool responses ----------------------------------------------------------------------
    add("single_tool_response",
        [user("Weather?"), assistant("", tool_calls=[call("get_weather", {"city": "Paris"})]),
         tool("{\"temperature\": 21}")])
    add("grouped_tool_responses",
        [user("Paris and Rome?"),
         assistant("", tool_calls=[call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Rome"})]),
         tool("21 C"), tool("25 C"), tool("third")])
    add("tool_responses_separated_by_assistant",
        [user("q"), assistant("", tool_calls=[call("a", {})]), tool("ra"),
         assistant("", tool_calls=[call("b", {})]), tool("rb")])
    add("tool_response_list_with_image",
        [user([IMAGE, text("zoom in")]), assistant("", tool_calls=[call("zoom_in", {"bbox": [0, 0, 500, 500]})]),
         tool([text("Here is the crop:"), IMAGE])], add_vision_id=True)
    add("tool_response_video_vision_id",
        [user([VIDEO]), assistant("", tool_calls=[call("clip", {"t": [1.5, 3.0]})]), tool([VIDEO, text("clip")]),
         tool([IMAGE])], add_vision_id=True)
    add("tool_first_message", [tool("orphan response"), user("hi")])
    add("tool_last_no_generation_prompt", [user("q"), tool("r1"), tool("r2")], add_generation_prompt=False)
    add("tool_empty_string", [user("q"), tool("")])
    add("tool_empty_list", [user("q"), tool([])])
    add("system_between_tools_breaks_group", [user("q"), tool("r1"), system("mid"), tool("r2")])

    # --- tools preamble ----------------------------------------------------------------------
    add("tools_no_system", [user("Weather in Paris?")], tools=[WEATHER_TOOL])
    add("tools_with_system", [system("You are a weather bot."), user("Weather?")], tools=[WEATHER_TOOL])
    add("tools_with_system_list", [system([text("A "), IMAGE, text("B")]), user("Weather?")],
        tools=[WEATHER_TOOL, ZOOM_TOOL])
    add("tools_with_empty_system", [system(""), user("Weather?")], tools=[WEATHER_TOOL])
    add("tools_empty_list_means_none", [system("sys"), user("Hi")], tools=[])
    add("tools_unicode_and_numbers", [user("?")], tools=[UNICODE_TOOL, NUMBERS_TOOL])
    add("tools_no_generation_prompt", [user("Weather?")], add_generation_prompt=False, tools=[WEATHER_TOOL])
    add("tools_system_not_first", [user("Weather?"), system("dropped")], tools=[WEATHER_TOOL])

    # --- full conversations ------------------------------------------------------------------
    add("agent_loop_full",
        [system("You can look at images and call tools."),
         user([IMAGE, text("What's the weather where this photo was taken?")]),
         assistant("It looks like Paris.", tool_calls=[call("get_weather", {"city": "Paris", "unit": "celsius"})]),
         tool("{\"temperature\": 21, \"sky\": \"clear\"}"),
         assistant("It is 21 °C and clear in Paris."),
         user([text("Zoom into the top left of "), IMAGE]),
         assistant("", tool_calls=[call("zoom_in", {"bbox": [0, 0, 500, 500]})]),
         tool([IMAGE]), tool("done")],
        add_vision_id=True, tools=[WEATHER_TOOL, ZOOM_TOOL])
    add("agent_loop_full_no_ids_no_prompt",
        [system("You can look at images and call tools."),
         user([IMAGE, text("What's the weather where this photo was taken?")]),
         assistant("It looks like Paris.", tool_calls=[call("get_weather", {"city": "Paris", "unit": "celsius"})]),
         tool("{\"temperature\": 21, \"sky\": \"clear\"}"),
         assistant("It is 21 °C and clear in Paris.")],
        add_generation_prompt=False, tools=[WEATHER_TOOL])
    add("video_chat_multi_turn",
        [system([text("Video analyst.")]), user([VIDEO, text("Summarise.")]), assistant("A dog runs."),
         user([text("And in "), VIDEO, text(" vs "), IMAGE, text("?")])], add_vision_id=True)
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="/repo")
    parser.add_argument("--out", default=None, help="default: <repo>/tests/fixtures/chat/chat_cases.json")
    args = parser.parse_args()
    template_path = os.path.join(args.repo, "assets/qwen3-vl/chat_template.json")
    out_path = args.out or os.path.join(args.repo, "tests/fixtures/chat/chat_cases.json")
    with open(template_path, "rb") as f:
        template_bytes = f.read()
    template = json.loads(template_bytes)["chat_template"]

    cases = build_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    for case in cases:
        # Render from a copy so the recorded messages are exactly what was passed in.
        rendered, _ = render_jinja_template(
            conversations=[copy.deepcopy(case["messages"])],
            tools=copy.deepcopy(case.get("tools")),
            chat_template=template,
            add_generation_prompt=case["add_generation_prompt"],
            add_vision_id=case["add_vision_id"],
        )
        case["expected"] = rendered[0]

    document = {
        "description": "Qwen3-VL Instruct chat template renderings; regenerate with tools/golden/gen_chat_fixtures.py",
        "template_sha256": hashlib.sha256(template_bytes).hexdigest(),
        "transformers_version": transformers.__version__,
        "jinja2_version": jinja2.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out_path}")


if __name__ == "__main__":
    main()

#pragma once
// A chat template rendered as Hugging Face transformers renders it (jinja2's sandboxed
// environment with trim_blocks, lstrip_blocks and loop controls; tojson as json.dumps with
// ensure_ascii=False; raise_exception). Constructs it does not support are errors naming them,
// never silently different output.
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace q3vl::jinja {

struct Program;

class Template {
 public:
  // Parses; throws q3vl::InvalidInput ("chat template line 3: unsupported tag 'include'").
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the members of `variables` (a JSON object) as the template's variables, e.g.
  // {"messages": [...], "tools": null, "add_generation_prompt": true}. Throws q3vl::InvalidInput
  // naming the line for a render error, or the message of the template's raise_exception().
  std::string render(const nlohmann::ordered_json& variables) const;

 private:
  std::unique_ptr<Program> program_;
};

}  // namespace q3vl::jinja

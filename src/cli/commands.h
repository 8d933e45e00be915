#pragma once
// Each subcommand registers itself on the CLI11 app; its callback does the work and throws
// q3vl::Error on failure (main turns that into a message and an exit code).
#include <CLI/CLI.hpp>

namespace q3vl::cli {

void add_make_tiny_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_build_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_prepack_command(CLI::App& app);

}  // namespace q3vl::cli

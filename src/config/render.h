// config/render.h — how `locald config` and `locald env` show a project.
//
// `to_json` is the stable `locald config --json` shape documented in
// docs/manual/config.md (scripts rely on it: add keys, never rename or remove
// them). `render_text` is for people and may change.
#pragma once

#include <string>
#include <vector>

#include "base/json.h"
#include "config/spec.h"

namespace locald::config {

// {"project":{"name","dir","files"},"services":{"NAME":{…}}}
base::Json to_json(const ProjectSpec& project);
base::Json to_json(const ServiceSpec& service);

std::string render_text(const ProjectSpec& project);

// `KEY=VALUE` lines; with `explain`, each followed by `  # <where it came from>`.
std::string render_env(const std::vector<EnvEntry>& entries, bool explain);

// "/p/.env:3", "environment", "injected by locald".
std::string describe_origin(const EnvEntry& entry);

}  // namespace locald::config

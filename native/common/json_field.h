// Reads a required field of a JSON config, with errors that name the config and the field.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace trainlarge {

template <typename T>
T json_field(const nlohmann::json& j, const char* config, const char* name) {
  if (!j.contains(name)) throw std::invalid_argument(std::string(config) + ": missing field '" + name + "'");
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument(std::string(config) + ": field '" + name + "' has the wrong type");
  }
}

}  // namespace trainlarge

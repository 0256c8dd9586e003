#include "spotgrid/core/log.h"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace spotgrid {
namespace {

std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_logger;

}  // namespace

spdlog::logger& Logger() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_logger) {
    g_logger = spdlog::stderr_color_mt("spotgrid");
    g_logger->set_level(spdlog::level::warn);
  }
  return *g_logger;
}

void SetLogger(std::shared_ptr<spdlog::logger> logger) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_logger = std::move(logger);
}

}  // namespace spotgrid

# Every third-party dependency comes from Debian's packages (scripts/install-deps) and is
# reached through exactly one target name, so a target never names a library path itself.
find_package(PkgConfig REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
# spdlog and fmt header-only: the shared libspdlog and libfmt would be mapped whole into every
# process, 0.5 MiB of the agent's idle memory for the few functions we call; compiled in, only
# those remain. (Both headers live in /usr/include, so no include directory is added.)
add_library(spotgrid_spdlog INTERFACE)
target_compile_definitions(spotgrid_spdlog INTERFACE SPDLOG_FMT_EXTERNAL)
target_link_libraries(spotgrid_spdlog INTERFACE fmt::fmt-header-only Threads::Threads)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
find_package(Threads REQUIRED)

if(SPOTGRID_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SPOTGRID_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Every third-party dependency comes from Debian's packages (scripts/install-deps) and is
# reached through exactly one target name, so a target never names a library path itself.
find_package(PkgConfig REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
find_package(Threads REQUIRED)

if(SPOTGRID_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SPOTGRID_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

// agent: the worker daemon. Until its loop lands (see the issues), it only answers --help and
// --version.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
    std::puts("agent " SPOTGRID_VERSION);
    return 0;
  }
  std::fputs("usage: agent --stack NAME [options]\n", argc >= 2 ? stdout : stderr);
  return argc >= 2 && std::strcmp(argv[1], "--help") == 0 ? 0 : 2;
}

// Compiles /usr/share/llhttp/llhttp.c (Debian node-llhttp: the C sources of Node's HTTP parser) into
// the addon. The file is found through include_dirs in binding.gyp; nothing of it is copied here.
// Built with hidden visibility: the node binary exports its own llhttp (another version, another
// settings layout), which would otherwise win the dynamic symbol lookup.
#include "llhttp.c"

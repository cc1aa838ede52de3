// The daemon's [remote] section: the shared Redis cache tier, its timeouts
// and the keys entries are signed and checked with (docs/daemon.md,
// "Remote cache").
//
// Read by load_config (server/src/remote_config.cpp).  Thread safety: plain values.
#pragma once

#include "regexd/cache/remote_store.h"

namespace regexd::server {

struct RemoteConfig {
  bool enabled = false;          // a [remote] section with `redis` set
  cache::RemoteOptions options;  // keys already read from their files
};

}  // namespace regexd::server
